"""``sbert`` — the off-the-shelf sentence-embedder baseline (all-MiniLM-L6-v2, the papers' "BGE" column).

Reads stores written by ``mona embed --mode sentence`` (unit-norm sentence embeddings) and compares them by
cosine, without centring or standardising (the embedder was trained for plain cosine).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mona.errors import MonaError
from mona.select.methods.base import Context, Scored, TargetMethod
from mona.select.methods.dense import score_dense


@dataclass
class SentenceOptions:
    """How sentence embeddings are compared with a target."""

    aggregate: Literal["prototype", "max"] = "prototype"
    """Cosine to the mean target embedding (``prototype``) or the maximum over the target samples (``max``)."""

    center: bool = False
    """Subtract the pool's mean embedding before cosine (off: the embedder is trained for plain cosine)."""
    standardize: bool = False
    """Divide each dimension by its standard deviation over the pool before cosine."""

    def __post_init__(self) -> None:
        if self.aggregate not in ("prototype", "max"):
            raise MonaError(f"aggregate must be one of prototype, max; got {self.aggregate!r}")


class Sbert(TargetMethod):
    name = "sbert"
    summary = "cosine of sentence embeddings (a `--mode sentence` store) to the target"
    Options = SentenceOptions
    pool_modes = ("sentence",)

    def score(self, ctx: Context, group: list[Any], k: int) -> Scored:
        return score_dense(ctx.matrices(), group, k, self.name, self.pool_modes, ctx)
