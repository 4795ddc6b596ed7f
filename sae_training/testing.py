"""A tiny random model with a word-level tokenizer, for tests and quick trials of the training pipeline.

Nothing here touches the network: the tokenizer is built in memory from a fixed word list and the model is a
randomly initialised TransformerLens ``HookedTransformer``.
"""

from __future__ import annotations

import random
import tempfile

import torch

from mona.models import LoadedModel, ModelIdentity

WORDS = (
    "the a of and to in is it that for on with as was by at from this be are or an not which have "
    "cat dog bird fish tree river stone cloud rain sun moon star house road city car train ship book "
    "read write count add sum number list code function return value print loop if else true false "
    "question answer explain why how what when where who step first then finally because so result"
).split()


def tiny_tokenizer() -> object:
    """A word-level fast tokenizer with ``<bos>``, ``<eos>``, ``<pad>`` and ``<unk>``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["<pad>", "<bos>", "<eos>", "<unk>", *WORDS, ".", ",", "?"])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    fast = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")
    # TransformerLens re-reads a tokenizer from its folder to switch BOS on, so give it one.
    folder = tempfile.mkdtemp(prefix="mona-tiny-tokenizer-")
    fast.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder, add_bos_token=True)


def tiny_model(n_layers: int = 2, d_model: int = 32, seed: int = 0) -> LoadedModel:
    """A random 2-layer HookedTransformer (d_model 32) with :func:`tiny_tokenizer`."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        n_layers=n_layers, d_model=d_model, d_head=8, n_heads=d_model // 8, d_mlp=4 * d_model,
        d_vocab=len(tokenizer), n_ctx=256, act_fn="gelu", normalization_type="LN", seed=seed,
        default_prepend_bos=True,
    )
    model = HookedTransformer(cfg, tokenizer=tokenizer)
    model.eval()
    identity = ModelIdentity(f"tiny-{n_layers}l-{d_model}d", "random", f"seed{seed}", n_layers, d_model,
                             "HookedTransformer")
    return LoadedModel(model, tokenizer, identity)


def tiny_texts(n: int = 200, seed: int = 0) -> list[str]:
    """Random sentences over :data:`WORDS` (seeded)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) + " ." for _ in range(3)]
        out.append(" ".join(sentences))
    return out
