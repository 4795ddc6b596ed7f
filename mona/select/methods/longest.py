"""``longest`` — longest response first: a strong diversity baseline, since the number of active SAE features
grows with length (r = 0.92 in arXiv 2502.14050)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mona.errors import MonaError
from mona.select.budget import top_n
from mona.select.methods.base import Context, Method, Picked

log = logging.getLogger(__name__)


class Longest(Method):
    name = "longest"
    summary = "longest response (characters) first; without samples, the store's token counts"
    pool_modes = None

    def check_pool(self, pool: Any, pool_samples: list[Any] | None) -> None:
        if not pool_samples and getattr(pool, "lengths", None) is None:
            raise MonaError("method 'longest' needs pool samples (or a pool store with lengths)")

    def pick(self, ctx: Context, groups: list[list[Any]]) -> Picked:
        s = longest_scores(ctx.pool_samples, ctx.pool)
        rows = top_n(s, ctx.n)
        return Picked(rows, s[rows])


def longest_scores(pool_samples: list[Any] | None, store: Any | None) -> np.ndarray:
    """Response length in characters (from the samples), else the store's pooled token count."""
    if pool_samples:
        return np.array([len(s.response) for s in pool_samples], dtype=np.float64)
    log.info("longest: no pool samples given, using the store's token counts")
    return np.asarray(store.lengths, dtype=np.float64)
