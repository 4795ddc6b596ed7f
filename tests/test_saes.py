"""mona.saes.load_sae: local folders, sparsify folders, identity hashes, and mismatch errors before any forward."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from mona.errors import ArtifactMismatch, ModelError
from mona.saes import SAEIdentity, load_sae, sae_metadata
from sae_training.testing import tiny_model

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


def _save_sae(folder, d_in=32, d_sae=48, hook=HOOK, seed=0):
    from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig

    torch.manual_seed(seed)
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=4))
    sae.cfg.metadata.hook_name = hook
    sae.cfg.metadata.model_name = "tiny"
    sae.save_inference_model(folder)
    return sae


def test_local_folder_loads_with_identity(tmp_path, tiny):
    _save_sae(tmp_path / "a")
    loaded = load_sae(tmp_path / "a", model=tiny, hook=HOOK)
    ident = loaded.identity
    assert isinstance(ident, SAEIdentity)
    assert (ident.d_in, ident.d_sae, ident.hook, ident.architecture) == (32, 48, HOOK, "topk")
    assert ident.source.startswith("local:") and len(ident.weights_hash) == 16
    assert loaded.encode(torch.randn(5, 32)).shape == (5, 48)
    assert sae_metadata(tmp_path / "a")["hook_name"] == HOOK
    # different weights -> different hash; same weights -> same hash
    _save_sae(tmp_path / "b", seed=1)
    _save_sae(tmp_path / "c", seed=0)
    assert load_sae(tmp_path / "b").identity.weights_hash != ident.weights_hash
    assert load_sae(tmp_path / "c").identity.weights_hash == ident.weights_hash


def _never_reads_weights(monkeypatch):
    from sae_lens import SAE

    def fail(*args, **kwargs):
        raise AssertionError("weights were read before validation")

    monkeypatch.setattr(SAE, "load_from_disk", fail)


def test_d_in_mismatch_is_caught_before_loading(tmp_path, tiny, monkeypatch):
    _save_sae(tmp_path / "wide", d_in=16)
    _never_reads_weights(monkeypatch)
    with pytest.raises(ArtifactMismatch, match="d_in=16.*d_model=32") as info:
        load_sae(tmp_path / "wide", model=tiny)
    assert "\n" not in str(info.value)


def test_hook_mismatch(tmp_path, tiny, monkeypatch):
    _save_sae(tmp_path / "s")
    _never_reads_weights(monkeypatch)
    with pytest.raises(ArtifactMismatch, match="trained on hook 'blocks.1.hook_resid_post'.*'blocks.0.hook_resid_pos"):
        load_sae(tmp_path / "s", model=tiny, hook="blocks.0.hook_resid_post")


def test_hook_beyond_model_depth(tmp_path, tiny):
    _save_sae(tmp_path / "deep", hook="blocks.7.hook_resid_post")
    with pytest.raises(ArtifactMismatch, match="layer 7.*2 layers"):
        load_sae(tmp_path / "deep", model=tiny)


def test_missing_and_malformed(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_sae(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactMismatch, match="not an SAE folder"):
        load_sae(tmp_path / "empty")
    (tmp_path / "badcfg").mkdir()
    (tmp_path / "badcfg" / "cfg.json").write_text("{not json")
    (tmp_path / "badcfg" / "sae_weights.safetensors").write_bytes(b"")
    with pytest.raises(ArtifactMismatch, match="not valid JSON"):
        load_sae(tmp_path / "badcfg")
    with pytest.raises(ModelError, match="registry:<release>/<sae_id>"):
        load_sae("registry:only-a-release")


def test_sparsify_folder_is_converted(tmp_path, tiny):
    folder = tmp_path / "run" / "layers.1"
    folder.mkdir(parents=True)
    (folder / "cfg.json").write_text(json.dumps({"d_in": 32, "num_latents": 40, "k": 4, "expansion_factor": 1}))
    torch.manual_seed(0)
    save_file({"encoder.weight": torch.randn(40, 32), "encoder.bias": torch.zeros(40),
               "W_dec": torch.randn(40, 32), "b_dec": torch.zeros(32)}, folder / "sae.safetensors")
    loaded = load_sae(folder, model=tiny)
    assert loaded.identity.source.startswith("sparsify:")
    assert loaded.identity.hook == HOOK and loaded.identity.d_sae == 40
    codes = loaded.encode(torch.randn(6, 32))
    assert codes.shape == (6, 40) and int((codes > 0).sum(-1).max()) <= 4
    with pytest.raises(ArtifactMismatch, match="trained on hook"):
        load_sae(f"sparsify:{folder}", model=tiny, hook="blocks.0.hook_resid_post")


def test_default_sae_missing_or_present():
    from mona.saes import default_sae_dir

    if (default_sae_dir() / "sae_weights.safetensors").exists():
        meta = sae_metadata(default_sae_dir())
        assert meta["hook_name"] == "blocks.6.hook_resid_post"
        cfg = json.loads((default_sae_dir() / "cfg.json").read_text())
        assert cfg["d_in"] == 640 and 4096 <= cfg["d_sae"] <= 16384
        # a store's manifest names the SAE by identity; it is found again from that alone
        from mona.saes import sae_for_identity

        ident = load_sae("default").identity.to_dict()
        assert sae_for_identity(ident).identity == load_sae("default").identity
        with pytest.raises(ArtifactMismatch, match="weights"):
            sae_for_identity({**ident, "weights_hash": "0" * 16})
        with pytest.raises(ModelError, match="cannot locate"):
            sae_for_identity({**ident, "source": "object"})
    else:
        with pytest.raises(ModelError, match="default SAE is missing"):
            load_sae("default")


@pytest.mark.slow
def test_default_sae_on_default_model():
    from mona.models import load_model
    from mona.saes import default_sae_dir

    if not (default_sae_dir() / "sae_weights.safetensors").exists():
        pytest.skip("default SAE not shipped in this checkout")
    loaded = load_model()
    sae = load_sae("default", model=loaded, hook="blocks.6.hook_resid_post")
    tokens = loaded.model.to_tokens("The quick brown fox jumps over the lazy dog.")
    _, cache = loaded.model.run_with_cache(tokens, names_filter=["blocks.6.hook_resid_post"], stop_at_layer=7)
    acts = cache["blocks.6.hook_resid_post"][0, 1:]
    codes = sae.encode(acts)
    assert codes.shape == (acts.shape[0], sae.d_sae)
    recon = sae.decode(codes)
    ev = 1 - (recon - acts).pow(2).sum() / (acts - acts.mean(0)).pow(2).sum()
    assert ev > 0.5
    with pytest.raises(ArtifactMismatch):
        load_sae("default", model=loaded, hook="blocks.5.hook_resid_post")


def test_resolve_sae_gives_one_identity_for_every_source(tmp_path, tiny):
    from mona.saes import LoadedSAE, resolve_sae
    from mona.testing import tiny_sae

    _save_sae(tmp_path / "a")
    loaded = resolve_sae(tmp_path / "a", model=tiny, hook=HOOK)
    assert resolve_sae(loaded) is loaded
    bare = resolve_sae(loaded.sae, model=tiny)  # the same weights as an sae-lens object
    assert isinstance(bare, LoadedSAE) and bare.sae is loaded.sae
    same = ("weights_hash", "hook", "d_in", "d_sae", "architecture")
    mine, theirs = loaded.identity.to_dict(), bare.identity.to_dict()
    assert mine.keys() == theirs.keys()
    assert {k: mine[k] for k in same} == {k: theirs[k] for k in same}
    assert theirs["source"] == "object" and mine["source"].startswith("local:")
    # an SAE that does not record its hook takes the one asked for; other weights hash differently
    other = resolve_sae(tiny_sae(d_sae=48, seed=3), model=tiny, hook=HOOK)
    assert other.identity.hook == HOOK and other.identity.weights_hash != mine["weights_hash"]
    with pytest.raises(ArtifactMismatch, match="d_model"):
        resolve_sae(tiny_sae(d_in=16), model=tiny)
    with pytest.raises(ArtifactMismatch, match="trained on hook"):
        resolve_sae(loaded, hook="blocks.0.hook_resid_post")


def test_registry_refs_split_as_sae_lens_names_them():
    """Release and id from a ``registry:`` spec, without the network: ids may hold slashes, a repo in sae-lens's
    format is ``<org>/<repo>/<folder>``, and unknown releases or ids name the closest ones."""
    from mona.saes import registry_ref

    assert registry_ref("gemma-scope-2-1b-pt-res/layer_13_width_16k_l0_medium") == (
        "gemma-scope-2-1b-pt-res", "layer_13_width_16k_l0_medium")
    assert registry_ref("gemma-scope-2b-pt-res/embedding/width_4k/average_l0_6") == (
        "gemma-scope-2b-pt-res", "embedding/width_4k/average_l0_6")
    assert registry_ref("someone/tiny-saes/layers/1") == ("someone/tiny-saes", "layers/1")
    with pytest.raises(ModelError, match=r"has no SAE 'layer_13_width_16k_l0_mediun' \(52 SAEs, e.g. "
                                         r"layer_13_width_16k_l0_medium"):
        registry_ref("gemma-scope-2-1b-pt-res/layer_13_width_16k_l0_mediun")
    with pytest.raises(ModelError, match=r"unknown registry SAE .*\(close: gemma-scope-2-1b-pt-res"):
        registry_ref("gemma-scope-2-1b-pt-rez/layer_13_width_16k_l0_medium")
    with pytest.raises(ModelError, match="registry:<release>/<sae_id>"):
        registry_ref("x/y")
