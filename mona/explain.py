"""Explaining a selection: which SAE features drive each pick, and how the selection differs from the pool.

Reads only artifacts (the selection folder and the embedding stores it names); it never runs the model.

* Per pick: the features behind its score. For ``mona`` (and ``mmr``'s relevance) with weighted Jaccard, the
  score is ``J = Σ_k min(a_k, t_k) / Σ_k max(a_k, t_k)``; feature k's ``share`` is ``min(a_k, t_k) / Σ_j min(a_j,
  t_j)`` and its ``contribution`` is ``share · score``, so the shares of all features sum to 1 and their
  contributions to the score (for cosine the term is ``a_k t_k``). For ``similarity="decoder"`` the term is
  ``a_k g_k`` with ``g`` the target's direction mapped back through the SAE decoder, and the contributions sum to
  the score minus ``offset``, the pool mean's part (the same for every pool sample). For ``greedy-coverage``, the
  features the pick newly covered. For other SAE methods, the sample's own strongest features.
* Enrichment: per feature, how many selected samples vs pool samples have it active. The selection is a draw of
  ``n`` from the pool's ``N``, so the p-value of over-representation is the hypergeometric upper tail
  ``P[X >= k]`` (one-sided Fisher exact test of selected vs not selected), Benjamini–Hochberg corrected over the
  tested features; the effect size is the log odds ratio of selected vs the rest with a pseudo-count ``prior``.
* Coverage: features active anywhere in the pool / in the selection, the share of the pool's activation mass on
  covered features, and the coverage a random subset of the same size would reach in expectation.

Outputs, beside the selection unless told otherwise: ``explain.json`` (summary, coverage, top enriched
features), ``explain_samples.jsonl`` (one row per pick), ``enrichment.parquet`` (every tested feature) and
``explain_pool.parquet`` (one row per pool sample: selected, rank, active features, length, relevance).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from jaxtyping import Int

from mona.errors import ArtifactMismatch, MonaError
from mona.select.selection import json_default as _json_default

log = logging.getLogger(__name__)

EXPLAIN_JSON = "explain.json"
SAMPLES_JSONL = "explain_samples.jsonl"
ENRICHMENT_PARQUET = "enrichment.parquet"
POOL_PARQUET = "explain_pool.parquet"
FORMAT_VERSION = 1
LABEL_KEYS = ("domain", "source")
"""Record fields whose mix in the selection vs the pool is reported."""


@dataclass
class ExplainConfig:
    """How a selection is explained. Saved as ``config`` inside ``explain.json``."""

    top_features: int = 10
    """Features listed per pick (at most what the selection recorded, unless the stores are available)."""
    top_enriched: int = 50
    """Over-represented features listed in ``explain.json`` (``enrichment.parquet`` has all tested ones)."""
    active_threshold: float | None = None
    """A feature is active in a sample when its pooled code is above this; ``None`` = the selection's own."""
    prior: float = 0.5
    """Pseudo-count added to each cell of the 2x2 table for the log odds ratio (0.5 = Haldane–Anscombe)."""
    alpha: float = 0.05
    """False discovery rate: features with BH q-value below this are flagged ``significant``."""
    min_pool_count: int = 1
    """Only features active in at least this many pool samples are tested (fewer tests, more power)."""

    def __post_init__(self) -> None:
        if self.top_features < 0 or self.top_enriched < 0:
            raise MonaError("top_features and top_enriched must be >= 0")
        if self.prior <= 0:
            raise MonaError(f"prior must be > 0, got {self.prior}")
        if not 0 < self.alpha < 1:
            raise MonaError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.min_pool_count < 1:
            raise MonaError(f"min_pool_count must be >= 1, got {self.min_pool_count}")


@dataclass
class Explanation:
    """What :func:`explain` computed; :meth:`save` writes it, :func:`load_explanation` reads it back."""

    summary: dict[str, Any]
    samples: list[dict[str, Any]]
    enrichment: dict[str, np.ndarray] | None = None
    pool: dict[str, np.ndarray] | None = None
    path: Path | None = None

    def save(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".{SAMPLES_JSONL}.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            for row in self.samples:
                fh.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
        tmp.replace(out / SAMPLES_JSONL)
        for name, table in ((ENRICHMENT_PARQUET, self.enrichment), (POOL_PARQUET, self.pool)):
            if table is not None:
                _write_table(table, out / name)
            else:
                (out / name).unlink(missing_ok=True)
        (out / EXPLAIN_JSON).write_text(json.dumps(self.summary, indent=2, default=_json_default) + "\n")
        self.path = out
        log.info("wrote the explanation of %d picks to %s", len(self.samples), out)
        return out


def _write_table(table: dict[str, np.ndarray], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.table({k: pa.array(v) for k, v in table.items()}), tmp)
    tmp.replace(path)


def _read_table(path: Path) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    return {name: t.column(name).to_numpy(zero_copy_only=False) for name in t.column_names}


def load_explanation(path: str | Path) -> Explanation:
    """Read the files :meth:`Explanation.save` wrote into ``path``."""
    d = Path(path)
    if not (d / EXPLAIN_JSON).exists():
        raise MonaError(f"{d}: no {EXPLAIN_JSON}; run `mona explain {d}` first")
    summary = json.loads((d / EXPLAIN_JSON).read_text())
    samples = [json.loads(x) for x in (d / SAMPLES_JSONL).read_text(encoding="utf-8").splitlines() if x.strip()]
    return Explanation(summary, samples, _read_table(d / ENRICHMENT_PARQUET), _read_table(d / POOL_PARQUET), d)


# --------------------------------------------------------------------------------------------------------
# Statistics (pure functions on matrices)
# --------------------------------------------------------------------------------------------------------


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


def overlap_terms(a_idx: np.ndarray, a_val: np.ndarray, t: np.ndarray, similarity: str) -> np.ndarray:
    """Per non-zero feature of a row, its term of the similarity numerator (min for Jaccard, product for cosine)."""
    tv = t[a_idx]
    return np.minimum(a_val, tv).astype(np.float64) if similarity == "jaccard" else a_val.astype(np.float64) * tv


# --------------------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------------------


def explain(
    selection: Any,
    *,
    pool_store: Any = None,
    target_stores: Any = None,
    feature_store: Any = None,
    pool_samples: Any = None,
    labels: Any = None,
    config: ExplainConfig | None = None,
    out_dir: str | Path | None = None,
    save: bool = True,
    sae: Any = None,
    **overrides: Any,
) -> Explanation:
    """Explain a selection folder (or a :class:`~mona.select.Selection` with ``out_dir``) from artifacts only.

    Args:
        selection: a selection folder written by ``Selection.save`` / ``mona select``, or a ``Selection``.
        pool_store: the pool store (folder or object); default: the path recorded in ``selection.json``.
        target_stores: target store(s) as ``select`` takes them; default: the paths in ``selection.json``.
        feature_store: an SAE store of the same pool, to explain a selection made on something else (text,
            dense, NAIT) in SAE features; default: the pool store when it holds SAE codes.
        pool_samples: the pool's samples (file or list, store row order) for the domain/source mix; default:
            ``pool_samples`` recorded in ``selection.json`` if any.
        labels: a :class:`mona.labels.FeatureLabels` or its folder; adds a ``label`` to every listed feature.
        config: an :class:`ExplainConfig`; keyword ``overrides`` replace its fields (or build one).
        out_dir: where to write (default: the selection folder). ``save=False`` writes nothing.
        sae: the SAE that made the codes, for a selection scored with ``similarity="decoder"``; default: the one
            the pool store's manifest names.
    """
    from mona.select import Selection, load_selection

    cfg = config if config is not None else ExplainConfig(**overrides)
    if config is not None and overrides:
        cfg = dataclasses.replace(config, **overrides)
    if isinstance(selection, Selection):
        sel, sel_dir = selection, Path(out_dir) if out_dir is not None else None
    else:
        sel_dir = Path(selection)
        sel = load_selection(sel_dir)
    scfg = sel.config
    threshold = scfg.active_threshold if cfg.active_threshold is None else float(cfg.active_threshold)
    base = sel_dir if sel_dir is not None else Path.cwd()

    pool = _open(pool_store, (sel.info.get("pool") or {}).get("path"), base, "pool store")
    groups = _target_groups(sel, target_stores, base)
    fstore = _open(feature_store, None, base, "feature store") if feature_store is not None else None
    if fstore is None and pool is not None and _mode(pool) == "sae":
        fstore = pool
    for store in (pool, fstore):
        if store is not None:
            _check_rows(store, sel)

    pm = X = None
    if fstore is not None:
        from mona.select.target import PoolMatrices

        pm = PoolMatrices(fstore, scfg if fstore is pool else dataclasses.replace(scfg, binarize=False), sae=sae)
        X = pm.codes()
    label_set = _labels(labels)
    samples = _explain_samples(sel, X, groups, scfg, cfg, threshold, pm)
    n_pool = len(fstore.ids) if fstore is not None else len(pool.ids) if pool is not None else None
    n_pool = n_pool or int((sel.info.get("counts") or {}).get("pool") or 0)

    table = cov = None
    summary_enriched: list[dict[str, Any]] = []
    if X is not None:
        table = enrichment(X, sel.rows, threshold, cfg.prior, cfg.min_pool_count)
        cov = coverage(X, sel.rows, threshold)
        over = np.flatnonzero(table["log_odds"] > 0)[: cfg.top_enriched]
        summary_enriched = [
            {name: _py(table[name][i]) for name in table} | {"significant": bool(table["q_value"][i] < cfg.alpha)}
            for i in over
        ]
    pool_table = _pool_table(sel, pool, fstore, X, groups, scfg, threshold, pool_samples, n_pool, pm)
    if label_set is not None:
        for row in samples:
            for f in row["features"]:
                f["label"] = label_set.label(f["feature"])
        for row in summary_enriched:
            row["label"] = label_set.label(row["feature"])

    summary = {
        "format_version": FORMAT_VERSION,
        "selection": str(sel_dir) if sel_dir is not None else None,
        "method": sel.method,
        "feature_semantics": _semantics(sel, X is not None),
        "config": asdict(cfg),
        "select_config": scfg.to_dict(),
        "active_threshold": threshold,
        "counts": {"pool": n_pool, "selected": len(sel)},
        "stores": {
            "pool": _describe(pool),
            "features": _describe(fstore),
            "targets": [[_describe(s) for s in g] for g in groups],
        },
        "scores": {"selected": _stats(sel.scores)},
        "coverage": cov,
        "target_coverage": _target_coverage(X, sel.rows, groups, scfg, threshold) if X is not None else [],
        "enriched": summary_enriched,
        "significant_features": int(sum(r["significant"] for r in summary_enriched)),
        "mix": _mix(sel, pool_table),
        "labels": str(label_set.path) if label_set is not None and label_set.path else None,
    }
    if pool_table is not None and np.isfinite(pool_table["relevance"]).any():
        summary["scores"]["pool_relevance"] = _stats(pool_table["relevance"][np.isfinite(pool_table["relevance"])])
    result = Explanation(summary, samples, table, pool_table)
    if save:
        if sel_dir is None:
            raise MonaError("explaining a Selection object needs out_dir (or save=False)")
        result.save(out_dir if out_dir is not None else sel_dir)
    return result


OWN_FEATURES = "the sample's own strongest features: share = pooled value / sum of the sample's pooled values"


def _semantics(sel: Any, have_codes: bool) -> str | None:
    if sel.method in ("mona", "mmr", "greedy-coverage") or not have_codes:
        return sel.info.get("features")
    return OWN_FEATURES


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _stats(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, dtype=np.float64)
    if not len(x):
        return {}
    q = np.quantile(x, [0.0, 0.25, 0.5, 0.75, 1.0])
    names = ("min", "q25", "median", "q75", "max")
    return {"n": len(x), "mean": float(x.mean()), **{k: float(v) for k, v in zip(names, q, strict=False)}}


def _mode(store: Any) -> str:
    return str((getattr(store, "manifest", None) or {}).get("mode", "sae"))


def _open(given: Any, recorded: str | None, base: Path, what: str) -> Any:
    from mona.select.inputs import open_any

    if given is not None:
        return open_any(given)
    if not recorded:
        return None
    for cand in (Path(recorded), base / recorded):
        if cand.exists():
            return open_any(cand)
    log.warning("%s %s recorded in the selection was not found; explaining without it", what, recorded)
    return None


def _target_groups(sel: Any, given: Any, base: Path) -> list[list[Any]]:
    from mona.select.inputs import as_groups, open_any

    if given is not None:
        return [[open_any(t) for t in g] for g in as_groups(given)]
    groups = []
    for g in sel.info.get("target_sets") or []:
        stores = [_open(None, (d or {}).get("path"), base, "target store") for d in g]
        if any(s is None for s in stores):
            return []
        groups.append(stores)
    return groups


def _check_rows(store: Any, sel: Any) -> None:
    ids = store.ids
    for row, sid in zip(sel.rows, sel.ids, strict=False):
        if row >= len(ids) or str(ids[int(row)]) != str(sid):
            raise ArtifactMismatch(
                f"selection pick {sid!r} (row {row}) is not row {row} of store {getattr(store, 'path', '')}; "
                f"pass the pool store the selection was made from"
            )


def _describe(store: Any) -> dict[str, Any] | None:
    if store is None:
        return None
    m = getattr(store, "manifest", None) or {}
    sae = m.get("sae") or {}
    model = m.get("model") or {}
    return {
        "path": str(getattr(store, "path", "") or "") or None,
        "rows": len(store.ids),
        "mode": m.get("mode"),
        "model": model.get("name") if isinstance(model, dict) else model,
        "sae": sae.get("name") if isinstance(sae, dict) else sae,
        "hook": m.get("hook"),
        "pooling": m.get("pooling"),
        "span": m.get("span"),
    }


def _labels(labels: Any) -> Any:
    if labels is None:
        return None
    from mona.labels import FeatureLabels, load_labels

    return labels if isinstance(labels, FeatureLabels) else load_labels(labels)


def _target_matrices(groups: list[list[Any]], pm: Any) -> list[tuple[Any, np.ndarray, list[str]]]:
    """Per target set: its code matrix and prototype exactly as the selection scored them, and its sample ids."""
    out = []
    for g in groups:
        if any(_mode(s) != "sae" for s in g):
            return []
        T, proto = pm.targets(g)
        out.append((T, proto, [str(i) for s in g for i in s.ids]))
    return out


def _explain_samples(
    sel: Any, X: sp.csr_matrix | None, groups: list[list[Any]], scfg: Any, cfg: ExplainConfig, threshold: float,
    pm: Any = None,
) -> list[dict[str, Any]]:
    method = sel.method
    overlap = method in ("mona", "mmr")
    # the overlap terms use the codes exactly as the selection scored them (feature weights, contrast)
    Xw = pm.weighted_codes() if (pm is not None and overlap) else X
    targets = _target_matrices(groups, pm) if (pm is not None and overlap) else []
    covered = np.zeros(X.shape[1], bool) if X is not None else None
    out = []
    for i, sid in enumerate(sel.ids):
        row = int(sel.rows[i])
        score = float(sel.scores[i])
        recorded = list((sel.features or [[]] * len(sel))[i] or [])
        entry: dict[str, Any] = {"id": sid, "rank": i, "row": row, "score": score}
        if sel.targets is not None:
            entry["target"] = int(sel.targets[i])
        if sel.matches is not None:
            entry["match"] = sel.matches[i]
        if X is None:
            feats = [dict(f) for f in recorded[: cfg.top_features]]
            if method == "mona":
                for f in feats:
                    f["contribution"] = f["share"] * score
            entry["features"] = feats
            entry["listed_share"] = float(sum(f["share"] for f in feats))
            out.append(entry)
            continue
        idx, val = X.indices[X.indptr[row] : X.indptr[row + 1]], X.data[X.indptr[row] : X.indptr[row + 1]]
        entry["n_active"] = int((val > threshold).sum())
        if overlap and targets:
            widx, wval = Xw.indices[Xw.indptr[row] : Xw.indptr[row + 1]], Xw.data[Xw.indptr[row] : Xw.indptr[row + 1]]
            entry.update(_overlap_entry(sel, i, widx, wval, targets, scfg, cfg, recorded, pm, row))
        elif method == "greedy-coverage":
            act = val > threshold
            a_idx, a_val = idx[act], val[act]
            new = ~covered[a_idx]
            if int(new.sum()) != int(round(score)) and len(a_idx) == int(round(score)):  # a new round began
                covered[:] = False
                new = np.ones(len(a_idx), bool)
            covered[a_idx[new]] = True
            order = np.lexsort((a_idx[new], -a_val[new]))
            n_new = int(new.sum())
            entry["new_features"] = a_idx[new][order].astype(int).tolist()
            entry["features"] = [
                {"feature": int(a_idx[new][j]), "share": 1.0 / n_new, "value": float(a_val[new][j])}
                for j in order[: cfg.top_features]
            ]
        else:
            total = float(np.abs(val).sum(dtype=np.float64))
            order = np.lexsort((idx, -val))[: cfg.top_features]
            entry["features"] = [
                {"feature": int(idx[j]), "share": float(abs(val[j]) / total), "value": float(val[j])}
                for j in order
                if val[j] != 0
            ]
        entry["listed_share"] = float(sum(f["share"] for f in entry["features"]))
        out.append(entry)
    return out


def _overlap_entry(
    sel: Any, i: int, idx: np.ndarray, val: np.ndarray, targets: list, scfg: Any, cfg: ExplainConfig, recorded: list,
    pm: Any = None, row: int = -1,
) -> dict[str, Any]:
    k = int(sel.targets[i]) if sel.targets is not None else 0
    T, proto, tids = targets[min(k, len(targets) - 1)]
    t = proto
    if scfg.aggregate == "max" and sel.matches is not None and sel.matches[i] in tids:
        from mona.select.target import target_row

        t = target_row(T, tids.index(sel.matches[i]))
    terms = overlap_terms(idx, val, t, scfg.similarity)
    total = float(terms.sum())
    offset = 0.0
    if scfg.similarity == "jaccard":
        denom = float(val.sum(dtype=np.float64)) + float(t.sum(dtype=np.float64)) - total
    elif scfg.similarity == "decoder":
        denom = float(pm.decoded_norms()[row])
        offset = float(pm.code_offset(t))
    else:
        denom = float(np.linalg.norm(val.astype(np.float64)) * np.linalg.norm(t.astype(np.float64)))
    relevance = (total + offset) / denom if denom > 0 else 0.0
    # each feature's part of the score; under decoder they sum to the score minus the pool-mean offset
    part = (total / denom if denom > 0 else 0.0) if scfg.similarity == "decoder" else relevance
    if sel.method == "mona" and abs(relevance - float(sel.scores[i])) > 1e-3 * max(1.0, abs(relevance)):
        log.warning("pick %s: score %.5f recomputed from the stores is %.5f; did the stores change?",
                    sel.ids[i], sel.scores[i], relevance)
    order = np.lexsort((idx, -terms))[: cfg.top_features]
    feats = [
        {
            "feature": int(idx[j]),
            "share": float(terms[j] / total),
            "contribution": float(terms[j] / total * part),
            "value": float(val[j]),
            "target": float(t[idx[j]]),
        }
        for j in order
        if total > 0 and terms[j] != 0
    ]
    top_rec = [int(f["feature"]) for f in recorded[: len(feats)]]
    if top_rec and top_rec != [f["feature"] for f in feats[: len(top_rec)]]:
        log.debug("pick %s: recorded top features %s differ from recomputed ones (ties?)", sel.ids[i], top_rec)
    out = {"relevance": relevance, "numerator": total, "denominator": denom, "features": feats}
    if scfg.similarity == "decoder":
        out["offset"] = offset / denom if denom > 0 else 0.0
    return out


def _target_coverage(X: sp.csr_matrix, rows: np.ndarray, groups: list[list[Any]], scfg: Any, thr: float) -> list:
    out = []
    pool_active = active_counts(X, thr) > 0
    sel_active = active_counts(X[np.unique(rows)], thr) > 0
    from mona.select.inputs import stack_codes

    for k, g in enumerate(groups):
        if any(_mode(s) != "sae" for s in g):
            return []
        proto = np.asarray(stack_codes(g, scfg.binarize, scfg.active_threshold).mean(axis=0)).ravel()
        tf = proto > thr
        out.append({
            "target": k,
            "target_features": int(tf.sum()),
            "covered_by_pool": int((tf & pool_active).sum()),
            "covered_by_selection": int((tf & sel_active).sum()),
        })
    return out


def _pool_relevance(pool: Any, groups: list[list[Any]], scfg: Any, pm: Any = None) -> np.ndarray | None:
    """Every pool row's relevance to the target(s), recomputed from stores with the selection's own scorers."""
    from mona.select.target import PoolMatrices, score_dense, score_mona

    scorer = {"mona": score_mona, "mmr": score_mona, "dense": score_dense}.get(scfg.method)
    if scfg.method == "nait":
        from mona.select.nait import score_nait as scorer
    if scorer is None or pool is None or not groups:
        return None
    if scfg.method == "mmr" and _mode(pool) == "dense":
        scorer = score_dense
    if pm is None or pm.store is not pool or pm.config != scfg:
        pm = PoolMatrices(pool, scfg, sae=getattr(pm, "sae", None))
    try:
        return np.max([scorer(pm, g, k).scores for k, g in enumerate(groups)], axis=0)
    except MonaError as exc:
        log.warning("pool relevance not recomputed: %s", exc)
        return None


def _pool_table(sel: Any, pool: Any, fstore: Any, X: Any, groups: list, scfg: Any, thr: float,
                pool_samples: Any, n: int, pm: Any = None) -> dict[str, np.ndarray] | None:
    store = fstore if fstore is not None else pool
    samples = _pool_samples(pool_samples if pool_samples is not None else sel.info.get("pool_samples"), store)
    if store is None and samples is None:
        return None
    ids = [str(i) for i in store.ids] if store is not None else [str(s.id) for s in samples]
    rank = np.full(len(ids), -1, np.int64)
    rank[sel.rows] = np.arange(len(sel))
    table: dict[str, np.ndarray] = {"id": np.array(ids, dtype=object), "row": np.arange(len(ids)),
                                   "selected": rank >= 0, "rank": rank}
    if X is not None:
        table["n_active"] = np.diff(sp.csr_matrix(X.multiply(X > thr)).indptr).astype(np.int64)
    lengths = getattr(store, "lengths", None) if store is not None else None
    if lengths is not None and len(lengths) == len(ids):
        table["length"] = np.asarray(lengths, np.int64)
    rel = _pool_relevance(pool, groups, scfg, pm)
    table["relevance"] = rel if rel is not None else np.full(len(ids), np.nan)
    if samples is not None:
        for key in LABEL_KEYS:
            vals = [s.record.get(key) for s in samples]
            if any(v is not None for v in vals):
                table[key] = np.array(["" if v is None else str(v) for v in vals], dtype=object)
    return table


def _pool_samples(given: Any, store: Any) -> list[Any] | None:
    if given is None:
        return None
    from mona.data import load_samples

    if isinstance(given, (str, Path)):
        if not Path(given).exists():
            log.warning("pool samples %s not found; the domain/source mix is computed on the selection only", given)
            return None
        given = load_samples(given)
    samples = list(given)
    if store is not None:
        from mona.select.inputs import check_samples

        check_samples(store, samples)
    return samples


def _mix(sel: Any, pool_table: dict[str, np.ndarray] | None) -> dict[str, Any]:
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


__all__ = [
    "ExplainConfig",
    "Explanation",
    "active_counts",
    "coverage",
    "enrichment",
    "explain",
    "load_explanation",
    "overlap_terms",
]
