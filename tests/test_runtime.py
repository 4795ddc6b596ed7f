"""The runtime setting: device/dtype parsing and one-line errors, GPU batch sizing, and what stores record."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mona.embed import EmbedConfig, embed
from mona.errors import ArtifactMismatch, MonaError
from mona.runtime import Runtime, gpu_batch_tokens, make_runtime, model_dtype_name, resolve_device
from mona.testing import TINY_HOOK, pool_records, tiny_model, tiny_sae


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def one_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "gpu"}, "device must be auto, cpu, cuda or cuda:N; got 'gpu'"),
        ({"device": "cuda:x"}, "device must be"),
        ({"device": "tpu:0"}, "device must be"),
        ({"model_dtype": "fp16"}, "model_dtype must be one of float32, bfloat16, float16; got 'fp16'"),
        ({"sae_dtype": "int8"}, "sae_dtype must be one of"),
        ({"attention": "flash"}, "attention must be sdpa or eager"),
        ({"gpu_batch_tokens": 0}, "gpu_batch_tokens must be >= 1"),
    ],
)
def test_bad_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(MonaError, match=message) as info:
        Runtime(**kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "cuda"}, "device cuda was asked for but no CUDA GPU is available here"),
        ({"device": "cuda:1"}, "no CUDA GPU is available"),
        ({"device": "cpu", "model_dtype": "float16"}, "model_dtype float16 is not supported on the CPU.*bfloat16"),
        ({"device": "auto", "sae_dtype": "float16"}, "sae_dtype float16 is not supported on the CPU"),
    ],
)
def test_devices_and_dtypes_the_machine_cannot_run(no_gpu, kwargs, message):
    with pytest.raises(MonaError, match=message):
        Runtime(**kwargs).resolved()


@pytest.mark.parametrize(
    ("device", "expected"), [("auto", "cuda:0"), ("cuda", "cuda:0"), ("cuda:0", "cuda:0"), ("CPU", "cpu")]
)
def test_device_resolution_with_a_gpu(one_gpu, device, expected):
    dtype = "bfloat16" if expected == "cpu" else "float16"  # float16 is a GPU dtype
    assert Runtime(device=device, model_dtype=dtype).resolved().device == expected


def test_gpu_index_beyond_the_count(one_gpu):
    with pytest.raises(MonaError, match=r"device cuda:2 does not exist: 1 CUDA GPU\(s\) here"):
        resolve_device("cuda:2")


def test_auto_is_the_cpu_without_a_gpu(no_gpu):
    rt = Runtime(model_dtype="bfloat16").resolved()
    assert (rt.device, rt.model_dtype, rt.torch_model_dtype) == ("cpu", "bfloat16", torch.bfloat16)


def test_keywords_override_the_runtime():
    base = Runtime(device="cpu", model_dtype="bfloat16", attention="eager")
    assert make_runtime(base) is base
    rt = make_runtime(base, dtype="float32")
    assert (rt.device, rt.model_dtype, rt.attention) == ("cpu", "float32", "eager")
    assert make_runtime(None, device="cpu").device == "cpu"


def test_gpu_batch_tokens_from_free_memory():
    cfg = type("Cfg", (), {"d_model": 640, "d_mlp": 2048, "n_heads": 4, "d_head": 256})()
    small = gpu_batch_tokens(cfg, "bfloat16", 512, free_bytes=1 << 30)
    assert 512 <= small < gpu_batch_tokens(cfg, "bfloat16", 512, free_bytes=8 << 30)
    # float32 activations take twice the room; the SAE's codes take what the caller adds
    assert gpu_batch_tokens(cfg, "float32", 512, free_bytes=8 << 30) < gpu_batch_tokens(cfg, "bfloat16", 512,
                                                                                         free_bytes=8 << 30)
    assert gpu_batch_tokens(cfg, "bfloat16", 512, extra_bytes_per_token=8 * 16384, free_bytes=8 << 30) < small * 8
    assert gpu_batch_tokens(cfg, "bfloat16", 512, free_bytes=1 << 20) == 512  # never below one sample
    assert gpu_batch_tokens(cfg, "bfloat16", 512, free_bytes=1 << 50) == 1 << 18


def test_cli_device_without_gpu_fails_before_anything_is_written(no_gpu, tmp_path):
    import argparse

    from mona.cli import embed as cli_embed

    parser = argparse.ArgumentParser(prog="mona")
    cli_embed.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["embed", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "s"),
                              "--device", "cuda", "--model-dtype", "bfloat16"])
    with pytest.raises(MonaError, match="no CUDA GPU"):
        args.func(args)
    assert not (tmp_path / "s").exists()
    args = parser.parse_args(["embed", "x.jsonl", "--out", str(tmp_path / "s"), "--model-dtype", "float16",
                              "--device", "cpu"])
    with pytest.raises(MonaError, match="use --model-dtype bfloat16"):
        args.func(args)
    assert not (tmp_path / "s").exists()


# ---- bfloat16 against float32 on the tiny model ------------------------------------------------------------


@pytest.fixture(scope="module")
def pool():
    from mona.data import load_samples

    return load_samples(pool_records())


@pytest.fixture(scope="module")
def models():
    fp32 = tiny_model()
    bf16 = tiny_model()
    bf16.model.to(torch.bfloat16)
    return fp32, bf16


def _active_sets(store) -> list[set[int]]:
    codes = store.codes().tocsr()
    return [set(codes.indices[codes.indptr[i]:codes.indptr[i + 1]].tolist()) for i in range(codes.shape[0])]


def test_bfloat16_codes_overlap_float32(tmp_path, pool, models):
    fp32, bf16 = models
    sae, cfg = tiny_sae(), EmbedConfig(hook=TINY_HOOK, dtype="float32")
    a = embed(pool, model=fp32, sae=sae, config=cfg, out_dir=tmp_path / "fp32", progress=False)
    b = embed(pool, model=bf16, sae=sae, config=cfg, out_dir=tmp_path / "bf16", progress=False)
    jaccard = [len(x & y) / max(len(x | y), 1) for x, y in zip(_active_sets(a), _active_sets(b))]
    assert np.mean(jaccard) >= 0.9, jaccard
    assert not np.allclose(a.codes().toarray(), b.codes().toarray())  # it did run in bfloat16
    assert np.isfinite(b.codes().data).all()


def test_manifest_records_dtype_and_device(tmp_path, pool, models):
    _, bf16 = models
    store = embed(pool[:6], model=bf16, sae=tiny_sae(), config=EmbedConfig(hook=TINY_HOOK), out_dir=tmp_path / "s",
                  progress=False, runtime=Runtime(device="cpu", model_dtype="bfloat16"))
    m = store.manifest
    assert m["model"]["dtype"] == "bfloat16" and m["sae"]["dtype"] == "bfloat16"  # sae_dtype auto follows the model
    assert m["runtime"]["device"] == "cpu" and m["runtime"]["model_dtype"] == "bfloat16"
    assert model_dtype_name(bf16.model) == "bfloat16"


def test_bfloat16_store_is_not_reused_for_float32(tmp_path, pool, models):
    fp32, bf16 = models
    sae, cfg, out = tiny_sae(), EmbedConfig(hook=TINY_HOOK), tmp_path / "s"
    embed(pool[:6], model=bf16, sae=sae, config=cfg, out_dir=out, progress=False)
    with pytest.raises(ArtifactMismatch, match="dtype"):
        embed(pool[:6], model=fp32, sae=sae, config=cfg, out_dir=out, progress=False)
    with pytest.raises(ArtifactMismatch, match="dtype"):  # nor for the SAE run in another precision
        embed(pool[:6], model=bf16, sae=sae, config=cfg, out_dir=out, progress=False,
              runtime=Runtime(device="cpu", model_dtype="bfloat16", sae_dtype="float32"))


def test_runtime_contradicting_a_loaded_model_is_refused(tmp_path, pool, models):
    fp32, _ = models
    with pytest.raises(MonaError, match="runs with model_dtype float32, but bfloat16 was asked for"):
        embed(pool[:4], model=fp32, sae=tiny_sae(), config=EmbedConfig(hook=TINY_HOOK), out_dir=tmp_path / "s",
              progress=False, runtime=Runtime(device="cpu", model_dtype="bfloat16"))


@pytest.mark.parametrize(("model_dtype", "sae_dtype", "expected"),
                         [("bfloat16", "auto", "bfloat16"), ("float32", "auto", "float32"),
                          ("float16", "auto", "float32"), ("bfloat16", "float32", "float32")])
def test_sae_dtype_auto_follows_a_bfloat16_model(one_gpu, model_dtype, sae_dtype, expected):
    rt = Runtime(device="cuda", model_dtype=model_dtype, sae_dtype=sae_dtype)
    assert rt.effective_sae_dtype == expected and rt.torch_sae_dtype == getattr(torch, expected)
    assert rt.resolved().sae_dtype == expected


def test_a_bfloat16_run_does_not_round_the_callers_sae(tmp_path, pool, models):
    _, bf16 = models
    sae = tiny_sae()
    before = sae.W_enc.detach().clone()
    store = embed(pool[:4], model=bf16, sae=sae, config=EmbedConfig(hook=TINY_HOOK), out_dir=tmp_path / "s",
                  progress=False)
    assert store.manifest["sae"]["dtype"] == "bfloat16"
    assert sae.W_enc.dtype == torch.float32 and torch.equal(sae.W_enc.detach(), before)
