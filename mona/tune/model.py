"""The model side of the proxy fine-tune: loading a plain Hugging Face causal LM, checking it fits in memory,
adding LoRA adapters (peft), and the response-only loss.

The loss runs the decoder once, keeps the hidden states of the positions that predict a response token, and
applies the output head to those alone: for Gemma 3's 262k-token vocabulary the full logits would cost far more
time and memory than the rest of the model.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Int
from torch import Tensor

from mona.errors import ModelError, MonaError
from mona.tune.batches import IGNORE
from mona.tune.config import TuneConfig

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class CausalLM:
    """A plain Hugging Face causal LM ready for LoRA tuning, with its tokenizer and where it came from."""

    model: Any
    tokenizer: Any
    folder: Path
    device: torch.device


def model_folder(name: str) -> Path:
    """The Hugging Face folder of ``name``: a local folder, or an offline model converted under MONA_HOME."""
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelError(f"{path} is not a Hugging Face model folder (no config.json)")
        return path
    from mona.models import ensure_converted

    try:
        return ensure_converted(name)
    except KeyError:
        raise ModelError(
            f"unknown model {name!r}: expected smollm2-135m, gemma-3-270m or a local Hugging Face folder"
        ) from None


def check_causal_lm(folder: Path) -> None:
    """Raise a one-line :class:`ModelError` unless the folder's config describes a model with a causal-LM head."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    config = json.loads((folder / "config.json").read_text())
    heads = {n for v in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values() for n in ((v,) if isinstance(v, str) else v)}
    architectures = config.get("architectures") or []
    ok = any(a in heads for a in architectures) if architectures else config.get("model_type") in (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    if not ok:
        what = ", ".join(architectures) or f"model type {config.get('model_type')!r}"
        raise ModelError(f"{folder} holds {what}, which has no causal-LM head; tuning needs a causal language model")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise MonaError("device cuda was asked for but no CUDA device is available; use --device cpu or auto")
    return torch.device(device)


def load_causal_lm(config: TuneConfig) -> CausalLM:
    """Load ``config.model`` as a plain HF causal LM (eval mode, no gradients) on ``config.device``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("peft") is None:
        raise MonaError("mona tune needs peft for LoRA: pip install 'mona[tune]' (or pip install peft)")
    folder = model_folder(config.model)
    check_causal_lm(folder)
    device = resolve_device(config.device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=DTYPES[config.dtype])
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a causal LM from {folder}: {str(exc).splitlines()[0]}") from None
    model.to(device).eval()
    model.requires_grad_(False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return CausalLM(model, tokenizer, folder, device)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch CPU threads (``None``: leave the setting alone), restoring the old count after."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def available_memory() -> int:
    """Bytes of memory available for a run (RAM on CPU)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil comes with peft/accelerate
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def estimate_memory(hf_config: Any, n_params: int, config: TuneConfig) -> int:
    """Bytes a LoRA run needs, roughly: two copies of the weights (the base model and the run's copy), the
    activations autograd keeps (per layer and token ~34·d_model + 5·heads·T values, Korthikanti et al. 2022, with
    the MLP's width counted in) and float32 logits with their gradient at every position (the upper bound)."""
    text = getattr(hf_config, "text_config", None) or hf_config
    d = int(text.hidden_size)
    layers = int(text.num_hidden_layers)
    heads = int(getattr(text, "num_attention_heads", 1))
    mlp = int(getattr(text, "intermediate_size", 4 * d) or 4 * d)
    vocab = int(text.vocab_size)
    width = 2 if config.dtype == "bfloat16" else 4
    tokens = config.batch_size * config.max_tokens
    per_token_layer = 34 * d + 4 * mlp + 5 * heads * config.max_tokens
    activations = tokens * layers * per_token_layer * width
    logits = tokens * vocab * 4 * 2
    return 2 * n_params * width + activations + logits


def check_memory(lm: CausalLM, config: TuneConfig) -> None:
    """Raise a one-line :class:`MonaError` when a run of this size would not fit in the available memory."""
    if lm.device.type != "cpu":
        return
    n_params = sum(p.numel() for p in lm.model.parameters())
    need, have = estimate_memory(lm.model.config, n_params, config), available_memory()
    if need > have:
        raise MonaError(
            f"tuning {config.model} with batch {config.batch_size} x {config.max_tokens} tokens needs about "
            f"{need / 2**30:.1f} GiB but only {have / 2**30:.1f} GiB is available; lower --batch-size or --max-tokens"
        )


def add_lora(model: Any, config: TuneConfig, seed: int) -> Any:
    """A peft LoRA model around ``model`` (adapters initialised with ``seed``); only the adapters train."""
    from peft import LoraConfig, get_peft_model

    modules: Any = "all-linear" if config.target_modules == ("all-linear",) else list(config.target_modules)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=modules, task_type="CAUSAL_LM")
    torch.manual_seed(seed)
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        raise MonaError(f"cannot add LoRA adapters to {config.target_modules}: {str(exc).splitlines()[0]}") from None


def response_loss(
    model: Any, ids: Int[Tensor, "B T"], mask: Bool[Tensor, "B T"], labels: Int[Tensor, "B T"]
) -> tuple[Tensor, int]:
    """Summed cross-entropy over the response tokens and their count; logits only where a response token is
    predicted (hidden states sliced before the output head). Equal to the HF model's own loss with ``labels``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = base.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != IGNORE
    logits = base.get_output_embeddings()(hidden[:, :-1][keep]).float()
    cap = getattr(getattr(base.config, "text_config", None) or base.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return F.cross_entropy(logits, targets[keep], reduction="sum"), int(keep.sum())
