"""``random`` — a uniform draw of the budget with ``seed`` (the baseline every method must beat)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mona.select.budget import top_n
from mona.select.methods.base import Context, Method, Picked


class Random(Method):
    name = "random"
    summary = "uniform draw with the seed"
    pool_modes = None

    def pick(self, ctx: Context, groups: list[list[Any]]) -> Picked:
        draws = np.random.default_rng(ctx.config.seed).random(ctx.size)
        rows = top_n(draws, ctx.n)
        return Picked(rows, draws[rows])
