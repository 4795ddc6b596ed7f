"""``select()``: read the pool (and targets), ask the method to pick, return a :class:`Selection`."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from mona.errors import MonaError
from mona.select.config import SelectConfig
from mona.select.inputs import as_groups, check_samples, open_any, sample_groups, store_path
from mona.select.methods import get_method
from mona.select.methods.base import Context, Method
from mona.select.selection import Selection

log = logging.getLogger(__name__)


def make_config(config: SelectConfig | None, overrides: dict[str, Any]) -> SelectConfig:
    """``config`` with flat ``overrides`` (shared fields or the method's options) applied, or one built from
    the overrides alone."""
    if config is None:
        return SelectConfig.build(**overrides)
    return config.replace(**overrides) if overrides else config


def select(
    pool: Any = None,
    *,
    target: Any = None,
    config: SelectConfig | None = None,
    pool_samples: list[Any] | None = None,
    target_samples: list[Any] | list[list[Any]] | None = None,
    sae: Any = None,
    **overrides: Any,
) -> Selection:
    """Select a subset of ``pool``.

    Args:
        pool: a store (``mona.store.Store``, an :class:`~mona.select.inputs.ArrayStore`) or a store folder.
            May be ``None`` for methods that read only texts (random, longest, tfidf, bm25).
        target: target store(s) for store methods (mona, nait, mmr, dense, sbert): one store, a list of stores
            (one target set each) or a list of lists (each inner list one target set).
        config: a :class:`SelectConfig`; keyword ``overrides`` (shared fields such as ``n``, or the method's
            own options such as ``similarity``) replace its values (or build one).
        pool_samples: the pool's samples, in store row order (records are written back in the output).
        target_samples: target samples for text methods: a list (one set) or a list of lists.
        sae: the SAE that made the pool's codes, for ``similarity="decoder"``: a ``mona.saes.LoadedSAE``, an
            sae-lens SAE, a ``load_sae`` spec or its (F, d) decoder matrix; default: the SAE the pool store's
            manifest names.
    """
    t0 = time.perf_counter()
    cfg = make_config(config, overrides)
    method = get_method(cfg.method)
    pool = open_any(pool)
    method.check_pool(pool, pool_samples)
    check_samples(pool, pool_samples)
    ctx = Context(pool, pool_samples, cfg, 0, sae=sae)
    ctx.n = cfg.budget(ctx.size)
    groups = _target_groups(method, cfg, target, target_samples)
    t_load = time.perf_counter()
    picked = method.pick(ctx, groups)
    t_end = time.perf_counter()
    ids = [str(i) for i in pool.ids] if pool is not None else [str(s.id) for s in pool_samples]
    rows = np.asarray(picked.rows, np.int64)
    info = dict(picked.info)
    info.update(
        counts={"pool": ctx.size, "requested": ctx.n, "selected": int(len(rows)),
                "targets": [_group_size(g) for g in groups]},
        timing={"load_s": round(t_load - t0, 4), "select_s": round(t_end - t_load, 4), "total_s": round(t_end - t0, 4)},
        pool=_describe(pool),
        target_sets=[[_describe(s) for s in g] for g in groups] if method.target == "store" else [],
        features=method.features,
    )
    log.info("%s selected %d of %d samples in %.2f s", method.name, len(rows), ctx.size, t_end - t0)
    return Selection(
        rows=rows,
        ids=[ids[int(r)] for r in rows],
        scores=np.asarray(picked.scores, np.float64),
        method=method.name,
        config=cfg,
        features=picked.features if method.sae_features else None,
        targets=picked.targets,
        matches=picked.matches,
        records=[pool_samples[int(r)].record for r in rows] if pool_samples is not None else None,
        info=info,
    )


def _target_groups(method: Method, cfg: SelectConfig, target: Any, target_samples: Any) -> list[list[Any]]:
    """The target sets the method reads (stores or samples), merged into one when asked, checked non-empty."""
    store_groups = [[open_any(t) for t in g] for g in as_groups(target)]
    text_groups = sample_groups(target_samples)
    if method.target is None:
        if store_groups or text_groups:
            log.warning("method %r does not use a target; the target is ignored", method.name)
        return []
    groups = text_groups if method.target == "samples" else store_groups
    if not groups:
        what = "target samples (--target-samples)" if method.target == "samples" else "a target store (--target)"
        raise MonaError(f"method {method.name!r} needs {what}")
    for k, g in enumerate(groups):
        if not g or (method.target == "store" and sum(len(s.ids) for s in g) == 0):
            raise MonaError(f"target set {k} is empty")
    if len(groups) > 1 and (cfg.targets == "merge" or method.merge_targets):
        groups = [[x for g in groups for x in g]]
    if cfg.quotas is not None and len(cfg.quotas) != len(groups):
        raise MonaError(f"{len(cfg.quotas)} quotas given for {len(groups)} target sets")
    return groups


def _group_size(g: list[Any]) -> int:
    return int(sum(len(x.ids) if hasattr(x, "ids") else 1 for x in g))


def _describe(store: Any) -> dict[str, Any] | None:
    if store is None or not hasattr(store, "ids"):
        return None
    return {"path": store_path(store), "rows": len(store.ids), "manifest": getattr(store, "manifest", None)}
