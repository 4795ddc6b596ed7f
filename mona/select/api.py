"""``select()``: read the pool (and targets), run one method, return a :class:`Selection`."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np

from mona.errors import MonaError
from mona.select.budget import round_robin, top_n
from mona.select.config import SAE_METHODS, TARGET_METHODS, TEXT_METHODS, SelectConfig
from mona.select.diversity import Picked, greedy_coverage, kcenter, mmr, own_features, simscale
from mona.select.inputs import (
    as_groups,
    check_samples,
    open_any,
    require_mode,
    sample_groups,
    store_mode,
    store_path,
)
from mona.select.nait import score_nait
from mona.select.selection import Selection
from mona.select.target import PoolMatrices, Scored, score_dense, score_mona
from mona.select.text import TextScorer, longest_scores

log = logging.getLogger(__name__)

#: What ``features[i]["share"]`` means, per method (written to selection.json).
FEATURE_SEMANTICS = {
    "mona": "overlap with the target: share_k = term_k / Σ_j term_j with term_k = min(a_k, t_k) (jaccard), "
    "a_k·t_k (cosine) or a_k·g_k with g the target's direction mapped back to codes (decoder); shares of all "
    "features sum to 1 and share_k·score is feature k's part of the score (decoder: of the score minus the "
    "pool-mean offset)",
    "mmr": "overlap with the target, as for mona (relevance part of the score)",
    "greedy-coverage": "features this pick newly covered, highest pooled value first; share = 1/score "
    "(score = number of newly covered features)",
    "simscale": "the sample's own strongest features: share = pooled value / sum of the sample's pooled values",
    "kcenter": "the sample's own strongest features: share = pooled value / sum of the sample's pooled values",
}

STORE_TARGET_METHODS = {"mona": score_mona, "dense": score_dense, "nait": score_nait, "mmr": None}


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
            May be ``None`` for methods that read only texts (random, longest, tfidf, bm25, sbert).
        target: target store(s) for store methods (mona, nait, mmr, dense): one store, a list of stores (one
            target set each) or a list of lists (each inner list one target set).
        config: a :class:`SelectConfig`; keyword ``overrides`` replace its fields (or build one).
        pool_samples: the pool's samples, in store row order (records are written back in the output).
        target_samples: target samples for text methods: a list (one set) or a list of lists.
        sae: the SAE that made the pool's codes, for ``similarity="decoder"``: a ``mona.saes.LoadedSAE``, an
            sae-lens SAE, a ``load_sae`` spec or its (F, d) decoder matrix; default: the SAE the pool store's
            manifest names.
    """
    t0 = time.perf_counter()
    cfg = config if config is not None else SelectConfig(**overrides)
    if config is not None and overrides:
        cfg = dataclasses.replace(config, **overrides)
    method = cfg.method
    pool = open_any(pool)
    store_groups = [[open_any(t) for t in g] for g in as_groups(target)]
    text_groups = sample_groups(target_samples)
    if pool is None and (method not in TEXT_METHODS or (method == "longest" and not pool_samples)):
        raise MonaError(f"method {method!r} needs a pool store")
    if pool is None and not pool_samples:
        raise MonaError("no pool: give a pool store or pool samples")
    check_samples(pool, pool_samples)
    N = len(pool.ids) if pool is not None else len(pool_samples)
    n = cfg.budget(N)
    ids = [str(i) for i in pool.ids] if pool is not None else [str(s.id) for s in pool_samples]

    is_text_target = method in ("tfidf", "bm25", "sbert")
    groups: list[list[Any]] = text_groups if is_text_target else store_groups
    if method in TARGET_METHODS and not groups:
        what = "target samples (--target-samples)" if is_text_target else "a target store (--target)"
        raise MonaError(f"method {method!r} needs {what}")
    for k, g in enumerate(groups):
        if not g or (not is_text_target and sum(len(s.ids) for s in g) == 0):
            raise MonaError(f"target set {k} is empty")
    if method not in TARGET_METHODS and (store_groups or text_groups):
        log.warning("method %r does not use a target; the target is ignored", method)
    if len(groups) > 1 and cfg.targets == "merge" or method == "mmr":
        groups = [[x for g in groups for x in g]] if groups else groups
    if cfg.quotas is not None and len(cfg.quotas) != len(groups):
        raise MonaError(f"{len(cfg.quotas)} quotas given for {len(groups)} target sets")
    t_load = time.perf_counter()

    pm = PoolMatrices(pool, cfg, sae=sae) if pool is not None else None
    info: dict[str, Any] = {}
    targets_out = matches = features = None
    if method in ("mona", "dense", "nait", "tfidf", "bm25", "sbert"):
        scorer = _scorer(method, pm, pool_samples, cfg)
        scored: list[Scored] = [scorer(g, k) for k, g in enumerate(groups)]
        t_score = time.perf_counter()
        if len(scored) == 1:
            rows = top_n(scored[0].scores, n)
            owner = np.zeros(len(rows), np.int64)
        else:
            rows, owner = round_robin([s.scores for s in scored], n, list(cfg.quotas) if cfg.quotas else None)
            targets_out = owner.tolist()
        scores = np.array([scored[o].scores[r] for r, o in zip(rows, owner, strict=False)], dtype=np.float64)
        features, matches = _explain(scored, rows, owner)
        for k, s in enumerate(scored):
            if s.info:
                info.setdefault("method_info", {})[f"target_{k}"] = s.info
    else:
        picked = _diversity(method, pm, pool_samples, cfg, n, groups)
        t_score = time.perf_counter()
        rows, scores, features = picked.rows, picked.scores, picked.features
        if picked.info:
            info["method_info"] = picked.info
    t_end = time.perf_counter()

    if method not in SAE_METHODS:
        features = None
    info.update(
        counts={"pool": N, "requested": n, "selected": int(len(rows)), "targets": [_group_size(g) for g in groups]},
        timing={
            "load_s": round(t_load - t0, 4),
            "score_s": round(t_score - t_load, 4),
            "select_s": round(t_end - t_score, 4),
            "total_s": round(t_end - t0, 4),
        },
        pool=_describe(pool),
        target_sets=[[_describe(s) for s in g] for g in groups] if not is_text_target else [],
        features=FEATURE_SEMANTICS.get(method),
    )
    records = [pool_samples[int(r)].record for r in rows] if pool_samples is not None else None
    log.info("%s selected %d of %d samples in %.2f s", method, len(rows), N, t_end - t0)
    return Selection(
        rows=np.asarray(rows, np.int64),
        ids=[ids[int(r)] for r in rows],
        scores=np.asarray(scores, np.float64),
        method=method,
        config=cfg,
        features=features,
        targets=targets_out,
        matches=matches,
        records=records,
        info=info,
    )


def _scorer(method: str, pm: PoolMatrices | None, pool_samples: Any, cfg: SelectConfig):
    if method in ("tfidf", "bm25", "sbert"):
        ts = TextScorer(pool_samples, cfg)
        return getattr(ts, method)
    fn = STORE_TARGET_METHODS[method]
    return lambda g, k: fn(pm, g, k)


def _explain(scored: list[Scored], rows: np.ndarray, owner: np.ndarray):
    features: list[Any] = [None] * len(rows)
    matches: list[Any] = [None] * len(rows)
    any_f = any_m = False
    for k, s in enumerate(scored):
        pos = np.flatnonzero(owner == k)
        if not len(pos):
            continue
        f, m = s.explain(rows[pos])
        for j, p in enumerate(pos):
            if f is not None:
                features[p] = f[j]
                any_f = True
            if m is not None:
                matches[p] = m[j]
                any_m = True
    return (features if any_f else None), (matches if any_m else None)


def _diversity(method: str, pm: PoolMatrices | None, pool_samples: Any, cfg: SelectConfig, n: int, groups) -> Picked:
    if method == "random":
        N = len(pool_samples) if pm is None else len(pm.store.ids)
        rng = np.random.default_rng(cfg.seed)
        draws = rng.random(N)
        rows = top_n(draws, n)
        return Picked(rows, draws[rows])
    if method == "longest":
        s = longest_scores(pool_samples, pm.store if pm else None)
        rows = top_n(s, n)
        return Picked(rows, s[rows])
    assert pm is not None
    mode = store_mode(pm.store)
    if method in ("greedy-coverage", "simscale"):
        require_mode(pm.store, ("sae",), method)
        X = pm.codes()
        if method == "greedy-coverage":
            return greedy_coverage(X, n, cfg.active_threshold, cfg.top_features, cfg.coverage_algorithm)
        p = simscale(X, n, cfg.active_threshold, cfg.sim_threshold, cfg.simscale_order, cfg.seed)
        p.features = own_features(X, p.rows, cfg.top_features)
        return p
    require_mode(pm.store, ("sae", "dense"), method)
    X = pm.codes() if mode == "sae" else pm.dense()
    if method == "kcenter":
        p = kcenter(X, n, cfg.seed)
        if mode == "sae":
            p.features = own_features(X, p.rows, cfg.top_features)
        return p
    # mmr: relevance to the merged target set, then the greedy trade-off
    scorer = score_mona if mode == "sae" else score_dense
    rel = scorer(pm, groups[0], 0)
    sim = cfg.similarity if mode == "sae" else "cosine"
    if sim == "decoder":  # redundancy in the same space as the relevance
        X, sim = pm.decoded(), "cosine"
    p = mmr(X, rel.scores, n, cfg.mmr_lambda, sim, cfg.mmr_candidates)
    f, _ = rel.explain(p.rows)
    p.features = f
    return p


def _group_size(g: list[Any]) -> int:
    return int(sum(len(x.ids) if hasattr(x, "ids") else 1 for x in g))


def _describe(store: Any) -> dict[str, Any] | None:
    if store is None or not hasattr(store, "ids"):
        return None
    return {"path": store_path(store), "rows": len(store.ids), "manifest": getattr(store, "manifest", None)}
