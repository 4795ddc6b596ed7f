"""SAE training through sae-lens's runner on a tiny random model: loss falls, the folder reloads identically."""

from __future__ import annotations

import json

import pytest
import torch

from mona.saes import load_sae
from sae_training import SAETrainConfig, train
from sae_training.testing import tiny_model, tiny_texts


def _config(tmp_path, **overrides) -> SAETrainConfig:
    base = dict(
        name="tiny", model="tiny", hook="blocks.1.hook_resid_post", d_sae=64, k=4, training_tokens=8192,
        train_batch_size_tokens=256, context_size=32, store_batch_size_prompts=8, buffer_tokens=1024,
        lr=3e-3, lr_warm_up_steps=0, lr_scheduler_name="constant", eval_tokens=512, n_checkpoints=0,
        log_every=2, progress=False, output_dir=str(tmp_path / "sae"),
    )
    base.update(overrides)
    return SAETrainConfig(**base)


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


def test_train_loss_falls_and_folder_reloads(tmp_path, tiny):
    result = train(_config(tmp_path), loaded=tiny, texts=tiny_texts(200))
    out = result.sae_dir
    for name in ("cfg.json", "sae_weights.safetensors", "training_config.json", "eval_metrics.json",
                 "training_log.jsonl"):
        assert (out / name).exists(), name
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert log[-1]["tokens"] == 8192
    assert sum(r["loss"] for r in log[-3:]) < 0.8 * sum(r["loss"] for r in log[:3])
    assert all(r["l0"] <= 4 for r in log)

    metrics = json.loads((out / "eval_metrics.json").read_text())
    assert metrics["explained_variance"] > 0.2
    assert metrics["l0"] <= 4.0 + 1e-6
    assert metrics["alive_features"] + metrics["dead_features"] == 64
    assert "ce_loss_increase" in metrics

    from sae_lens import SAE

    reloaded = SAE.load_from_disk(out)
    loaded = load_sae(out, model=tiny, hook="blocks.1.hook_resid_post")
    assert loaded.identity.d_sae == 64 and loaded.identity.hook == "blocks.1.hook_resid_post"
    x = torch.randn(50, 32) + result.sae.b_dec.detach()
    with torch.no_grad():
        want = result.sae.encode(x)
        again = reloaded.encode(x)
    assert torch.allclose(again, want, atol=1e-5, rtol=1e-5)  # training vs inference class: same maths
    assert torch.equal((again > 0), (want > 0))
    assert torch.equal(loaded.encode(x), again)  # load_sae and SAE.load_from_disk: identical
    assert json.loads((out / "cfg.json").read_text())["metadata"]["model_identity"]["name"] == tiny.identity.name


def test_b_dec_starts_at_the_data_mean(tmp_path, tiny):
    texts = tiny_texts(200)
    result = train(_config(tmp_path, training_tokens=512, lr=1e-9), loaded=tiny, texts=texts, evaluate_after=False)
    acts = []
    for text in texts[:40]:
        _, cache = tiny.model.run_with_cache(text, names_filter=["blocks.1.hook_resid_post"])
        acts.append(cache["blocks.1.hook_resid_post"][0, 1:])  # no BOS
    acts = torch.cat(acts)
    b_dec = result.sae.b_dec.detach()
    assert torch.linalg.norm(b_dec - acts.mean(0)) < 0.25 * torch.linalg.norm(acts.mean(0))


@pytest.mark.parametrize("architecture", ["standard", "jumprelu", "batchtopk"])
def test_other_architectures_train_and_reload(tmp_path, tiny, architecture):
    cfg = _config(tmp_path, architecture=architecture, training_tokens=1024, l1_coefficient=1.0)
    result = train(cfg, loaded=tiny, texts=tiny_texts(100), evaluate_after=False)
    loaded = load_sae(result.sae_dir, model=tiny)
    x = torch.randn(50, 32)
    codes = loaded.encode(x)
    assert codes.shape == (50, 64) and loaded.identity.architecture == ("jumprelu" if architecture == "batchtopk"
                                                                       else architecture)
    trained = result.sae.eval()
    with torch.no_grad():  # the folder reloads to the same function, value for value (batchtopk's batch-level
        # top-k is a training-time rule: it is saved as the JumpReLU it converges to, checked below)
        if architecture != "batchtopk":
            assert torch.allclose(codes, trained.encode(x).float(), atol=1e-5)
            assert torch.allclose(loaded.decode(codes), trained.decode(trained.encode(x)).float(), atol=1e-4)
        if architecture == "standard":  # ReLU(x W_enc + b_enc), with b_dec subtracted from the input if set
            x_in = x - trained.b_dec if trained.cfg.apply_b_dec_to_input else x
            assert torch.allclose(codes, torch.relu(x_in @ trained.W_enc + trained.b_enc), atol=1e-5)
        else:  # JumpReLU (batchtopk folds into one at inference): a feature is 0 or above its threshold
            threshold = loaded.sae.threshold.detach()
            on = codes > 0
            assert (codes[on] >= threshold.expand_as(codes)[on] - 1e-6).all()
    assert (codes >= 0).all()


def test_float16_weights_load_as_float32(tmp_path, tiny):
    from safetensors.torch import load_file

    result = train(_config(tmp_path, training_tokens=512, save_dtype="float16"), loaded=tiny, texts=tiny_texts(50),
                   evaluate_after=False)
    assert load_file(result.sae_dir / "sae_weights.safetensors")["W_enc"].dtype == torch.float16
    loaded = load_sae(result.sae_dir, model=tiny)
    assert loaded.sae.W_enc.dtype == torch.float32
    x = torch.randn(20, 32)
    assert torch.allclose(loaded.decode(loaded.encode(x)), result.sae.decode(result.sae.encode(x)).detach(), atol=0.05)


def test_init_statistics_whitens_and_keeps_the_batches():
    """The pre-fit seam estimates the whitening on the first batches, centres b_dec, and trains on them too."""
    from types import SimpleNamespace

    from sae_lens.training.activation_scaler import ActivationScaler

    from sae_training.train import _init_statistics

    gen = torch.Generator().manual_seed(0)
    mix = torch.randn(8, 8, generator=gen) * torch.tensor([50.0, 5, 1, 1, 1, 1, 0.5, 0.1])[:, None]
    batches = [torch.randn(256, 8, generator=gen) @ mix + 7.0 for _ in range(8)]
    sae = SimpleNamespace(cfg=SimpleNamespace(normalize_activations="covariance_whitening"),
                          b_dec=torch.nn.Parameter(torch.zeros(8)), device="cpu")
    trainer = SimpleNamespace(sae=sae, cfg=SimpleNamespace(train_batch_size_samples=256),
                              activation_scaler=ActivationScaler(), data_provider=iter(batches))
    cfg = SAETrainConfig(name="t", model="tiny", hook="blocks.1.hook_resid_post", d_sae=16, k=2,
                         normalize_activations="covariance_whitening", whitening_tokens=2048)
    _init_statistics(trainer, cfg)
    assert trainer.activation_scaler.whitening is not None
    z = trainer.activation_scaler.scale(torch.cat(batches))
    cov = torch.cov(z.T.double())
    assert torch.allclose(cov, torch.eye(8, dtype=torch.float64), atol=0.05)
    assert sae.b_dec.abs().max() < 1e-3  # whitened inputs have zero mean
    replay = list(trainer.data_provider)
    assert len(replay) == 8 and all(torch.equal(a, b) for a, b in zip(replay, batches))


def test_whitened_training_folds_into_a_raw_activation_sae(tmp_path, tiny):
    result = train(_config(tmp_path, normalize_activations="covariance_whitening", whitening_tokens=1024),
                   loaded=tiny, texts=tiny_texts(200))
    cfg = json.loads((result.sae_dir / "cfg.json").read_text())
    assert cfg["normalize_activations"] == "none"  # the saved SAE reads raw activations
    metrics = json.loads((result.sae_dir / "eval_metrics.json").read_text())
    assert metrics["explained_variance"] > 0.2
    assert metrics["l0"] <= 4.0 + 1e-6
    x = []
    for text in tiny_texts(20, seed=1):
        _, cache = tiny.model.run_with_cache(text, names_filter=["blocks.1.hook_resid_post"])
        x.append(cache["blocks.1.hook_resid_post"][0, 1:])
    x = torch.cat(x)
    loaded = load_sae(result.sae_dir, model=tiny)
    with torch.no_grad():
        codes = loaded.encode(x)
        recon = loaded.decode(codes)
    ev = 1 - (recon - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    assert (codes > 0).sum(-1).max() <= 4
    assert abs(ev.item() - metrics["explained_variance"]) < 0.1  # raw activations in, raw reconstruction out
