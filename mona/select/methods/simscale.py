"""``simscale`` — SAE-SimScale (arXiv 2502.14050): keep a sample unless it is too similar to one kept already.

Samples are visited by number of active features (most first) or in seeded random order; similarity is the
Jaccard index of active-feature sets, from sparse products in blocks, never a Python loop over pairs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from mona.errors import MonaError
from mona.select.inputs import binarize_codes
from mona.select.methods.base import OWN_FEATURES, Context, Method, Picked, own_features
from mona.select.neighbours import binary_space, open_index, pool_rows, resolve

log = logging.getLogger(__name__)


@dataclass
class SimScaleOptions:
    """SAE-SimScale's settings."""

    active_threshold: float = 0.0
    """A feature is active in a sample when its pooled code is strictly above this."""
    sim_threshold: float = 0.5
    """Drop a sample whose Jaccard similarity of active-feature sets to a kept one exceeds this."""
    simscale_order: Literal["features", "random"] = "features"
    """Visit samples by number of active features (most first) or in seeded random order."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.sim_threshold <= 1.0:
            raise MonaError(f"sim_threshold must be in [0, 1], got {self.sim_threshold}")
        if self.simscale_order not in ("features", "random"):
            raise MonaError(f"simscale_order must be one of features, random; got {self.simscale_order!r}")


class SimScale(Method):
    name = "simscale"
    summary = "SAE-SimScale: drop samples too similar (active-feature Jaccard) to one already kept"
    Options = SimScaleOptions
    pool_modes = ("sae",)
    sae_features = True
    features = OWN_FEATURES

    def pick(self, ctx: Context, groups: list[list[Any]]) -> Picked:
        o, pm = ctx.options, ctx.matrices()
        if resolve(ctx.config.index, pool_rows(ctx.pool), pm.width()) == "ivf":
            space = binary_space(pm, o.active_threshold)
            p = simscale_ivf(space, ctx.n, o.sim_threshold, o.simscale_order, ctx.config.seed)
            ctx.cache["index"] = p.info["index"]
            p.features = own_features(space.vectors.rows(p.rows), np.arange(len(p.rows)), ctx.config.top_features)
            return p
        X = pm.codes()
        p = simscale(X, ctx.n, o.active_threshold, o.sim_threshold, o.simscale_order, ctx.config.seed)
        p.features = own_features(X, p.rows, ctx.config.top_features)
        return p


def _max_jaccard_to_kept(Bb: sp.csr_matrix, sb: np.ndarray, kept_T: sp.csr_matrix | None,
                         kept_sizes: np.ndarray) -> np.ndarray:
    """Per row of the binary block ``Bb`` (active-set sizes ``sb``), its largest Jaccard similarity to the kept
    rows (``kept_T``: (F, K) binary, sizes ``kept_sizes``); 0 when nothing is kept yet."""
    if kept_T is None:
        return np.zeros(Bb.shape[0])
    inter = (Bb @ kept_T).tocsr()
    inter.sort_indices()
    sim = inter.copy()
    denom = sb[np.repeat(np.arange(Bb.shape[0]), np.diff(inter.indptr))] + kept_sizes[inter.indices] - inter.data
    sim.data = np.where(denom > 0, inter.data / np.where(denom > 0, denom, 1), 0.0)
    return np.asarray(sim.max(axis=1).toarray()).ravel() if sim.nnz else np.zeros(Bb.shape[0])


def simscale(
    X: sp.csr_matrix,
    n: int,
    threshold: float = 0.0,
    sim_threshold: float = 0.5,
    order: str = "features",
    seed: int = 0,
    block: int = 2048,
) -> Picked:
    """SAE-SimScale: keep samples in visit order unless Jaccard(active sets) to a kept one > ``sim_threshold``.

    Score = 1 − the largest similarity to a previously kept sample (1 for the first). Fewer than ``n`` rows
    come back when the pool runs out of sufficiently dissimilar samples (logged).
    """
    B = binarize_codes(X, threshold)
    N = B.shape[0]
    sizes = np.diff(B.indptr).astype(np.float64)
    if order == "features":
        visit = np.lexsort((np.arange(N), -sizes))
    else:
        visit = np.random.default_rng(seed).permutation(N)
    kept: list[int] = []
    kept_scores: list[float] = []
    kept_T = None  # (F, K) binary matrix of kept rows
    bar = tqdm(total=N, desc="simscale", disable=N < 20_000, leave=False)
    for a in range(0, N, block):
        rows = visit[a : a + block]
        Bb = B[rows]
        sb = sizes[rows]
        max_kept = _max_jaccard_to_kept(Bb, sb, kept_T, sizes[np.asarray(kept, np.int64)])
        inner = (Bb @ Bb.T).toarray()
        denom = sb[:, None] + sb[None, :] - inner
        J = np.where(denom > 0, inner / np.where(denom > 0, denom, 1), 0.0)
        new_local: list[int] = []
        for i in range(len(rows)):
            if max_kept[i] > sim_threshold:
                continue
            m = float(J[i, new_local].max()) if new_local else 0.0
            if m > sim_threshold:
                continue
            new_local.append(i)
            kept.append(int(rows[i]))
            kept_scores.append(1.0 - max(m, float(max_kept[i])))
            if len(kept) >= n:
                break
        bar.update(len(rows))
        if len(kept) >= n:
            break
        if new_local:
            add = Bb[new_local].T.tocsr()
            kept_T = add if kept_T is None else sp.hstack([kept_T, add], format="csr")
    bar.close()
    if len(kept) < n:
        log.warning("simscale kept %d of the %d requested: no other sample is below similarity %.2f to the kept "
                    "ones", len(kept), n, sim_threshold)
    return Picked(
        np.asarray(kept, np.int64),
        np.asarray(kept_scores),
        None,
        {"visited": int(min(N, a + block)), "kept": len(kept)},
    )




def simscale_ivf(space: Any, n: int, sim_threshold: float = 0.5, order: str = "features", seed: int = 0,
                 block: int = 4096) -> Picked:
    """SimScale with neighbours from the index over binarised codes: Jaccard ``J > t`` implies cosine
    ``> 2t/(1+t)`` for binary vectors, so each visited block asks the index for its pairs above that cosine and
    checks their Jaccard exactly (``J = I / (|A| + |B| − I)``, ``I = cos·sqrt(|A||B|)``). With exact neighbours
    the kept rows are those of brute force; the score is 1 − the largest Jaccard among the kept samples found
    that way (samples below the cosine bound are not searched)."""
    index = open_index(space, "ivf")
    sizes = np.concatenate([np.diff(b.indptr) for _, b in space.vectors.blocks()]).astype(np.float64)
    N = len(sizes)
    visit = np.lexsort((np.arange(N), -sizes)) if order == "features" else np.random.default_rng(seed).permutation(N)
    radius = 2 * sim_threshold / (1 + sim_threshold)
    kept = np.zeros(N, bool)
    rows: list[int] = []
    scores: list[float] = []
    visited = 0
    for a in tqdm(range(0, N, block), desc="simscale", leave=False, disable=N < 20_000):
        vb = visit[a : a + block]
        i, j, _ = index.pairs(radius, vb, progress=False, nprobe=index.config.nprobe)
        inter = _cosines(space, i, j) * np.sqrt(sizes[i] * sizes[j])
        jac = np.where(sizes[i] + sizes[j] - inter > 0, inter / np.maximum(sizes[i] + sizes[j] - inter, 1e-12), 0.0)
        order_i = np.argsort(i, kind="stable")
        i, j, jac = i[order_i], j[order_i], jac[order_i]
        for r in vb:
            visited += 1
            lo, hi = np.searchsorted(i, r), np.searchsorted(i, r, side="right")
            near = jac[lo:hi][kept[j[lo:hi]]]
            best = float(near.max()) if len(near) else 0.0
            if best > sim_threshold:
                continue
            kept[r] = True
            rows.append(int(r))
            scores.append(1.0 - best)
            if len(rows) >= n:
                break
        if len(rows) >= n:
            break
    if len(rows) < n:
        log.warning("simscale kept %d of the %d requested: no other sample is below similarity %.2f to the kept ones",
                    len(rows), n, sim_threshold)
    info = {**index.info, "path": "ivf", "cosine_bound": round(radius, 6)}
    return Picked(np.asarray(rows, np.int64), np.asarray(scores), None,
                  {"visited": visited, "kept": len(rows), "index": info})


def _cosines(space: Any, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    from mona.vectors import normalize_rows

    if not len(i):
        return np.zeros(0)
    A, B = normalize_rows(space.vectors.rows(i)), normalize_rows(space.vectors.rows(j))
    return np.asarray(A.multiply(B).sum(axis=1), np.float64).ravel()
