"""``select()``: read the pool (and targets), ask the method to pick, return a :class:`Selection`."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from mona.errors import MonaError
from mona.select.config import SelectConfig
from mona.select.dedup import apply_dedup
from mona.select.inputs import as_groups, check_samples, open_any, sample_groups, store_path
from mona.select.methods import get_method
from mona.select.methods.base import Context, Method
from mona.select.selection import Selection
from mona.select.steer import SubsetStore, allowed_rows, boost_vector, check_features, feature_target, steers

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
    size = len(pool.ids) if pool is not None else len(pool_samples)
    n = cfg.budget(size)
    ctx, keep = _steered_context(method, cfg, pool, pool_samples, n, sae)
    dedup = None
    if cfg.dedup is not None:
        ctx, keep, dedup = apply_dedup(ctx, keep, pool, pool_samples)
    groups = _all_targets(method, cfg, target, target_samples, pool)
    t_load = time.perf_counter()
    picked = method.pick(ctx, groups)
    if keep is not None:
        picked.rows = keep[np.asarray(picked.rows, np.int64)]
    t_end = time.perf_counter()
    ids = [str(i) for i in pool.ids] if pool is not None else [str(s.id) for s in pool_samples]
    rows = np.asarray(picked.rows, np.int64)
    info = dict(picked.info)
    if dedup is not None:
        info["dedup"] = dedup
    if "index" in ctx.cache:
        info["index"] = ctx.cache["index"]
    if keep is not None and steers(cfg):
        info["steering"] = {"kept": int(len(keep)), "dropped": int(size - len(keep))}
    info.update(
        counts={"pool": size, "requested": n, "selected": int(len(rows)),
                "targets": [_group_size(g) for g in groups]},
        timing={"load_s": round(t_load - t0, 4), "select_s": round(t_end - t_load, 4), "total_s": round(t_end - t0, 4)},
        pool=_describe(pool),
        target_sets=[[_describe(s) for s in g] for g in groups] if method.target == "store" else [],
        features=method.features,
    )
    log.info("%s selected %d of %d samples in %.2f s", method.name, len(rows), size, t_end - t0)
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


def _steered_context(method: Method, cfg: SelectConfig, pool: Any, pool_samples: Any, n: int,
                     sae: Any) -> tuple[Context, np.ndarray | None]:
    """What the method sees: the whole pool, or (``exclude_features``/``require_features``) the rows left, with
    the features of ``boost_features`` weighted; and those rows (None when the pool is whole)."""
    if not steers(cfg):
        return Context(pool, pool_samples, cfg, n, sae=sae), None
    width = check_features(cfg, pool, method)
    keep = allowed_rows(cfg, pool)
    view, samples = pool, pool_samples
    if keep is not None:
        if len(keep) == 0:
            raise MonaError("feature steering leaves no pool sample (every one has an excluded feature or lacks a "
                            "required one); check exclude_features/require_features and steer_threshold")
        if len(keep) < n:
            log.warning("feature steering leaves %d pool samples, fewer than the budget %d: taking them all",
                        len(keep), n)
            n = len(keep)
        view = SubsetStore(pool, keep)
        samples = [pool_samples[int(r)] for r in keep] if pool_samples is not None else None
    return Context(view, samples, cfg, n, sae=sae, boost=boost_vector(cfg, width)), keep


def _all_targets(method: Method, cfg: SelectConfig, target: Any, target_samples: Any, pool: Any) -> list[list[Any]]:
    """The target sets, with the one given as features (``target_features``) when there is one."""
    groups = _target_groups(method, cfg, target, target_samples)
    if not cfg.target_features:
        return groups
    if method.target != "store":
        raise MonaError(f"target_features needs a target method on SAE codes (mona, mmr); {method.name!r} "
                        "takes no target store")
    return _merge_targets([*groups, [feature_target(cfg, pool, pool.codes().shape[1])]], cfg, method)


def _target_groups(method: Method, cfg: SelectConfig, target: Any, target_samples: Any) -> list[list[Any]]:
    """The target sets the method reads (stores or samples), merged into one when asked, checked non-empty."""
    store_groups = [[open_any(t) for t in g] for g in as_groups(target)]
    text_groups = sample_groups(target_samples)
    if method.target is None:
        if store_groups or text_groups:
            log.warning("method %r does not use a target; the target is ignored", method.name)
        return []
    groups = text_groups if method.target == "samples" else store_groups
    if not groups and cfg.target_features and method.target == "store":
        return []  # the target is given as features
    if not groups:
        what = "target samples (--target-samples)" if method.target == "samples" else "a target store (--target)"
        raise MonaError(f"method {method.name!r} needs {what}")
    for k, g in enumerate(groups):
        if not g or (method.target == "store" and sum(len(s.ids) for s in g) == 0):
            raise MonaError(f"target set {k} is empty")
    return _merge_targets(groups, cfg, method)


def _merge_targets(groups: list[list[Any]], cfg: SelectConfig, method: Method) -> list[list[Any]]:
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
