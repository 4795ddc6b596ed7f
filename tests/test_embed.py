"""Embedding stage: pooling math, spans, modes, reuse and refusal of mismatched stores (tiny random model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mona.embed import EmbedConfig, embed
from mona.errors import ArtifactMismatch, MonaError
from mona.pooling import first_last, pool_tokens
from mona.testing import tiny_sae

HOOK = "blocks.1.hook_resid_post"


def records(n: int = 20) -> list[dict]:
    return [
        {"id": f"s{i}", "instruction": f"Solve for x: {i}x + 5 = 20.",
         "output": "Subtract five, then divide. " * (i % 4 + 1)}
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def samples():
    from mona.data import load_samples

    return load_samples(records())


@pytest.fixture(scope="module")
def sae():
    return tiny_sae()


# ---- pooling math against hand-computed examples ------------------------------------------------------


X = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0], [0.0, 5.0, 0.5]])
ROWS = torch.tensor([0, 0, 2])  # row 1 has no tokens


def test_mean_pooling_by_hand():
    out = pool_tokens(X, ROWS, 3, "mean")
    assert torch.equal(out, torch.tensor([[2.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 5.0, 0.5]]))


def test_sum_max_binary_by_hand():
    assert torch.equal(pool_tokens(X, ROWS, 3, "sum"), torch.tensor([[4.0, 0, 2], [0, 0, 0], [0, 5, 0.5]]))
    assert torch.equal(pool_tokens(X, ROWS, 3, "max"), torch.tensor([[3.0, 0, 2], [0, 0, 0], [0, 5, 0.5]]))
    assert torch.equal(pool_tokens(X, ROWS, 3, "binary"), torch.tensor([[1.0, 0, 1], [0, 0, 0], [0, 1, 1]]))
    assert torch.equal(pool_tokens(X, ROWS, 3, "binary", threshold=1.0),
                       torch.tensor([[1.0, 0, 1], [0, 0, 0], [0, 1, 0]]))


def test_max_pooling_keeps_negative_maxima():
    x = torch.tensor([[-1.0, -4.0], [-3.0, -2.0]])
    assert torch.equal(pool_tokens(x, torch.tensor([0, 0]), 1, "max"), torch.tensor([[-1.0, -2.0]]))


def test_first_last_by_hand():
    acts = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    mask = torch.tensor([[False, True, True, False], [False, False, False, False]])
    out = first_last(acts, mask)
    assert out.shape == (2, 2, 1)
    assert out[0, :, 0].tolist() == [1.0, 2.0] and out[1].abs().sum() == 0


def test_config_validation():
    with pytest.raises(MonaError, match="pooling"):
        EmbedConfig(pooling="median")
    with pytest.raises(MonaError, match="binary pooling needs mode 'sae'"):
        EmbedConfig(mode="dense", pooling="binary")
    assert EmbedConfig.from_dict(EmbedConfig(span="response").to_dict()).span == "response"


# ---- the stage on a tiny model ------------------------------------------------------------------------


def _manual_rows(tiny, sae, samples, span="all"):
    """Per-sample mean SAE codes computed one sample at a time, without the store."""
    from mona.activations import ActivationConfig, iter_activations

    out = []
    for s in samples:
        (batch,) = list(iter_activations(tiny, [s], ActivationConfig(hooks=(HOOK,)), progress=False))
        mask = {"all": batch.valid, "prompt": batch.prompt, "response": batch.response}[span][0]
        with torch.no_grad():
            z = sae.encode(batch.acts[HOOK][0, mask])
        out.append(z.mean(0).numpy())
    return np.stack(out)


def test_sae_mean_matches_per_sample_computation(tmp_path, tiny, sae, samples):
    cfg = EmbedConfig(hook=HOOK, shard_size=8, dtype="float32")
    store = embed(samples, model=tiny, sae=sae, config=cfg, out_dir=tmp_path / "s", progress=False)
    assert store.ids == [s.id for s in samples]
    codes = store.codes()
    assert codes.shape == (len(samples), 64)
    np.testing.assert_allclose(codes.toarray(), _manual_rows(tiny, sae, samples), rtol=1e-5, atol=1e-6)


def test_spans_partition_the_valid_tokens(tmp_path, tiny, sae, samples):
    lengths, sums = {}, {}
    for span in ("all", "prompt", "response"):
        cfg = EmbedConfig(hook=HOOK, span=span, pooling="sum", dtype="float32")
        store = embed(samples, model=tiny, sae=sae, config=cfg, out_dir=tmp_path / span, progress=False)
        lengths[span], sums[span] = store.lengths, store.codes().toarray()
    assert np.array_equal(lengths["all"], lengths["prompt"] + lengths["response"])
    assert (lengths["response"] > 0).all() and (lengths["prompt"] > 0).all()
    np.testing.assert_allclose(sums["all"], sums["prompt"] + sums["response"], rtol=1e-4, atol=1e-4)


def test_binary_pooling_is_support_of_max(tmp_path, tiny, sae, samples):
    mx = embed(samples, model=tiny, sae=sae, config=EmbedConfig(hook=HOOK, pooling="max"), out_dir=tmp_path / "m",
               progress=False).codes().toarray()
    bn = embed(samples, model=tiny, sae=sae, config=EmbedConfig(hook=HOOK, pooling="binary"),
               out_dir=tmp_path / "b", progress=False).codes().toarray()
    assert set(np.unique(bn)) <= {0.0, 1.0}
    assert np.array_equal(bn > 0, mx > 0)


def test_dense_and_layers_modes(tmp_path, tiny, samples):
    from mona.activations import ActivationConfig, iter_activations

    dense = embed(samples[:3], model=tiny, sae=None, config=EmbedConfig(mode="dense", hook=HOOK, dtype="float32"),
                  out_dir=tmp_path / "d", progress=False)
    layers = embed(samples[:3], model=tiny, sae=None, config=EmbedConfig(mode="layers"), out_dir=tmp_path / "l",
                   progress=False)
    hooks = tuple(f"blocks.{layer}.hook_resid_post" for layer in range(3))
    got_dense, got_layers = dense.dense(), layers.layers()
    assert got_layers.shape == (3, 3, 2, 32) and layers.manifest["hooks"] == list(hooks)
    for row, s in enumerate(samples[:3]):
        (batch,) = list(iter_activations(tiny, [s], ActivationConfig(hooks=hooks), progress=False))
        valid = batch.valid[0]
        np.testing.assert_allclose(got_dense[row], batch.acts[HOOK][0, valid].mean(0).numpy(), rtol=1e-5, atol=1e-5)
        pos = valid.nonzero().ravel()
        for layer, hook in enumerate(hooks):
            want = batch.acts[hook][0, [int(pos[0]), int(pos[-1])]].numpy()
            np.testing.assert_allclose(got_layers[row, layer], want, rtol=2e-3, atol=2e-3)  # float16 on disk


def test_existing_store_is_reused_without_recompute(tmp_path, tiny, sae, samples, monkeypatch):
    import mona.embed as embed_mod

    cfg = EmbedConfig(hook=HOOK, shard_size=8)
    first = embed(samples, model=tiny, sae=sae, config=cfg, out_dir=tmp_path / "s", progress=False)

    def boom(*args, **kwargs):
        raise AssertionError("recomputed a finished shard")

    monkeypatch.setattr(embed_mod, "_embed_shard", boom)
    again = embed(samples, model=tiny, sae=sae, config=cfg, out_dir=tmp_path / "s", progress=False)
    assert again.manifest == first.manifest


def test_mismatched_store_is_refused(tmp_path, tiny, sae, samples):
    out = tmp_path / "s"
    embed(samples, model=tiny, sae=sae, config=EmbedConfig(hook=HOOK), out_dir=out, progress=False)
    with pytest.raises(ArtifactMismatch, match="pooling"):
        embed(samples, model=tiny, sae=sae, config=EmbedConfig(hook=HOOK, pooling="max"), out_dir=out, progress=False)
    with pytest.raises(ArtifactMismatch, match="sae.weights_hash"):
        embed(samples, model=tiny, sae=tiny_sae(seed=1), config=EmbedConfig(hook=HOOK), out_dir=out, progress=False)
    with pytest.raises(ArtifactMismatch, match="input"):
        embed(samples[:-1], model=tiny, sae=sae, config=EmbedConfig(hook=HOOK), out_dir=out, progress=False)
    from mona.testing import tiny_model

    with pytest.raises(ArtifactMismatch, match="model"):
        embed(samples, model=tiny_model(seed=1), sae=sae, config=EmbedConfig(hook=HOOK), out_dir=out, progress=False)


def test_sae_hook_and_width_are_checked(tmp_path, tiny, samples):
    with pytest.raises(ArtifactMismatch, match="d_model"):
        embed(samples, model=tiny, sae=tiny_sae(d_in=16), config=EmbedConfig(hook=HOOK), out_dir=tmp_path / "a",
              progress=False)


def _cli(argv):
    import argparse

    from mona.cli import embed as cli_embed

    parser = argparse.ArgumentParser(prog="mona")
    cli_embed.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_embed_parts_then_finalize(tmp_path, tiny, sae, samples, capsys):
    out = tmp_path / "s"
    for i in range(2):
        part = embed(samples, model=tiny, sae=sae, config=EmbedConfig(hook=HOOK, shard_size=4), out_dir=out,
                     shard=(i, 2), progress=False)
        assert part.complete == (i == 1)
    assert _cli(["embed", "--finalize", "--out", str(out)]) == 0
    assert "active features" in capsys.readouterr().out
    with pytest.raises(MonaError, match="not an embedding store"):
        _cli(["embed", "--finalize", "--out", str(tmp_path / "nothing")])
    with pytest.raises(MonaError, match="I/N"):
        _cli(["embed", "x.jsonl", "--out", str(out), "--shard", "2"])


def test_cli_config_file_and_flags(tmp_path):
    import argparse

    from mona.cli import embed as cli_embed

    path = tmp_path / "embed.yaml"
    path.write_text("embed:\n  pooling: binary\n  span: response\n  shard_size: 64\n")
    parser = argparse.ArgumentParser()
    cli_embed.register(parser.add_subparsers())
    args = parser.parse_args(["embed", "in.jsonl", "--out", "o", "--config", str(path), "--span", "prompt"])
    cfg = cli_embed._config(args)
    assert (cfg.pooling, cfg.span, cfg.shard_size) == ("binary", "prompt", 64)


def test_values_beyond_float16_are_refused_not_stored_as_inf():
    """Deep residuals of some models (Gemma 3 from layer ~12) exceed float16's range: a float16 store must say
    so and point at float32 instead of writing inf."""
    from mona.embed import _stored

    big = np.array([[1.0, 7.0e4]], np.float32)
    with pytest.raises(MonaError, match="float32"):
        _stored(big, np.dtype(np.float16), EmbedConfig(mode="dense", dtype="float16"))
    assert _stored(big, np.dtype(np.float32), EmbedConfig(mode="dense", dtype="float32")).max() == 7.0e4
    ok = _stored(np.array([[1.0, 6.0e4]], np.float32), np.dtype(np.float16), EmbedConfig(mode="dense"))
    assert ok.dtype == np.float16 and np.isfinite(ok).all()
