"""``kcenter`` — farthest-point (k-center greedy) selection on cosine distance, over SAE codes or dense vectors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from mona.select.inputs import store_mode
from mona.select.methods.base import OWN_FEATURES, Context, Method, Picked, own_features
from mona.select.neighbours import code_space, dense_space, kcenter_ivf, pool_rows, resolve
from mona.vectors import normalize_rows


@dataclass
class KCenterOptions:
    """k-center's settings (dense stores)."""

    center: bool = True
    """Dense stores: subtract the pool's mean vector before cosine."""
    standardize: bool = True
    """Dense stores: divide each dimension by its standard deviation over the pool before cosine."""


class KCenter(Method):
    name = "kcenter"
    summary = "farthest-point greedy on cosine distance (SAE codes or dense vectors)"
    Options = KCenterOptions
    pool_modes = ("sae", "dense", "sentence")
    sae_features = True
    features = OWN_FEATURES

    def pick(self, ctx: Context, groups: list[list[Any]]) -> Picked:
        pm = ctx.matrices()
        sae = store_mode(ctx.pool) == "sae"
        width = pm.width() if sae else pm.dense().shape[1]
        if resolve(ctx.config.index, pool_rows(ctx.pool), width) == "ivf":  # updates over inverted lists
            space = code_space(pm, weighted=True) if sae else dense_space(pm)
            rows, scores, info = kcenter_ivf(space, ctx.n, ctx.config.seed)
            ctx.cache["index"] = info
            p = Picked(rows, scores, info={"method_info": {"index": info}})
            if sae:
                p.features = own_features(space.vectors.rows(rows), np.arange(len(rows)), ctx.config.top_features)
            return p
        X = pm.weighted_codes() if sae else pm.dense()  # boosted features weigh more in the distances
        p = kcenter(X, ctx.n, ctx.config.seed)
        if sae:
            p.features = own_features(X, p.rows, ctx.config.top_features)
        return p


def kcenter(X: Any, n: int, seed: int = 0) -> Picked:
    """Farthest-point greedy on cosine distance 1 − cos; first centre drawn with ``seed``; ties → lower row.

    Score = cosine distance of the pick to its nearest earlier centre (1.0 for the first). Each step is one
    mat-vec over the pool.
    """
    Xn = normalize_rows(X)
    N = Xn.shape[0]
    is_sparse = sp.issparse(Xn)
    first = int(np.random.default_rng(seed).integers(N))
    mind = np.full(N, np.inf)
    rows = [first]
    scores = [1.0]
    for _ in tqdm(range(n), desc="kcenter", disable=n < 200, leave=False):
        c = rows[-1]
        v = Xn[c].toarray().ravel() if is_sparse else Xn[c]
        d = 1.0 - np.asarray(Xn @ v, dtype=np.float64).ravel()
        np.minimum(mind, d, out=mind)
        mind[c] = -np.inf
        if len(rows) >= n:
            break
        nxt = int(np.argmax(mind))
        rows.append(nxt)
        scores.append(float(mind[nxt]))
    return Picked(np.asarray(rows, np.int64), np.asarray(scores))


