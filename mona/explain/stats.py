"""Statistics of a selection against its pool, on SAE codes: feature enrichment, coverage, summaries, label mix.

Pure functions on matrices and tables; they never read or write files.

* Enrichment: per feature, how many selected samples vs pool samples have it active. The selection is a draw of
  ``n`` from the pool's ``N``, so the p-value of over-representation is the hypergeometric upper tail
  ``P[X >= k]`` (one-sided Fisher exact test of selected vs not selected), Benjamini–Hochberg corrected over the
  tested features; the effect size is the log odds ratio of selected vs the rest with a pseudo-count ``prior``.
* Coverage: features active anywhere in the pool / in the selection, the share of the pool's activation mass on
  covered features, and the coverage a random subset of the same size would reach in expectation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from jaxtyping import Int

LABEL_KEYS = ("domain", "source")
"""Record fields whose mix in the selection vs the pool is reported."""


def active_counts(X: sp.csr_matrix, threshold: float) -> Int[np.ndarray, " F"]:
    """Per feature, the number of rows where it is above ``threshold``."""
    X = sp.csr_matrix(X)
    return np.bincount(X.indices[X.data > threshold], minlength=X.shape[1]).astype(np.int64)


def enrichment(
    X: sp.csr_matrix, rows: Int[np.ndarray, " n"], threshold: float = 0.0, prior: float = 0.5, min_pool_count: int = 1
) -> dict[str, np.ndarray]:
    """Over-representation of each feature among ``rows`` of the pool ``X`` (N, F), on active counts.

    Returns a table (dict of equal-length arrays) over the features active in at least ``min_pool_count`` pool
    rows, sorted most over-represented first (p-value, then log odds ratio, then feature id): ``feature``,
    ``selected`` / ``pool`` (rows with the feature active), ``selected_rate`` / ``pool_rate``, ``log_odds``
    (selected vs the rest, with ``prior`` added to every cell), ``z`` (log odds / its standard error),
    ``p_value`` (hypergeometric upper tail), ``q_value`` (Benjamini–Hochberg), ``selected_mean`` /
    ``pool_mean`` (mean pooled value).
    """
    from scipy.stats import false_discovery_control, hypergeom

    X = sp.csr_matrix(X)
    rows = np.asarray(rows, dtype=np.int64)
    N, n = X.shape[0], len(np.unique(rows))
    K = active_counts(X, threshold)
    k = active_counts(X[np.unique(rows)], threshold)
    tested = np.flatnonzero(K >= min_pool_count)
    K, k = K[tested], k[tested]
    a, b, c = k + prior, (n - k) + prior, (K - k) + prior
    d = (N - n - (K - k)) + prior
    log_odds = np.log(a) + np.log(d) - np.log(b) - np.log(c)
    z = log_odds / np.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    p = np.clip(hypergeom.sf(k - 1, N, K, n), 0.0, 1.0) if len(tested) else np.zeros(0)
    q = false_discovery_control(p, method="bh") if len(p) else p
    sums_pool = np.asarray(X.sum(axis=0)).ravel()[tested]
    sums_sel = np.asarray(X[rows].sum(axis=0)).ravel()[tested]
    order = np.lexsort((tested, -log_odds, p))
    table = {
        "feature": tested.astype(np.int64),
        "selected": k,
        "pool": K,
        "selected_rate": k / max(n, 1),
        "pool_rate": K / max(N, 1),
        "log_odds": log_odds,
        "z": z,
        "p_value": p,
        "q_value": q,
        "selected_mean": sums_sel / max(len(rows), 1),
        "pool_mean": sums_pool / max(N, 1),
    }
    return {name: np.asarray(v)[order] for name, v in table.items()}


def coverage(X: sp.csr_matrix, rows: Int[np.ndarray, " n"], threshold: float = 0.0) -> dict[str, float]:
    """Features covered by the selection vs the pool, and what a random subset of the same size would cover."""
    from scipy.stats import hypergeom

    X = sp.csr_matrix(X)
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    N, n = X.shape[0], len(rows)
    K = active_counts(X, threshold)
    k = active_counts(X[rows], threshold)
    mass = np.asarray(abs(X).sum(axis=0)).ravel()
    pool_features = int((K > 0).sum())
    random_expected = float((1.0 - hypergeom.pmf(0, N, K[K > 0], n)).sum()) if pool_features else 0.0
    per_row = np.diff(sp.csr_matrix(X.multiply(X > threshold)).indptr) if X.nnz else np.zeros(N, np.int64)
    return {
        "pool_features": pool_features,
        "selected_features": int((k > 0).sum()),
        "coverage": (k > 0).sum() / pool_features if pool_features else 0.0,
        "mass_coverage": float(mass[k > 0].sum() / mass.sum()) if mass.sum() > 0 else 0.0,
        "random_expected_features": random_expected,
        "random_expected_coverage": random_expected / pool_features if pool_features else 0.0,
        "pool_active_per_sample": float(per_row.mean()) if N else 0.0,
        "selected_active_per_sample": float(per_row[rows].mean()) if n else 0.0,
    }


def summarize(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, dtype=np.float64)
    if not len(x):
        return {}
    q = np.quantile(x, [0.0, 0.25, 0.5, 0.75, 1.0])
    names = ("min", "q25", "median", "q75", "max")
    return {"n": len(x), "mean": float(x.mean()), **{k: float(v) for k, v in zip(names, q, strict=False)}}



def target_coverage(X: sp.csr_matrix, rows: np.ndarray, targets: list[np.ndarray], thr: float) -> list[dict]:
    """Per target set (its (F,) mean code), how many of its active features the pool and the selection cover."""
    pool_active = active_counts(X, thr) > 0
    sel_active = active_counts(X[np.unique(rows)], thr) > 0
    out = []
    for k, proto in enumerate(targets):
        tf = proto > thr
        out.append({
            "target": k,
            "target_features": int(tf.sum()),
            "covered_by_pool": int((tf & pool_active).sum()),
            "covered_by_selection": int((tf & sel_active).sum()),
        })
    return out


def label_mix(sel: Any, pool_table: dict[str, np.ndarray] | None) -> dict[str, Any]:
    """Counts of each ``domain``/``source`` label in the pool and in the selection."""
    out: dict[str, Any] = {}
    for key in LABEL_KEYS:
        selected = [str(r.get(key)) for r in (sel.records or []) if r.get(key) is not None]
        pool_counts = None
        if pool_table is not None and key in pool_table:
            vals, counts = np.unique(pool_table[key].astype(str), return_counts=True)
            pool_counts = {str(v): int(c) for v, c in zip(vals, counts, strict=False) if v}
            if not selected:
                selected = [v for v in pool_table[key][pool_table["selected"]].astype(str) if v]
        if not selected and not pool_counts:
            continue
        sel_counts: dict[str, int] = {}
        for v in selected:
            sel_counts[v] = sel_counts.get(v, 0) + 1
        out[key] = {"selected": dict(sorted(sel_counts.items(), key=lambda kv: -kv[1])), "pool": pool_counts}
    return out


