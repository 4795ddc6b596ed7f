"""Feature labels: streamed top-k equals brute force, cache round trip, Neuronpedia ids, automatic labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mona.labels import FeatureLabels, LabelConfig, compute_labels, load_labels, merge_topk, neuronpedia_id
from mona.testing import TINY_HOOK as HOOK
from mona.testing import pool_records, tiny_sae


def test_merge_topk_equals_global_topk():
    g = torch.Generator().manual_seed(0)
    z = torch.rand(500, 16, generator=g)
    keys = torch.arange(500) * 7
    v = torch.full((16, 5), float("-inf"))
    k = torch.full((16, 5), -1, dtype=torch.int64)
    for a in range(0, 500, 64):
        v, k = merge_topk(v, k, z[a : a + 64], keys[a : a + 64])
    ref_v, ref_i = z.T.topk(5, dim=1)
    assert torch.equal(v, ref_v) and torch.equal(k, keys[ref_i])


@pytest.fixture(scope="module")
def labels(tiny, tmp_path_factory):
    from mona.data import load_samples

    out = tmp_path_factory.mktemp("labels")
    samples = load_samples(pool_records())
    cfg = LabelConfig(top_k=4, context=3, chunk_tokens=50)
    return compute_labels(samples, model=tiny, sae=tiny_sae(), hook=HOOK, config=cfg, out_dir=out, progress=False)


def test_labels_match_brute_force(labels, tiny):
    from mona.activations import ActivationConfig, iter_activations
    from mona.data import load_samples

    samples = load_samples(pool_records())
    sae = tiny_sae()
    codes, where = [], []
    for b in iter_activations(tiny, samples, ActivationConfig(hooks=(HOOK,), max_tokens=256), progress=False):
        r, c = b.valid.nonzero(as_tuple=True)
        with torch.no_grad():
            codes.append(sae.encode(b.acts[HOOK][r, c]))
        where += [(int(b.indices[i]), int(j), int(b.tokens[i, j])) for i, j in zip(r.tolist(), c.tolist())]
    Z = torch.cat(codes).numpy()
    top = -np.sort(-Z, axis=0)[:4].T
    assert np.allclose(labels.values, np.where(top > 0, top, 0), atol=1e-6)
    assert labels.manifest["tokens"] == len(where)
    assert np.array_equal(labels.counts, (Z > 0).sum(0))
    f = int(labels.counts.argmax())
    j = int(Z[:, f].argmax())
    s, pos, tok = where[j]
    assert labels.manifest["sample_ids"][labels.sample[f, 0]] == samples[s].id and labels.position[f, 0] == pos
    assert labels.contexts[f, 0, labels.context] == tok  # the activating token sits at the centre
    ex = labels.examples(f, 1)[0]
    assert ex["tokens"][ex["center"]] == labels.vocab[tok]


def test_cache_round_trip(labels, tiny):
    back = load_labels(labels.path)
    for name in ("values", "sample", "position", "contexts", "counts", "sums"):
        assert np.array_equal(getattr(back, name), getattr(labels, name))
    assert back.vocab == labels.vocab and back.manifest == json.loads(json.dumps(labels.manifest))
    assert not list(labels.path.glob("*.pkl")) and {p.name for p in labels.path.iterdir()} == {
        "labels.safetensors", "vocab.json", "manifest.json"}
    # same inputs: read back without running the model (a model object that would fail if used)
    from mona.data import load_samples

    class NoModel:
        identity = tiny.identity

        def __getattr__(self, name):
            raise AssertionError("the model must not run on a cache hit")

    again = compute_labels(load_samples(pool_records()), model=NoModel(), sae=tiny_sae(), hook=HOOK,
                           config=LabelConfig(top_k=4, context=3, chunk_tokens=50), out_dir=labels.path,
                           progress=False)
    assert np.array_equal(again.values, labels.values)


def test_auto_label_and_dead_features(labels):
    f = int(labels.counts.argmax())
    assert labels.label(f) and labels.top_tokens(f)
    dead = np.flatnonzero(labels.counts == 0)
    if len(dead):
        assert labels.label(int(dead[0])) == "" and labels.examples(int(dead[0])) == []
    assert labels.neuronpedia_url(0) is None


def test_neuronpedia_from_metadata_and_registry():
    class Meta:
        neuronpedia_id = "gemma-3-270m/12-gemmascope-2-res-16k"

    class Cfg:
        metadata = Meta()

    class Sae:
        cfg = Cfg()

    assert neuronpedia_id(Sae()) == "gemma-3-270m/12-gemmascope-2-res-16k"

    class Identity:
        source = "registry:gemma-scope-2-270m-pt-res/layer_12_width_16k_l0_medium"

    class Loaded:
        sae = object()
        identity = Identity()

    assert neuronpedia_id(Loaded()) == "gemma-3-270m/12-gemmascope-2-res-16k"
    fl = FeatureLabels(np.zeros((2, 1), np.float32), -np.ones((2, 1), np.int32), -np.ones((2, 1), np.int32),
                       -np.ones((2, 1, 3), np.int32), np.zeros(2, np.int64), np.zeros(2), {},
                       {"neuronpedia_id": "gemma-3-270m/12-gemmascope-2-res-16k"})
    assert fl.neuronpedia_url(1) == "https://neuronpedia.org/gemma-3-270m/12-gemmascope-2-res-16k/1"
