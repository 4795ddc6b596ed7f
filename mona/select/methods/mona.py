"""``mona`` — MONA / NAS (arXiv 2503.15573): pooled SAE codes compared with the target's.

Score of a pool sample against the target prototype (or, with ``aggregate="max"``, its best target sample;
with ``aggregate="fused"``, the two rankings fused): weighted Jaccard, cosine, or cosine through the SAE decoder
(see :class:`CodeOptions`). Every feature's term of the similarity is explicit, so picks are explained by the
features they share with the target.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from mona.errors import MonaError
from mona.select import stream
from mona.select.inputs import stack_codes
from mona.select.matrices import PoolMatrices, reweight, target_row
from mona.select.methods.base import (
    Attribution,
    Context,
    Scored,
    TargetMethod,
    finish,
    own_features_entry,
    pick_entry,
    recorded_features,
    require_group,
    row_codes,
    store_is,
    target_ids,
)
from mona.select.neighbours import best_targets, code_space, dense_space, pool_rows, resolve
from mona.select.similarity import (
    contributions,
    max_cosine_offsets,
    max_similarity_to_rows,
    similarity_to_vector,
)

log = logging.getLogger(__name__)

OVERLAP = (
    "overlap with the target: share_k = term_k / Σ_j term_j with term_k = min(a_k, t_k) (jaccard), "
    "a_k·t_k (cosine) or a_k·g_k with g the target's direction mapped back to codes (decoder); shares of all "
    "features sum to 1 and share_k·score is feature k's part of the score (decoder: of the score minus the "
    "pool-mean offset)"
)


PRESETS: dict[str, dict[str, Any]] = {
    "robust": {"similarity": "cosine", "aggregate": "fused", "feature_weights": "idf", "max_feature_share": 0.5,
               "contrast": True},
    "paper": {"similarity": "jaccard", "aggregate": "prototype", "feature_weights": "none", "max_feature_share": 1.0,
              "contrast": False},
}
"""What each :attr:`CodeOptions.preset` gives the options left unset (``None``); a preset's ``contrast`` applies
only where the similarity is ``cosine``."""


@dataclass
class CodeOptions:
    """How pooled SAE codes are compared with a target (``mona``, and ``mmr``'s relevance).

    ``similarity``, ``feature_weights``, ``max_feature_share`` and ``contrast`` left unset (``None``) take the
    ``preset``'s values (:data:`PRESETS`); given ones always win. After construction every field holds its
    resolved value."""

    preset: Literal["robust", "paper"] = "robust"
    """Where unset settings come from. ``robust``: the setting with the smallest worst-case loss to the best
    baseline across the targets of both the demo and the transfer benchmark's tuning halves (BENCHMARKS.md):
    IDF-weighted mean codes without the features active in over half the pool, compared by cosine with the
    target prototype minus the pool's mean (``contrast``) and with each target sample, the two rankings fused
    (``aggregate="fused"``). ``paper``: the MONA paper's recipe, weighted Jaccard of unweighted mean codes to the
    target prototype."""
    similarity: Literal["jaccard", "cosine", "decoder"] | None = None
    """Weighted Jaccard Σmin/Σmax (needs codes >= 0), cosine, or ``decoder``: cosine after mapping the (weighted)
    codes back through the SAE's decoder into the model's residual space, centred and standardised over the
    pool, so that features with similar directions (a feature split in two, near-duplicates) still match.
    ``decoder`` needs the SAE (named in the store's manifest). Unset: the preset's."""
    aggregate: Literal["prototype", "max", "fused"] | None = None
    """Similarity to the mean target embedding (``prototype``; for binary codes the target set's
    feature-frequency profile), the maximum similarity over the target samples (``max``), or ``fused``: the pool
    ranked both ways and the ranks fused (reciprocal-rank fusion, score ``1/(60 + rank_prototype) + 1/(60 +
    rank_max)``), so that a sample close to the target set as a whole and one close to a single target sample both
    rank high. Unset: the preset's."""
    binarize: bool = False
    """Treat codes above ``active_threshold`` as 1 before scoring (a mean-pooled store then behaves like a
    ``binary`` pooled one, as in NAS)."""
    active_threshold: float = 0.0
    """A feature is active in a sample when its pooled code is strictly above this (``binarize``, IDF counts)."""
    feature_weights: Literal["none", "idf"] | None = None
    """Multiply each feature, in pool and target codes alike, by a weight before scoring. ``idf``:
    ``ln((1 + n) / (1 + df)) + 1`` with ``df`` the pool samples where it is active, so features that fire
    everywhere (formatting, common tokens) count less than topical ones. Unset: the preset's."""
    max_feature_share: float | None = None
    """Ignore features active in more than this share of the pool's samples (they describe the pool's common
    format rather than a topic); 1.0 keeps all. Unset: the preset's."""
    contrast: bool | None = None
    """With ``similarity="cosine"``: score against the target prototype minus the pool's mean code (after
    ``feature_weights``), i.e. against what sets the target apart from the pool. Unset: the preset's (for cosine;
    off for the other similarities)."""
    max_target_share: float = 1.0
    """Remove from the target's codes the features active in more than this share of the target samples (what
    every target sample shares is mostly its format: a multiple-choice layout, a code fence); 1.0 keeps all.
    Pool codes are unchanged. Needs at least two target samples."""

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise MonaError(f"preset must be one of {', '.join(PRESETS)}; got {self.preset!r}")
        for name, value in PRESETS[self.preset].items():
            if getattr(self, name) is None and name != "contrast":
                setattr(self, name, value)
        if self.contrast is None:
            self.contrast = bool(PRESETS[self.preset]["contrast"]) and self.similarity == "cosine"
        for name, valid in (("similarity", ("jaccard", "cosine", "decoder")),
                            ("aggregate", ("prototype", "max", "fused")),
                            ("feature_weights", ("none", "idf"))):
            if getattr(self, name) not in valid:
                raise MonaError(f"{name} must be one of {', '.join(valid)}; got {getattr(self, name)!r}")
        for name in ("max_feature_share", "max_target_share"):
            if not 0.0 < float(getattr(self, name)) <= 1.0:
                raise MonaError(f"{name} must be in (0, 1], got {getattr(self, name)!r}")
        if self.contrast and self.similarity != "cosine":
            raise MonaError("contrast=True needs similarity='cosine' (the contrasted prototype has negative entries)")


class Mona(TargetMethod):
    name = "mona"
    summary = "similarity of pooled SAE codes to the target (weighted Jaccard, cosine, or through the decoder)"
    Options = CodeOptions
    pool_modes = ("sae",)
    sae_features = True
    features = OVERLAP

    def score(self, ctx: Context, group: list[Any], k: int) -> Scored:
        return score_codes(ctx.matrices(), group, k, ctx.config.top_features, self.name, ctx)

    def attribute(self, a: Attribution) -> list[dict[str, Any]]:
        return overlap_attribution(a, check_scores=pm_aggregate(a) != "fused")


def score_codes(pool: PoolMatrices, group: list[Any], k: int, top: int, method: str = "mona",
                ctx: Context | None = None) -> Scored:
    """Similarity of the pool's (weighted) codes to a target set, with per-row feature contributions.

    A store on disk is scored shard by shard against the prototype (jaccard, cosine), never loaded whole;
    ``aggregate="max"`` with cosine or decoder similarity asks the index (:mod:`mona.select.neighbours`)."""
    cfg = pool.config
    require_group(group, k, ("sae",), method, pool.store)
    group = drop_target_common(group, cfg.max_target_share, cfg.active_threshold)
    if cfg.aggregate == "fused":
        return _score_fused(pool, group, k, top, method, ctx)
    if cfg.aggregate == "max" and cfg.similarity != "jaccard" and ctx is not None:
        path = resolve(ctx.config.index, pool_rows(pool.store), pool.width(), queries=len(target_ids(group)))
        if path == "ivf" or (path == "exact" and cfg.similarity == "decoder"):
            return _score_max_indexed(pool, group, top, path, ctx)
        if _streams(pool):
            return _score_max_streamed(pool, group, top, ctx)
    if cfg.aggregate == "prototype" and cfg.similarity != "decoder" and _streams(pool):
        return _score_streamed(pool, group, top)
    X = pool.weighted_codes()
    T, t = pool.targets(group)
    tids = target_ids(group)
    if cfg.similarity == "decoder":
        return _score_decoder(pool, X, T, t, tids, top)
    if cfg.aggregate == "prototype":
        scores = similarity_to_vector(X, t, cfg.similarity)

        def explain(rows: np.ndarray) -> tuple[list[list[dict]], None]:
            return [_row_contrib(X, r, t, cfg.similarity, top) for r in rows], None

        return Scored(scores, explain, {"target_active_features": int((t > 0).sum())})
    scores, arg = max_similarity_to_rows(X, T, cfg.similarity)

    def explain_max(rows: np.ndarray) -> tuple[list[list[dict]], list[str | None]]:
        feats = [_row_contrib(X, r, target_row(T, int(arg[r])), cfg.similarity, top) for r in rows]
        return feats, [tids[int(arg[r])] for r in rows]

    return Scored(scores, explain_max)


def drop_target_common(group: list[Any], share: float, threshold: float = 0.0) -> list[Any]:
    """The target set as one in-memory store without the features active (above ``threshold``) in more than
    ``share`` of its samples; the set itself when ``share`` is 1, it has one sample or no feature is that
    common."""
    from mona.select.inputs import ArrayStore

    if share >= 1.0 or not group or not hasattr(group[0], "codes"):
        return group
    T = stack_codes(group, False, 0.0)
    if T.shape[0] < 2:
        return group
    common = np.bincount(T.indices[T.data > threshold], minlength=T.shape[1]) > share * T.shape[0]
    if not common.any():
        return group
    T = T.copy()
    T.data[common[T.indices]] = 0
    T.eliminate_zeros()
    return [ArrayStore(target_ids(group), codes_matrix=T, manifest=dict(getattr(group[0], "manifest", {}) or {}))]


RRF_K = 60
"""Reciprocal-rank fusion's constant (the usual value; not tuned on the benchmarks)."""


def fuse_ranks(*scores: np.ndarray, k: int = RRF_K) -> np.ndarray:
    """Reciprocal-rank fusion: ``Σ 1 / (k + rank)`` over the score vectors, rank 1 = highest, ties sharing the
    best rank."""
    return sum(1.0 / (k + rankdata(-np.asarray(s, np.float64), method="min")) for s in scores)


def _score_fused(pool: PoolMatrices, group: list[Any], k: int, top: int, method: str,
                 ctx: Context | None) -> Scored:
    """``aggregate="fused"``: the prototype and the max scores (each by its own path), fused by rank. Picks are
    explained by the features they share with the prototype and by their best-matching target sample."""
    cfg = pool.config
    parts: dict[str, Scored] = {}
    try:
        for aggregate in ("prototype", "max"):
            pool.config = SimpleNamespace(**{**vars(cfg), "aggregate": aggregate})
            parts[aggregate] = score_codes(pool, group, k, top, method, ctx)
    finally:
        pool.config = cfg
    proto, best = parts["prototype"], parts["max"]

    def explain(rows: np.ndarray) -> tuple[list[list[dict]] | None, list[str | None] | None]:
        return proto.explain(rows)[0], best.explain(rows)[1]

    info = {**proto.info, **best.info, "fusion": {"rrf_k": RRF_K, "of": ["prototype", "max"]}}
    return Scored(fuse_ranks(proto.scores, best.scores), explain, info)


def _streams(pool: PoolMatrices) -> bool:
    return pool.streams()


def _score_streamed(pool: PoolMatrices, group: list[Any], top: int) -> Scored:
    """Prototype scores of a store on disk, one block of its memory-mapped shards at a time; the picks' codes
    are read back by row to explain them."""
    cfg = pool.config
    _, t = pool.targets(group)
    space = code_space(pool, weighted=True)
    scores = stream.prototype_scores(pool.store, t, cfg.similarity, pool.feature_weights(), cfg.binarize,
                                     cfg.active_threshold)

    def explain(rows: np.ndarray) -> tuple[list[list[dict]], None]:
        Xr = space.vectors.rows(rows)
        return [_row_contrib(Xr, i, t, cfg.similarity, top) for i in range(len(rows))], None

    return Scored(scores, explain, {"target_active_features": int((t > 0).sum()), "streamed": True})


def _score_max_streamed(pool: PoolMatrices, group: list[Any], top: int, ctx: Context) -> Scored:
    """Exact ``aggregate="max"`` cosine of a store on disk, one block of its shards at a time (the same scores and
    arg-max targets as the in-memory pass)."""
    cfg = pool.config
    T, _ = pool.targets(group)
    tids = target_ids(group)
    space = code_space(pool, weighted=True)
    scores = np.empty(space.n, np.float64)
    arg = np.empty(space.n, np.int64)
    if cfg.contrast:  # the targets' sparse codes and the pool's mean direction, not their dense differences
        w = pool.feature_weights()
        U = stack_codes(group, cfg.binarize, cfg.active_threshold)
        U, shift = (reweight(U, w) if w is not None else U), pool.code_mean()
    for a, block in space.vectors.blocks():
        part = max_cosine_offsets(block, U, shift) if cfg.contrast else max_similarity_to_rows(block, T, "cosine")
        scores[a : a + block.shape[0]], arg[a : a + block.shape[0]] = part

    def explain_max(rows: np.ndarray) -> tuple[list[list[dict]], list[str | None]]:
        Xr = space.vectors.rows(rows)
        feats = [_row_contrib(Xr, i, target_row(T, int(arg[r])), cfg.similarity, top) for i, r in enumerate(rows)]
        return feats, [tids[int(arg[r])] for r in rows]

    info = {"path": "exact", "kind": "sparse products", "over": "targets", "targets": T.shape[0], "streamed": True}
    ctx.cache["index"] = info
    return Scored(scores, explain_max, {"index": info})


def _score_max_indexed(pool: PoolMatrices, group: list[Any], top: int, path: str, ctx: Context) -> Scored:
    """``aggregate="max"`` through the index: each pool row's best target sample (cosine over the weighted
    codes, or over the decoded vectors for ``decoder``), from :func:`mona.select.neighbours.best_targets`."""
    cfg = pool.config
    T, _ = pool.targets(group)
    tids = target_ids(group)
    if cfg.similarity == "decoder":
        Tw = stack_codes(group, cfg.binarize, cfg.active_threshold)
        w = pool.feature_weights()
        space, queries = dense_space(pool, decoder=True), pool.decode(reweight(Tw, w) if w is not None else Tw)
    else:
        space, queries = code_space(pool, weighted=True), T
    scores, arg, info = best_targets(space, queries, ctx.n, path)
    ctx.cache["index"] = info
    sim = cfg.similarity
    code_space_rows = code_space(pool, weighted=True).vectors

    def explain_max(rows: np.ndarray) -> tuple[list[list[dict]], list[str | None]]:
        Xr = code_space_rows.rows(rows)
        feats = [_row_contrib(Xr, i, target_row(T, int(arg[r])), sim, top) for i, r in enumerate(rows)]
        return feats, [tids[int(arg[r])] for r in rows]

    return Scored(scores, explain_max, {"index": info})


def _score_decoder(pool: PoolMatrices, X: sp.csr_matrix, G: np.ndarray, g: np.ndarray, tids: list[str],
                   top: int) -> Scored:
    """Cosine of decoded, standardised pool rows to the target prototype (or each target sample), computed in
    code space as ``(x·g + offset) / ‖z‖`` so that every feature's term is explicit."""
    norms = pool.decoded_norms()
    inv = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    if pool.config.aggregate == "prototype":
        scores = (np.asarray(X @ g.astype(np.float32), np.float64) + pool.code_offset(g)) * inv

        def explain(rows: np.ndarray) -> tuple[list[list[dict]], None]:
            return [_row_contrib(X, r, g, "decoder", top) for r in rows], None

        return Scored(scores, explain, {"target_features": int((g > 0).sum())})
    offsets = pool.code_offset(G)  # (m,)
    scores = np.empty(X.shape[0], np.float64)
    arg = np.empty(X.shape[0], np.int64)
    Gt = np.ascontiguousarray(G.T)
    for a in range(0, X.shape[0], 16384):
        b = min(X.shape[0], a + 16384)
        S = (np.asarray(X[a:b] @ Gt, np.float64) + offsets) * inv[a:b, None]
        arg[a:b] = S.argmax(axis=1)
        scores[a:b] = S[np.arange(b - a), arg[a:b]]

    def explain_max(rows: np.ndarray) -> tuple[list[list[dict]], list[str | None]]:
        return [_row_contrib(X, r, G[int(arg[r])], "decoder", top) for r in rows], [tids[int(arg[r])] for r in rows]

    return Scored(scores, explain_max)


def _row_contrib(X: sp.csr_matrix, r: int, t: np.ndarray, similarity: str, top: int) -> list[dict]:
    idx, val = row_codes(X, r)
    return contributions(idx, val, t, similarity, top)


def overlap_terms(a_idx: np.ndarray, a_val: np.ndarray, t: np.ndarray, similarity: str) -> np.ndarray:
    """Per non-zero feature of a row, its term of the similarity numerator (min for Jaccard, product else)."""
    tv = t[a_idx]
    return np.minimum(a_val, tv).astype(np.float64) if similarity == "jaccard" else a_val.astype(np.float64) * tv


# --------------------------------------------------------------------------------------------------------
# Explanation: each pick's score decomposed into its features' terms
# --------------------------------------------------------------------------------------------------------


def overlap_attribution(a: Attribution, check_scores: bool) -> list[dict[str, Any]]:
    """Per pick, the features it shares with the target and each one's part of the relevance score, recomputed
    from the stores with the selection's own options (feature weights, contrast, decoder). ``check_scores``:
    the selection's scores are these relevances (``mona``; for ``mmr`` they are the MMR objective)."""
    pm = a.matrices
    if a.codes is None:
        return [_recorded(a, i, check_scores) for i in range(len(a.selection))]
    if pm is None or not a.groups or any(not store_is(s, "sae") for g in a.groups for s in g):
        return [own_features_entry(a, i) for i in range(len(a.selection))]
    share, threshold = pm_option(a, "max_target_share", 1.0), pm.config.active_threshold
    groups = [drop_target_common(g, share, threshold) for g in a.groups]
    targets = [(*pm.targets(g), target_ids(g)) for g in groups]
    Xw = pm.weighted_codes()
    out = []
    for i in range(len(a.selection)):
        entry = pick_entry(a, i)
        entry["n_active"] = int((row_codes(a.codes, entry["row"])[1] > a.threshold).sum())
        entry.update(_overlap(a, i, *row_codes(Xw, entry["row"]), targets, pm, check_scores))
        entry["listed_share"] = float(sum(f["share"] for f in entry["features"]))
        out.append(entry)
    return out


def _recorded(a: Attribution, i: int, with_contribution: bool) -> dict[str, Any]:
    entry = pick_entry(a, i)
    feats = recorded_features(a, i)
    for f in feats if with_contribution else ():
        f["contribution"] = f["share"] * entry["score"]
    return finish(entry, feats)


def _target_vector(a: Attribution, i: int, targets: list) -> np.ndarray:
    sel = a.selection
    k = int(sel.targets[i]) if sel.targets is not None else 0
    T, proto, tids = targets[min(k, len(targets) - 1)]
    if pm_aggregate(a) == "max" and sel.matches is not None and sel.matches[i] in tids:
        return target_row(T, tids.index(sel.matches[i]))
    return proto


def pm_aggregate(a: Attribution) -> str:
    return str(pm_option(a, "aggregate", "prototype"))


def pm_option(a: Attribution, name: str, default: Any) -> Any:
    return getattr(a.selection.config.options, name, default)


def _overlap(a: Attribution, i: int, idx: np.ndarray, val: np.ndarray, targets: list, pm: PoolMatrices,
             check_scores: bool) -> dict[str, Any]:
    sim = pm.config.similarity
    t = _target_vector(a, i, targets)
    terms = overlap_terms(idx, val, t, sim)
    total, offset = float(terms.sum()), 0.0
    if sim == "jaccard":
        denom = float(val.sum(dtype=np.float64)) + float(t.sum(dtype=np.float64)) - total
    elif sim == "decoder":
        denom, offset = float(pm.decoded_norms()[int(a.selection.rows[i])]), float(pm.code_offset(t))
    else:
        denom = float(np.linalg.norm(val.astype(np.float64)) * np.linalg.norm(t.astype(np.float64)))
    relevance = (total + offset) / denom if denom > 0 else 0.0
    # each feature's part of the score; under decoder they sum to the score minus the pool-mean offset
    part = (total / denom if denom > 0 else 0.0) if sim == "decoder" else relevance
    score = float(a.selection.scores[i])
    if check_scores and abs(relevance - score) > 1e-3 * max(1.0, abs(relevance)):
        log.warning("pick %s: score %.5f recomputed from the stores is %.5f; did the stores change?",
                    a.selection.ids[i], score, relevance)
    order = np.lexsort((idx, -terms))[: a.top_features]
    feats = [{"feature": int(idx[j]), "share": float(terms[j] / total), "contribution": float(terms[j] / total * part),
              "value": float(val[j]), "target": float(t[idx[j]])} for j in order if total > 0 and terms[j] != 0]
    out = {"relevance": relevance, "numerator": total, "denominator": denom, "features": feats}
    if sim == "decoder":
        out["offset"] = offset / denom if denom > 0 else 0.0
    return out
