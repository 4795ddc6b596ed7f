"""Statistics of a selection against its pool, on SAE codes: feature enrichment, coverage, summaries, label mix.

Pure functions on matrices and tables; they never read or write files.

* Enrichment: per feature, how many selected samples vs pool samples have it active. The selection is a draw of
  ``n`` from the pool's ``N``, so the p-value of over-representation is the hypergeometric upper tail
  ``P[X >= k]`` (one-sided Fisher exact test of selected vs not selected), Benjamini–Hochberg corrected over the
  tested features; the effect size is the log odds ratio of selected vs the rest with a pseudo-count ``prior``.
  :func:`log_odds_ratio` and :func:`fisher_test` are the same statistics for any two groups (one- or two-sided),
  vectorised over features; :mod:`mona.diff` compares two datasets with them.
* Coverage: features active anywhere in the pool / in the selection, the share of the pool's activation mass on
  covered features, and the coverage a random subset of the same size would reach in expectation.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from jaxtyping import Float, Int

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
    X = sp.csr_matrix(X)
    rows = np.asarray(rows, dtype=np.int64)
    N, n = X.shape[0], len(np.unique(rows))
    K = active_counts(X, threshold)
    k = active_counts(X[np.unique(rows)], threshold)
    tested = np.flatnonzero(K >= min_pool_count)
    K, k = K[tested], k[tested]
    log_odds, z = log_odds_ratio(k, n, K - k, N - n, prior)
    p = fisher_test(k, n, K - k, N - n, alternative="greater")
    q = bh(p)
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


def log_odds_ratio(
    k_a: Int[np.ndarray, " F"], n_a: int, k_b: Int[np.ndarray, " F"], n_b: int, prior: float = 0.5
) -> tuple[Float[np.ndarray, " F"], Float[np.ndarray, " F"]]:
    """Log odds ratio of "active" in group A (``k_a`` of ``n_a``) vs group B (``k_b`` of ``n_b``), with ``prior``
    added to each of the four cells, and its z-score (log odds / Woolf standard error)."""
    k_a, k_b = np.asarray(k_a, np.float64), np.asarray(k_b, np.float64)
    a, b, c, d = k_a + prior, (n_a - k_a) + prior, k_b + prior, (n_b - k_b) + prior
    log_odds = np.log(a) + np.log(d) - np.log(b) - np.log(c)
    return log_odds, log_odds / np.sqrt(1 / a + 1 / b + 1 / c + 1 / d)


def fisher_test(
    k_a: Int[np.ndarray, " F"], n_a: int, k_b: Int[np.ndarray, " F"], n_b: int,
    alternative: Literal["greater", "two-sided"] = "two-sided",
) -> Float[np.ndarray, " F"]:
    """Fisher's exact test of the 2x2 tables ``[[k_a, n_a - k_a], [k_b, n_b - k_b]]``, one per feature.

    Given the margins, A's active count is ``X ~ Hypergeometric(n_a + n_b, k_a + k_b, n_a)``. ``"greater"``: the
    upper tail ``P[X >= k_a]`` (A has more); ``"two-sided"``: the total probability of the tables no more likely
    than the observed one (as :func:`scipy.stats.fisher_exact`), found by a binary search over the unimodal
    pmf on the other side of the mode, vectorised over features (O(F log n) pmf evaluations).
    """
    from scipy.stats import hypergeom

    x = np.asarray(k_a, np.int64)
    if not len(x):
        return np.zeros(0)
    M, K = n_a + n_b, x + np.asarray(k_b, np.int64)
    upper = hypergeom.sf(x - 1, M, K, n_a)
    if alternative == "greater":
        return np.clip(upper, 0.0, 1.0)
    lo, hi = np.maximum(0, n_a - (M - K)), np.minimum(K, n_a)
    mode = np.clip(((n_a + 1) * (K + 1)) // (M + 2), lo, hi)
    cut = hypergeom.logpmf(x, M, K, n_a) + np.log1p(1e-7)  # "no more likely than observed", with a tolerance
    below = x < mode
    # observed below the mode: the other tail starts at the first j in [mode, hi] with pmf(j) <= pmf(x)
    j = _first_true(lambda v: hypergeom.logpmf(v, M, K, n_a) <= cut, mode, hi)
    # observed at or above it: the other tail ends just before the first j in [lo, mode] with pmf(j) > pmf(x)
    g = _first_true(lambda v: hypergeom.logpmf(v, M, K, n_a) > cut, lo, mode)
    p = np.where(below, hypergeom.cdf(x, M, K, n_a) + hypergeom.sf(j - 1, M, K, n_a),
                 upper + hypergeom.cdf(g - 1, M, K, n_a))
    return np.clip(p, 0.0, 1.0)


def _first_true(pred: Any, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per element, the first ``v`` in ``[lo, hi]`` where the monotone (False..True) ``pred`` holds, else
    ``hi + 1``: a binary search run on all elements at once."""
    left, right = lo.astype(np.int64), hi.astype(np.int64) + 1
    while (left < right).any():
        mid = (left + right) // 2
        hit = pred(np.minimum(mid, hi))
        open_ = left < right
        right = np.where(open_ & hit, mid, right)
        left = np.where(open_ & ~hit, mid + 1, left)
    return left


def bh(p: Float[np.ndarray, " F"]) -> Float[np.ndarray, " F"]:
    """Benjamini–Hochberg q-values (empty in, empty out)."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p, np.float64)
    return false_discovery_control(p, method="bh") if len(p) else p


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


