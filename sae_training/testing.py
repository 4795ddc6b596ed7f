"""A tiny random model and seeded texts, for tests and quick trials of the training pipeline (no network)."""

from __future__ import annotations

import random

from mona import testing
from mona.models import LoadedModel

WORDS = (
    "the a of and to in is it that for on with as was by at from this be are or an not which have "
    "cat dog bird fish tree river stone cloud rain sun moon star house road city car train ship book "
    "read write count add sum number list code function return value print loop if else true false "
    "question answer explain why how what when where who step first then finally because so result"
).split()


def tiny_model(n_layers: int = 2, d_model: int = 32, seed: int = 0) -> LoadedModel:
    """A random 2-layer HookedTransformer (d_model 32) with mona's tiny byte-level tokenizer."""
    return testing.tiny_model(n_layers=n_layers, d_model=d_model, seed=seed)


def tiny_texts(n: int = 200, seed: int = 0) -> list[str]:
    """Random sentences over :data:`WORDS` (seeded)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) + " ." for _ in range(3)]
        out.append(" ".join(sentences))
    return out
