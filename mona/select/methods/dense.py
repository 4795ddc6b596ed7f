"""``dense`` — the dense-embedding baseline: cosine of mean hidden states (or any dense store) to the target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mona.errors import MonaError
from mona.select.matrices import PoolMatrices
from mona.select.methods.base import Context, Scored, TargetMethod, require_group, target_ids
from mona.select.neighbours import best_targets, dense_space, resolve
from mona.select.similarity import cosine_to_vector, max_similarity_to_rows


@dataclass
class DenseOptions:
    """How dense vectors are compared with a target."""

    aggregate: Literal["prototype", "max"] = "prototype"
    """Cosine to the mean target vector (``prototype``) or the maximum over the target samples (``max``)."""
    center: bool = True
    """Subtract the pool's mean vector before cosine (one constant direction dominates raw residuals)."""
    standardize: bool = True
    """Divide each dimension by its standard deviation over the pool before cosine. A few residual dimensions of
    Gemma-style models have a hundred times the spread of the rest and otherwise decide every cosine."""

    def __post_init__(self) -> None:
        if self.aggregate not in ("prototype", "max"):
            raise MonaError(f"aggregate must be one of prototype, max; got {self.aggregate!r}")


class Dense(TargetMethod):
    name = "dense"
    summary = "cosine of pooled hidden states (a dense store) to the target"
    Options = DenseOptions
    pool_modes = ("dense",)

    def score(self, ctx: Context, group: list[Any], k: int) -> Scored:
        return score_dense(ctx.matrices(), group, k, self.name, self.pool_modes, ctx)


def score_dense(pool: PoolMatrices, group: list[Any], k: int, method: str = "dense",
                modes: tuple[str, ...] = ("dense",), ctx: Any = None) -> Scored:
    """Cosine of the (centred, standardised) pool vectors to the target prototype, or the max over targets."""
    require_group(group, k, modes, method, pool.store)
    X = pool.dense()
    T = pool.normalize(np.concatenate([np.asarray(s.dense(), np.float32) for s in group], axis=0))
    if T.shape[1] != X.shape[1]:
        raise MonaError(f"target vectors have {T.shape[1]} dimensions but pool vectors have {X.shape[1]}")
    if getattr(pool.options, "aggregate", "prototype") == "prototype":
        return Scored(cosine_to_vector(X, T.mean(axis=0)))
    path = resolve(ctx.config.index, X.shape[0], X.shape[1], queries=T.shape[0]) if ctx is not None else "none"
    if path != "none":  # each pool row's best target from a flat index over the targets, or the pool's ivf index
        scores, arg, info = best_targets(dense_space(pool), T, ctx.n, path)
        ctx.cache["index"] = info
    else:
        scores, arg = max_similarity_to_rows(X, T, "cosine")
    tids = target_ids(group)
    return Scored(scores, lambda rows: (None, [tids[int(arg[r])] for r in rows]))
