"""Shared fixtures: a tiny random model (seconds), stores embedded with it, and the real default model (slow tests
only). Helpers that are not fixtures live in :mod:`mona.testing`."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny():
    """A 3-layer, d_model 32 random HookedTransformer with a small BPE tokenizer."""
    from mona.testing import tiny_model

    return tiny_model()


@pytest.fixture(scope="session")
def gemma():
    """The real default model (converted once under MONA_HOME)."""
    from mona.models import load_model

    return load_model("gemma-3-270m")


@pytest.fixture(scope="session")
def stores_on_disk(tmp_path_factory, tiny):
    """Pool (math + poetry, with ``domain``) and math-target stores embedded with the tiny model and SAE."""
    from mona.data import load_samples
    from mona.embed import EmbedConfig, embed
    from mona.testing import TINY_HOOK, pool_records, tiny_sae

    root = tmp_path_factory.mktemp("explain-stores")
    pool = load_samples(pool_records())
    target = load_samples([{"id": f"t{i}", "instruction": f"Solve for x: 3x + 5 = 20. {i}", "output": "x = 5"}
                           for i in range(4)])
    sae, cfg = tiny_sae(), EmbedConfig(hook=TINY_HOOK, dtype="float32")
    embed(pool, model=tiny, sae=sae, config=cfg, out_dir=root / "pool", progress=False)
    embed(target, model=tiny, sae=sae, config=cfg, out_dir=root / "target", progress=False)
    return root, pool
