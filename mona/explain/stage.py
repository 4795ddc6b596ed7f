"""``explain()``: which SAE features drive each pick, and how the selection differs from the pool.

Reads only artifacts (the selection folder and the embedding stores it names); it never runs the model. The
per-pick attribution is the selection method's own (:meth:`mona.select.methods.base.Method.attribute`); the
statistics are in :mod:`mona.explain.stats`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from mona.errors import ArtifactMismatch, MonaError
from mona.explain.artifacts import FORMAT_VERSION, ExplainConfig, Explanation
from mona.explain.pool import pool_table
from mona.explain.stats import coverage, enrichment, label_mix, summarize, target_coverage
from mona.select import Selection, get_method, load_selection
from mona.select.inputs import as_groups, open_any, stack_codes, store_mode
from mona.select.matrices import PoolMatrices
from mona.select.methods.base import Attribution
from mona.select.steer import boost_vector, feature_target

log = logging.getLogger(__name__)


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
    cfg = config if config is not None else ExplainConfig(**overrides)
    if config is not None and overrides:
        cfg = dataclasses.replace(config, **overrides)
    if isinstance(selection, Selection):
        sel, sel_dir = selection, Path(out_dir) if out_dir is not None else None
    else:
        sel_dir = Path(selection)
        sel = load_selection(sel_dir)
    method = get_method(sel.method)
    base = sel_dir if sel_dir is not None else Path.cwd()
    own = sel.config.option("active_threshold", 0.0)
    threshold = own if cfg.active_threshold is None else float(cfg.active_threshold)

    pool, fstore, groups = _stores(sel, pool_store, feature_store, target_stores, base)
    pm = _matrices(sel, pool, fstore, sae)
    if not groups and sel.config.target_features and pm is not None:
        groups = [[feature_target(sel.config, fstore, pm.codes().shape[1])]]
    X = pm.codes() if pm is not None else None
    samples = method.attribute(Attribution(sel, X, pm, groups, cfg.top_features, threshold))
    n_pool = len(fstore.ids) if fstore is not None else len(pool.ids) if pool is not None else None
    n_pool = n_pool or int((sel.info.get("counts") or {}).get("pool") or 0)
    table, summary_enriched, cov = _enrichment(X, sel.rows, threshold, cfg)
    ptable = pool_table(sel, method, pool, fstore, X, groups, threshold, pool_samples, pm)
    _add_labels(labels, samples, summary_enriched)
    summary = {
        "format_version": FORMAT_VERSION,
        "selection": str(sel_dir) if sel_dir is not None else None,
        "method": sel.method,
        "feature_semantics": method.feature_semantics(sel, X is not None),
        "config": dataclasses.asdict(cfg),
        "select_config": sel.config.to_dict(),
        "active_threshold": threshold,
        "counts": {"pool": n_pool, "selected": len(sel)},
        "stores": {"pool": _describe(pool), "features": _describe(fstore),
                   "targets": [[_describe(s) for s in g] for g in groups]},
        "scores": {"selected": summarize(sel.scores)},
        "coverage": cov,
        "target_coverage": _target_coverage(X, sel, groups, threshold) if X is not None else [],
        "enriched": summary_enriched,
        "significant_features": int(sum(r["significant"] for r in summary_enriched)),
        "mix": label_mix(sel, ptable),
        "labels": _labels_path(labels),
    }
    if ptable is not None and np.isfinite(ptable["relevance"]).any():
        summary["scores"]["pool_relevance"] = summarize(ptable["relevance"][np.isfinite(ptable["relevance"])])
    result = Explanation(summary, samples, table, ptable)
    if save:
        if sel_dir is None:
            raise MonaError("explaining a Selection object needs out_dir (or save=False)")
        result.save(out_dir if out_dir is not None else sel_dir)
    return result


def _stores(sel: Any, pool_store: Any, feature_store: Any, target_stores: Any, base: Path) -> tuple[Any, Any, list]:
    """The pool store, the SAE store explained in (the pool's own when it holds codes) and the target sets:
    given, or as recorded in the selection; each store checked to hold the selection's rows."""
    pool = _open(pool_store, (sel.info.get("pool") or {}).get("path"), base, "pool store")
    groups = _target_groups(sel, target_stores, base)
    fstore = _open(feature_store, None, base, "feature store") if feature_store is not None else None
    if fstore is None and pool is not None and store_mode(pool) == "sae":
        fstore = pool
    for store in (pool, fstore):
        if store is not None:
            _check_rows(store, sel)
    return pool, fstore, groups


def _matrices(sel: Any, pool: Any, fstore: Any, sae: Any) -> PoolMatrices | None:
    """The feature store's matrices: under the selection's own options and boosted features when it is the pool
    the selection read (so contributions add up to the scores), plain otherwise."""
    if fstore is None:
        return None
    if fstore is not pool:
        return PoolMatrices(fstore, None, sae=sae)
    boost = boost_vector(sel.config, fstore.codes().shape[1]) if sel.config.boost_features else None
    return PoolMatrices(fstore, sel.config.options, sae=sae, boost=boost)


def _enrichment(X: sp.csr_matrix | None, rows: np.ndarray, threshold: float, cfg: ExplainConfig):
    """The enrichment table, its top over-represented rows for the summary, and coverage (None without codes)."""
    if X is None:
        return None, [], None
    table = enrichment(X, rows, threshold, cfg.prior, cfg.min_pool_count)
    over = np.flatnonzero(table["log_odds"] > 0)[: cfg.top_enriched]
    top = [{name: _py(table[name][i]) for name in table} | {"significant": bool(table["q_value"][i] < cfg.alpha)}
           for i in over]
    return table, top, coverage(X, rows, threshold)


def _target_coverage(X: sp.csr_matrix, sel: Any, groups: list[list[Any]], thr: float) -> list[dict]:
    if any(store_mode(s) != "sae" for g in groups for s in g):
        return []
    binarize = bool(sel.config.option("binarize", False))
    own = sel.config.option("active_threshold", 0.0)
    protos = [np.asarray(stack_codes(g, binarize, own).mean(axis=0)).ravel() for g in groups]
    return target_coverage(X, sel.rows, protos, thr)


def _add_labels(labels: Any, samples: list[dict[str, Any]], enriched: list[dict[str, Any]]) -> None:
    label_set = _load_labels(labels)
    if label_set is None:
        return
    for row in samples:
        for f in row["features"]:
            f["label"] = label_set.label(f["feature"])
    for row in enriched:
        row["label"] = label_set.label(row["feature"])


def _load_labels(labels: Any) -> Any:
    if labels is None:
        return None
    from mona.labels import FeatureLabels, load_labels

    return labels if isinstance(labels, FeatureLabels) else load_labels(labels)


def _labels_path(labels: Any) -> str | None:
    if labels is None:
        return None
    path = getattr(labels, "path", labels)
    return str(path) if path else None


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _open(given: Any, recorded: str | None, base: Path, what: str) -> Any:
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
    sae, model = m.get("sae") or {}, m.get("model") or {}
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
