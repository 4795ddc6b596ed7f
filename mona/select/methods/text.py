"""What the text baselines share: the text of a sample, and scoring a target set's vectors against the pool's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mona.errors import MonaError
from mona.select.methods.base import Scored, target_ids
from mona.select.similarity import cosine_to_vector, max_similarity_to_rows


def texts(samples: list[Any]) -> list[str]:
    """Text of each sample: ``Sample.plain`` (prompt and response, or the plain text)."""
    return [s.plain if hasattr(s, "plain") else str(s) for s in samples]


@dataclass
class TextOptions:
    """How a target set's texts are compared with the pool's."""

    aggregate: Literal["prototype", "max"] = "prototype"
    """Similarity to the mean target vector (``prototype``) or the maximum over the target samples (``max``)."""

    def __post_init__(self) -> None:
        if self.aggregate not in ("prototype", "max"):
            raise MonaError(f"aggregate must be one of prototype, max; got {self.aggregate!r}")


def require_texts(group: list[Any], k: int, method: str) -> list[Any]:
    if not group:
        raise MonaError(f"method {method!r} needs target set {k}'s samples (the texts), none were given")
    return group


def cosine_scores(X: Any, Q: Any, aggregate: str, group: list[Any]) -> Scored:
    """Cosine of pool rows ``X`` to the target rows ``Q``: to their mean, or the best one (with its id)."""
    if aggregate == "prototype":
        return Scored(cosine_to_vector(X, np.asarray(Q.mean(axis=0)).ravel()))
    scores, arg = max_similarity_to_rows(X, Q, "cosine")
    tids = target_ids(group)
    return Scored(scores, lambda rows: (None, [tids[int(arg[r])] for r in rows]))
