"""Models and registry SAEs from a local Hugging Face hub cache with the hub offline (``HF_HUB_OFFLINE=1``).

Each test builds a cache in a temporary folder laid out exactly as huggingface_hub lays one out
(``models--<org>--<repo>/refs/main``, ``snapshots/<commit>/<path>`` symlinked into ``blobs/<sha256>``) and points
huggingface_hub at it. Everything after that is the real code path: huggingface_hub's offline resolution,
transformers' and TransformerLens's loaders, and sae-lens's registry (``pretrained_saes.yaml``) and its
converters. The files are tiny and random, in the formats the real repositories use. Sockets are closed for the
duration of each test, so any attempt to reach the network fails the test.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mona.errors import ArtifactMismatch, ModelError
from mona.testing import TINY_HOOK

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LLAMA_SCOPE = "registry:llama_scope_lxr_8x/l1r_8x"
LLAMA_SCOPE_REPO, LLAMA_SCOPE_FOLDER = "fnlp/Llama3_1-8B-Base-LXR-8x", "Llama3_1-8B-Base-L1R-8x"
LLAMA_SCOPE_NORM = 39.76699029126213  # pretrained_saes.yaml's norm_scaling_factor for l1r_8x
GEMMA_SCOPE_REPO = "google/gemma-scope-2-1b-pt"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty hub cache that huggingface_hub (and so transformers, TransformerLens, sae-lens) reads, offline,
    with the network closed."""
    from huggingface_hub import constants

    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    return cache


def put_in_cache(cache: Path, repo_id: str, files: dict[str, bytes | Path]) -> Path:
    """Store files as the hub does: content in ``blobs/<sha256>``, ``snapshots/<commit>/<path>`` symlinks to
    them, ``refs/main`` naming the commit. Returns the snapshot folder."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        data = content.read_bytes() if isinstance(content, Path) else content
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(*[".."] * (len(Path(rel).parts) + 1), "blobs", blob.name))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


def _safetensors(tensors: dict[str, torch.Tensor], tmp: Path) -> Path:
    path = tmp / f"t{len(list(tmp.glob('t*')))}.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, path)
    return path


# ----------------------------------------------------------------------------------------------------------
# Models by TransformerLens name
# ----------------------------------------------------------------------------------------------------------


def _tiny_gpt2_files(tmp: Path) -> dict[str, Path]:
    from transformers import GPT2Config, GPT2LMHeadModel

    from mona.testing import tiny_tokenizer

    tok = tiny_tokenizer()
    config = GPT2Config(n_layer=3, n_embd=32, n_head=4, n_positions=128, n_ctx=128, vocab_size=len(tok),
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    folder = tmp / "gpt2-src"
    GPT2LMHeadModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return {p.name: p for p in folder.iterdir()}


def test_official_name_loads_from_hub_cache_offline(hub, tmp_path):
    """``load_model("gpt2")`` reads a tiny random GPT-2 from the hub cache with the hub offline.

    Why GPT-2: TransformerLens only accepts names from its official table, and for most families (Llama, Gemma)
    the table hard-codes the real dimensions, so a tiny stand-in under ``google/gemma-3-1b-pt`` would be loaded
    with 1B-sized shapes. For ``gpt2`` TransformerLens builds its config from the repo's ``config.json``, so a
    3-layer, d_model-32 model stored under that name goes through the whole real route: huggingface_hub's
    offline snapshot resolution, transformers' config/weights/tokenizer loading from the cache, and
    ``HookedTransformer.from_pretrained_no_processing``. The Gemma/Llama names share every step of mona's own
    resolution (tested below with their real names), only TransformerLens's table lookup differs.
    """
    from transformers import AutoModelForCausalLM

    from mona.activations import forward_hooks
    from mona.hub import snapshot_weights_hash
    from mona.models import load_model, resolve_hub_model

    snapshot = put_in_cache(hub, "gpt2", _tiny_gpt2_files(tmp_path))
    assert resolve_hub_model("gpt2") == ("gpt2", snapshot)
    loaded = load_model("gpt2")
    ident = loaded.identity
    assert (ident.name, ident.source, ident.n_layers, ident.d_model) == ("gpt2", "hub:gpt2", 3, 32)
    # the identity's hash comes from the blob names (sha256 of the weight file), not from reading 16 GB again
    weights = hashlib.sha256((snapshot / "model.safetensors").read_bytes()).hexdigest()
    expected = hashlib.sha256(f"model.safetensors:{weights}\n".encode()).hexdigest()[:16]
    assert ident.weights_hash == snapshot_weights_hash(snapshot) == expected
    # no weight processing: the residual stream is the HF model's own
    hf = AutoModelForCausalLM.from_pretrained(snapshot, dtype=torch.float32).eval()
    tokens = loaded.model.to_tokens("Solve for x: 3x + 5 = 20.")
    with torch.no_grad():
        hidden = hf(tokens, output_hidden_states=True).hidden_states
    acts = forward_hooks(loaded, tokens, ["blocks.1.hook_resid_post"])["blocks.1.hook_resid_post"]
    assert torch.allclose(acts, hidden[2], atol=1e-5)
    assert load_model("gpt2").identity == ident  # the same identity on every load


def test_partly_downloaded_repo_resolves(hub, tmp_path):
    """``hf download <repo> --exclude 'original/*'`` leaves huggingface_hub's tree listing naming files that are not
    in the snapshot; the model is still complete for mona (config, weights, tokenizer are there)."""
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache

    from mona.models import resolve_hub_model

    files = _tiny_gpt2_files(tmp_path)
    snapshot = put_in_cache(hub, "gpt2", files)
    listing = {name: TreeCacheEntry(size=1, blob_id="0" * 40) for name in [*files, "original/consolidated.00.pth"]}
    write_tree_cache(str(hub / "models--gpt2"), COMMIT, listing)
    assert resolve_hub_model("gpt2") == ("gpt2", snapshot)


def _no_model_loading(monkeypatch):
    from transformer_lens import HookedTransformer

    def fail(*args, **kwargs):
        raise AssertionError("the model was loaded before the cache was checked")

    monkeypatch.setattr(HookedTransformer, "from_pretrained_no_processing", fail)


@pytest.mark.parametrize("name", ["meta-llama/Llama-3.1-8B", "google/gemma-3-1b-pt"])
def test_official_name_missing_offline_is_one_line(hub, monkeypatch, name):
    from mona.models import load_model

    _no_model_loading(monkeypatch)
    with pytest.raises(ModelError) as info:
        load_model(name)
    message = str(info.value)
    assert "\n" not in message
    assert f"model {name!r} is not in the local Hugging Face cache ({hub})" in message
    assert "HF_HUB_OFFLINE=1" in message and f"`hf download {name}`" in message and "HF_HOME" in message


def test_incomplete_cached_model_names_what_is_missing(hub, monkeypatch):
    """A snapshot with only a config (an interrupted download) is refused offline, naming the missing files."""
    from mona.models import load_model, resolve_hub_model

    config = json.dumps({"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text"}).encode()
    put_in_cache(hub, "google/gemma-3-1b-pt", {"config.json": config,
                                               "model.safetensors.index.json": json.dumps(
                                                   {"weight_map": {"a": "model-00001-of-00002.safetensors",
                                                                   "b": "model-00002-of-00002.safetensors"}}).encode()})
    _no_model_loading(monkeypatch)
    with pytest.raises(ModelError, match=r"is incomplete in \(model-00001-of-00002.safetensors, "
                                         r"model-00002-of-00002.safetensors, tokenizer missing from\)"):
        load_model("gemma-3-1b-pt")  # a TransformerLens alias resolves to the official repo name
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    assert resolve_hub_model("google/gemma-3-1b-pt") == ("google/gemma-3-1b-pt", None)  # TL would download


def test_cli_model_missing_offline_exits_2(hub, tmp_path, monkeypatch, capsys):
    from mona.cli import main

    _no_model_loading(monkeypatch)
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"instruction": "Say hi.", "output": "hi"}) + "\n")
    assert main(["embed", str(data), "-o", str(tmp_path / "s"), "--model", "meta-llama/Llama-3.1-8B",
                 "--mode", "dense"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "hf download meta-llama/Llama-3.1-8B" in err


# ----------------------------------------------------------------------------------------------------------
# Registry SAEs
# ----------------------------------------------------------------------------------------------------------


def _llama_scope_files(tmp: Path, d_in: int = 32, d_sae: int = 64, hook: str = TINY_HOOK, thr: float = 0.01):
    """Llama Scope's layout and formats: ``<folder>/hyperparams.json`` and ``<folder>/checkpoints/final.safetensors``
    (``encoder.weight`` (d_sae, d_in), ``decoder.weight`` (d_in, d_sae), biases), at tiny size."""
    torch.manual_seed(1)
    raw = {"encoder.weight": torch.randn(d_sae, d_in) * 0.1, "encoder.bias": torch.randn(d_sae) * 0.01,
           "decoder.weight": torch.randn(d_in, d_sae) * 0.1, "decoder.bias": torch.randn(d_in) * 0.1}
    hyper = {"d_model": d_in, "d_sae": d_sae, "hook_point_in": hook, "hook_point_out": hook,
             "jump_relu_threshold": thr,
             # Llama Scope's average activation norm; the loader's scale sqrt(d_in)/norm equals the yaml's factor
             "dataset_average_activation_norm": {"in": math.sqrt(d_in) / LLAMA_SCOPE_NORM,
                                                 "out": math.sqrt(d_in) / LLAMA_SCOPE_NORM}}
    files = {f"{LLAMA_SCOPE_FOLDER}/hyperparams.json": json.dumps(hyper).encode(),
             f"{LLAMA_SCOPE_FOLDER}/checkpoints/final.safetensors": _safetensors(raw, tmp)}
    return files, raw


def test_registry_llama_scope_from_cache_offline(hub, tmp_path, tiny):
    """A real release (``llama_scope_lxr_8x``) through sae-lens's registry and its Llama Scope converter, from the
    cache: the codes are Llama Scope's JumpReLU on inputs scaled by the yaml's norm factor."""
    from mona.saes import load_sae

    files, raw = _llama_scope_files(tmp_path)
    put_in_cache(hub, LLAMA_SCOPE_REPO, files)
    loaded = load_sae(LLAMA_SCOPE, model=tiny, hook=TINY_HOOK)
    ident = loaded.identity
    assert (ident.source, ident.name) == (LLAMA_SCOPE, "llama_scope_lxr_8x/l1r_8x")
    assert (ident.hook, ident.d_in, ident.d_sae, ident.architecture) == (TINY_HOOK, 32, 64, "jumprelu")
    x = torch.randn(7, 32)
    pre = LLAMA_SCOPE_NORM * (x @ raw["encoder.weight"].T) + raw["encoder.bias"]
    expected = torch.relu(pre) * (pre > 0.01 * LLAMA_SCOPE_NORM)
    codes = loaded.encode(x)
    assert torch.allclose(codes, expected, atol=1e-4) and int((codes > 0).sum()) > 0
    recon = (expected @ raw["decoder.weight"].T + raw["decoder.bias"]) / LLAMA_SCOPE_NORM
    assert torch.allclose(loaded.decode(codes), recon, atol=1e-4)
    assert load_sae(LLAMA_SCOPE).identity == ident


def test_registry_sae_embeds_and_is_found_again_from_the_manifest(hub, tmp_path, tiny):
    from mona.data import load_samples
    from mona.embed import EmbedConfig, embed
    from mona.saes import sae_for_identity
    from mona.testing import pool_records

    put_in_cache(hub, LLAMA_SCOPE_REPO, _llama_scope_files(tmp_path)[0])
    store = embed(load_samples(pool_records()[:6]), model=tiny, sae=LLAMA_SCOPE, config=EmbedConfig(dtype="float32"),
                  out_dir=tmp_path / "store", progress=False)
    sae = store.manifest["sae"]
    assert sae["source"] == LLAMA_SCOPE and store.manifest["hook"] == TINY_HOOK
    assert store.codes().shape == (6, 64) and store.codes().nnz > 0
    assert sae_for_identity(sae).identity.to_dict() == {k: v for k, v in sae.items() if k != "dtype"}


def _gemma_scope_files(tmp: Path, layer: int, d_in: int = 32, d_sae: int = 48, base: str = "resid_post_all"):
    """Gemma Scope 2's layout: ``resid_post*/layer_<L>_width_<W>_l0_<size>/{config.json, params.safetensors}``
    with ``w_enc`` (d_in, d_sae), ``w_dec``, ``b_enc``, ``b_dec``, ``threshold``, at tiny size."""
    torch.manual_seed(2)
    params = {"w_enc": torch.randn(d_in, d_sae) * 0.3, "w_dec": torch.randn(d_sae, d_in) * 0.3,
              "b_enc": torch.randn(d_sae) * 0.1, "b_dec": torch.randn(d_in) * 0.1, "threshold": torch.rand(d_sae)}
    folder = f"{base}/layer_{layer}_width_16k_l0_small"
    config = {"architecture": "jump_relu", "model_name": "gemma-v3-1b-pt",
              "hf_hook_point_in": f"model.layers.{layer}.output"}
    return {f"{folder}/config.json": json.dumps(config).encode(),
            f"{folder}/params.safetensors": _safetensors(params, tmp)}, params


def test_registry_gemma_scope_2_from_cache_offline(hub, tmp_path, tiny, caplog):
    """Gemma Scope 2 through sae-lens's ``gemma_3`` converter. sae-lens reads these SAEs' shapes with HTTP range
    requests that bypass the cache; mona answers them from the cached file, so the closed network is never
    asked."""
    from mona.models import LoadedModel
    from mona.saes import load_sae

    files, params = _gemma_scope_files(tmp_path, layer=1)
    put_in_cache(hub, GEMMA_SCOPE_REPO, files)
    loaded = load_sae("registry:gemma-scope-2-1b-pt-res-all/layer_1_width_16k_l0_small", model=tiny)
    assert (loaded.hook, loaded.identity.d_in, loaded.d_sae) == (TINY_HOOK, 32, 48)
    x = torch.randn(5, 32)
    pre = x @ params["w_enc"] + params["b_enc"]
    assert torch.allclose(loaded.encode(x), torch.relu(pre) * (pre > params["threshold"]), atol=1e-5)

    # an SAE of another model variant that happens to fit is loaded, with a warning naming both
    it = LoadedModel(tiny.model, tiny.tokenizer, replace(tiny.identity, source="hub:google/gemma-3-1b-it"))
    with caplog.at_level(logging.WARNING, logger="mona.saes"):
        load_sae("registry:gemma-scope-2-1b-pt-res-all/layer_1_width_16k_l0_small", model=it)
    assert "trained on google/gemma-3-1b-pt, but the model is google/gemma-3-1b-it" in caplog.text


def _no_weights_loading(monkeypatch):
    from sae_lens import SAE

    def fail(*args, **kwargs):
        raise AssertionError("the SAE's weights were loaded before it was checked against the model")

    monkeypatch.setattr(SAE, "from_pretrained", fail)


def test_registry_sae_that_does_not_fit_the_model(hub, tmp_path, tiny, monkeypatch):
    """Hook depth and d_in are checked from sae-lens's config, before the weights are loaded, in one line."""
    from mona.saes import load_sae

    put_in_cache(hub, GEMMA_SCOPE_REPO, _gemma_scope_files(tmp_path, layer=7, base="resid_post")[0])
    _no_weights_loading(monkeypatch)
    with pytest.raises(ArtifactMismatch, match=r"layer 7\), but model tiny-3x32-seed0 has 3 layers") as info:
        load_sae("registry:gemma-scope-2-1b-pt-res/layer_7_width_16k_l0_small", model=tiny)
    assert "\n" not in str(info.value)
    put_in_cache(hub, LLAMA_SCOPE_REPO, _llama_scope_files(tmp_path, d_in=16)[0])
    with pytest.raises(ArtifactMismatch, match="d_in=16, but model tiny-3x32-seed0 has d_model=32"):
        load_sae(LLAMA_SCOPE, model=tiny)
    with pytest.raises(ArtifactMismatch, match="trained on hook 'blocks.1.hook_resid_post'"):
        load_sae(LLAMA_SCOPE, hook="blocks.2.hook_resid_post")


def test_registry_hf_repo_in_sae_lens_format(hub, tmp_path, tiny):
    """``registry:<org>/<repo>/<folder>``: any hub repo holding sae-lens folders, through sae-lens's own loader;
    the same weights have the same identity hash as when loaded from a local folder."""
    from mona.saes import load_sae
    from mona.testing import tiny_sae

    sae = tiny_sae(d_sae=40, seed=4)
    sae.cfg.metadata.hook_name = TINY_HOOK
    sae.save_model(tmp_path / "local")
    put_in_cache(hub, "someone/tiny-saes", {f"layer1/{p.name}": p for p in (tmp_path / "local").iterdir()})
    loaded = load_sae("registry:someone/tiny-saes/layer1", model=tiny)
    assert loaded.identity.source == "registry:someone/tiny-saes/layer1" and loaded.hook == TINY_HOOK
    assert loaded.identity.weights_hash == load_sae(tmp_path / "local").identity.weights_hash


def test_registry_sae_missing_offline_is_one_line(hub, tiny, monkeypatch):
    from mona.saes import load_sae

    with pytest.raises(ModelError) as info:
        load_sae(LLAMA_SCOPE, model=tiny)
    message = str(info.value)
    assert "\n" not in message
    assert (f"registry SAE llama_scope_lxr_8x/l1r_8x (repo {LLAMA_SCOPE_REPO}, folder {LLAMA_SCOPE_FOLDER}) is not "
            f"in the local Hugging Face cache ({hub}) and the hub is offline") in message
    assert f"`hf download {LLAMA_SCOPE_REPO} --include '{LLAMA_SCOPE_FOLDER}/*'`" in message
    with pytest.raises(ModelError, match="is not in the local Hugging Face cache"):
        load_sae("registry:gemma-scope-2-1b-pt-res/layer_13_width_16k_l0_medium")


@pytest.mark.parametrize("spec, expected", [
    ("registry:x/y", "unknown registry SAE 'x/y'"),
    (LLAMA_SCOPE, "is not in the local Hugging Face cache"),
    ("registry:llama_scope_lxr_8x/l99r_8x", "registry release 'llama_scope_lxr_8x' has no SAE 'l99r_8x'"),
])
def test_cli_registry_sae_errors_exit_2(hub, tmp_path, monkeypatch, capsys, spec, expected):
    from mona.cli import main

    _no_model_loading(monkeypatch)
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"instruction": "Say hi.", "output": "hi"}) + "\n")
    assert main(["embed", str(data), "-o", str(tmp_path / "s"), "--sae", spec]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and expected in err
