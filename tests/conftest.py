"""Shared fixtures: a tiny random model (seconds) and the real default model (slow tests only)."""

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
