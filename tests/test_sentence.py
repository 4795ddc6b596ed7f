"""Embedding mode ``sentence``: all-MiniLM-L6-v2 vectors of each sample's text, written as a normal store."""

from __future__ import annotations

import numpy as np
import pytest

from mona.embed import EmbedConfig, embed
from mona.errors import ArtifactMismatch, MonaError
from mona.store import open_store

RECORDS = [
    {"id": "bread1", "prompt": "How do I bake bread at home?", "response": "Mix flour, water and yeast, knead, bake."},
    {"id": "bread2", "prompt": "Give me a simple bread recipe.", "response": "Combine flour, yeast and water; knead "
                                                                            "the dough and bake the loaf."},
    {"id": "math", "prompt": "State the Pythagorean theorem.", "response": "In a right triangle a^2 + b^2 = c^2."},
    {"id": "news", "prompt": "Any market news?", "response": "Stock markets fell sharply on interest rate fears."},
    {"id": "poem", "prompt": "Write a line about the sea.", "response": "The grey sea sighs beneath the wind."},
]
CFG = EmbedConfig(mode="sentence", shard_size=2)


@pytest.fixture(scope="module")
def samples():
    from mona.data import load_samples

    return load_samples(RECORDS)


@pytest.fixture(scope="module")
def store(samples, tmp_path_factory):
    return embed(samples, config=CFG, out_dir=tmp_path_factory.mktemp("sentence") / "s", progress=False)


def test_sentence_store_layout_and_unit_rows(store, samples):
    m = store.manifest
    assert m["mode"] == "sentence" and m["pooling"] == "mean" and m["sae"] is None and m["hook"] is None
    assert m["model"]["name"] == "all-MiniLM-L6-v2" and len(m["model"]["weights_hash"]) == 16
    assert m["settings"]["max_tokens"] == 256 and m["n_shards"] == 3 and store.complete
    x = store.dense()
    assert x.shape == (len(samples), 384) and store.n_features == 384
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=2e-3)  # float16 on disk
    assert store.ids == [s.id for s in samples] and (store.lengths > 5).all()
    assert np.allclose(store.codes().toarray(), x)


def test_similar_texts_are_closer(store):
    x = store.dense()
    sim = x @ x.T
    assert sim[0, 1] > 0.6
    assert sim[0, 1] > max(sim[0, 2], sim[0, 3], sim[0, 4]) + 0.3


def test_rerun_reuses_without_recompute(store, samples, monkeypatch):
    import mona.sentence as sentence

    def boom(*args, **kwargs):
        raise AssertionError("recomputed a finished store")

    monkeypatch.setattr(sentence, "load_sentence_model", boom)
    again = embed(samples, config=CFG, out_dir=store.path, progress=False)
    assert again.manifest == store.manifest
    with pytest.raises(ArtifactMismatch, match="max_tokens"):
        embed(samples, config=EmbedConfig(mode="sentence", shard_size=2, max_tokens=64), out_dir=store.path,
              progress=False)


def test_parts_match_one_run_and_truncation(store, samples, tmp_path):
    out = tmp_path / "parts"
    part = embed(samples, config=CFG, out_dir=out, shard=(0, 2), progress=False)
    assert not part.complete
    whole = embed(samples, config=CFG, out_dir=out, shard=(1, 2), progress=False)
    assert whole.complete and np.array_equal(whole.dense(), store.dense())
    assert open_store(out).manifest["shards"] == store.manifest["shards"]
    short = embed(samples, config=EmbedConfig(mode="sentence", max_tokens=8, dtype="float32"), out_dir=tmp_path / "t",
                  progress=False)
    assert short.lengths.max() == 8
    np.testing.assert_allclose(np.linalg.norm(short.dense(), axis=1), 1.0, atol=1e-5)


def test_sentence_config_checks():
    assert EmbedConfig(mode="sentence").max_tokens == 256 and EmbedConfig().max_tokens == 512
    with pytest.raises(MonaError, match="mean pooling"):
        EmbedConfig(mode="sentence", pooling="max")
    with pytest.raises(MonaError, match="mean pooling"):
        EmbedConfig(mode="sentence", span="response")
    assert EmbedConfig.from_dict(EmbedConfig(mode="sentence").to_dict()) == EmbedConfig(mode="sentence")
