"""Tiny offline models for tests and examples: a random TransformerLens model with a real (small) tokenizer.

Nothing here downloads anything: the tokenizer is a byte-level BPE trained on the fly on a few sentences, with
the same special tokens as Gemma (``<bos>``, ``<pad>``, ``<start_of_turn>``, ``<end_of_turn>``), so every
stage of the pipeline can be exercised in seconds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from mona.models import LoadedModel, ModelIdentity

SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Solve for x: 3x + 5 = 20. Subtract five, then divide by three.",
    "def add(a, b):\n    return a + b\n",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "Write a short poem about the sea and the wind and the stars at night.",
    "What is the capital of France? Paris is the capital of France.",
    "user model assistant system question answer response instruction input output",
    "0 1 2 3 4 5 6 7 8 9 + - * / = ( ) [ ] { } : ; , . ! ? ' \"",
]


def tiny_tokenizer(vocab_size: int = 400) -> Any:
    """A byte-level BPE tokenizer with Gemma-like special tokens (BOS added, right padding)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_CORPUS * 4, trainer)
    bos = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", bos)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )
    # TransformerLens reloads tokenizers by name, so give this one a folder to be reloaded from.
    folder = Path(tempfile.mkdtemp(prefix="mona-tiny-tokenizer-"))
    fast.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def tiny_model(n_layers: int = 3, d_model: int = 32, seed: int = 0) -> LoadedModel:
    """A randomly initialised HookedTransformer with :func:`tiny_tokenizer`, wrapped as a LoadedModel."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    tokenizer = tiny_tokenizer()
    cfg = HookedTransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        d_head=8,
        n_heads=d_model // 8,
        d_mlp=4 * d_model,
        d_vocab=len(tokenizer),
        n_ctx=256,
        act_fn="gelu",
        normalization_type="LN",
        seed=seed,
        device="cpu",
    )
    torch.manual_seed(seed)
    model = HookedTransformer(cfg)
    model.set_tokenizer(tokenizer, default_padding_side="right")
    model.eval()
    identity = ModelIdentity(
        name=f"tiny-{n_layers}x{d_model}-seed{seed}",
        source="random",
        weights_hash=f"seed{seed}",
        n_layers=n_layers,
        d_model=d_model,
        architecture="HookedTransformer",
    )
    return LoadedModel(model, tokenizer, identity)


def tiny_sae(d_in: int = 32, d_sae: int = 64, k: int = 6, seed: int = 0) -> Any:
    """A randomly initialised sae-lens TopK SAE (weights ~ N(0, 0.2)) for a :func:`tiny_model`."""
    from sae_lens import TopKSAE, TopKSAEConfig

    torch.manual_seed(seed)
    sae = TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k))
    with torch.no_grad():
        for p in sae.parameters():
            p.normal_(0, 0.2)
    return sae.eval()


TINY_HOOK = "blocks.1.hook_resid_post"
"""A hook of :func:`tiny_model` that the tests' SAEs read."""


def pool_records() -> list[dict]:
    """24 instruction records, 12 math (``p*``) and 12 poetry (``q*``), each with a ``domain``."""
    out = []
    for prefix, topic, domain in (("p", "Solve for x: 3x + 5 = 20.", "math"),
                                  ("q", "Write a poem about the sea.", "poetry")):
        for i in range(12):
            out.append({"id": f"{prefix}{i}", "domain": domain, "instruction": f"{topic} {i}",
                        "output": f"{topic} answer " * (i % 3 + 1)})
    return out


def norm(text: str) -> str:
    """Whitespace-collapsed, lower-cased text, for comparing prompts across formats."""
    return " ".join(text.split()).lower()
