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
        o, X = ctx.options, ctx.matrices().codes()
        p = simscale(X, ctx.n, o.active_threshold, o.sim_threshold, o.simscale_order, ctx.config.seed)
        p.features = own_features(X, p.rows, ctx.config.top_features)
        return p


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
        if kept_T is not None:
            inter = (Bb @ kept_T).tocsr()
            inter.sort_indices()
            ks = sizes[np.asarray(kept)]
            sim = inter.copy()
            denom = sb[np.repeat(np.arange(len(rows)), np.diff(inter.indptr))] + ks[inter.indices] - inter.data
            sim.data = np.where(denom > 0, inter.data / np.where(denom > 0, denom, 1), 0.0)
            max_kept = np.asarray(sim.max(axis=1).toarray()).ravel() if sim.nnz else np.zeros(len(rows))
        else:
            max_kept = np.zeros(len(rows))
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
        log.warning(
            "simscale kept %d of the %d requested: no other sample is below similarity %.2f to the kept ones",
            len(kept),
            n,
            sim_threshold,
        )
    return Picked(
        np.asarray(kept, np.int64),
        np.asarray(kept_scores),
        None,
        {"visited": int(min(N, a + block)), "kept": len(kept)},
    )


