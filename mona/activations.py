"""Residual-stream activations of instruction samples, streamed batch by batch.

One forward pass per batch serves every requested hook, and stops right after the deepest one
(``stop_at_layer``): for the default model the layers above the hook and the 262k-vocabulary unembedding would
otherwise cost most of the time and memory.

Samples are tokenised a window at a time, sorted by length inside the window and cut into batches of about
``batch_tokens`` padded tokens, so padding stays small and memory stays bounded whatever the pool size. Padding
is on the right, so with causal attention real tokens never see it and no attention mask is needed (the model's
tokenizer is told so during the forward: a left-padding tokenizer, like Gemma's, would otherwise make
TransformerLens build a mask and per-row rotary positions for every batch).

The forward runs on the model's device and, unless the model's runtime says ``attention="eager"``, through
:func:`mona.fastpath.fast_forward` (SDPA attention, copy-free MLPs, the same hooks). Activations come back as
float32 on the model's device whatever the model's dtype; the masks stay on the CPU.

``valid`` marks the tokens of the messages' own text: special tokens (BOS, padding, Gemma's ``<start_of_turn>``)
and the chat template's scaffolding (role names, newlines between turns, a template's default system prompt) are
masked out. BOS alone has a residual norm ~15x that of ordinary tokens, and scaffolding tokens are the same in
every sample: either would dominate pooled statistics, and NAIT's first/last tokens would be template tokens.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from mona.data import Sample, render
from mona.errors import ModelError
from mona.fastpath import fast_forward
from mona.models import LoadedModel, check_hook
from mona.runtime import forward_batch_tokens, model_device

log = logging.getLogger(__name__)


@dataclass
class ActivationConfig:
    """How activations are taken."""

    hooks: tuple[str, ...] = ("blocks.6.hook_resid_post",)
    """TransformerLens hook names, all served by one forward pass."""
    max_tokens: int = 512
    """Samples longer than this many tokens (BOS included) are truncated; the count is reported."""
    batch_tokens: int = 4096
    """Target number of padded tokens per forward batch."""
    window: int = 2048
    """Samples tokenised and length-sorted together; bounds memory independently of pool size."""

    def __post_init__(self) -> None:
        self.hooks = tuple(self.hooks)
        if not self.hooks:
            raise ModelError("at least one hook is needed")
        if self.max_tokens < 2:
            raise ModelError(f"max_tokens must be >= 2, got {self.max_tokens}")
        if self.batch_tokens < self.max_tokens:
            self.batch_tokens = self.max_tokens
        if self.window < 1:
            raise ModelError(f"window must be >= 1, got {self.window}")


@dataclass
class ActivationBatch:
    """Activations of a batch of samples at the requested hooks."""

    indices: np.ndarray
    """(B,) positions of these samples in the input sequence."""
    acts: dict[str, Float[Tensor, "B T d"]]
    tokens: Int[Tensor, "B T"]
    valid: Bool[Tensor, "B T"]
    """Tokens of the messages' own text: no special tokens, template scaffolding or padding."""
    response: Bool[Tensor, "B T"]
    """Valid tokens in the response span."""
    prompt: Bool[Tensor, "B T"]
    """Valid tokens before the response."""


@dataclass
class ActivationStats:
    """Counts over a whole run, logged at the end of :func:`iter_activations`."""

    samples: int = 0
    tokens: int = 0
    """Valid (pooled) tokens."""
    padded_tokens: int = 0
    truncated: int = 0
    truncated_ids: list[str] = field(default_factory=list)


def special_token_ids(tokenizer: Any) -> list[int]:
    """BOS/EOS/PAD/UNK and every added token marked special (chat-turn markers included)."""
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    for token_id, token in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).items():
        if getattr(token, "special", False):
            ids.add(int(token_id))
    return sorted(ids)


@dataclass
class _Tokenized:
    index: int
    ids: list[int]
    content: np.ndarray
    """(T,) bool: the token overlaps a message's own text (not the template's scaffolding)."""
    response: np.ndarray
    """(T,) bool: the token lies in the response."""
    truncated: bool


def _tokenize(tokenizer: Any, sample: Sample, index: int, max_tokens: int) -> _Tokenized:
    rendered = render(sample, tokenizer)
    enc = tokenizer(rendered.text, return_offsets_mapping=True, add_special_tokens=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None and (not ids or ids[0] != bos):
        ids, offsets = [bos, *ids], [(0, 0), *offsets]
    truncated = len(ids) > max_tokens
    ids = ids[:max_tokens]
    spans = np.asarray(offsets[:max_tokens], dtype=np.int64).reshape(-1, 2)
    start, end = spans[:, 0], spans[:, 1]
    content = np.zeros(len(ids), dtype=bool)
    for lo, hi in rendered.content_spans:
        content |= (start < hi) & (end > lo) & (end > start)
    response = content & (end > rendered.response_char_start)
    return _Tokenized(index, ids, content, response, truncated)


def _batches(items: list[_Tokenized], batch_tokens: int) -> Iterator[list[_Tokenized]]:
    items = sorted(items, key=lambda t: (len(t.ids), t.index))
    batch: list[_Tokenized] = []
    for item in items:
        width = max(len(item.ids), len(batch[-1].ids) if batch else 0)
        if batch and width * (len(batch) + 1) > batch_tokens:
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def _collate(batch: list[_Tokenized], pad_id: int, special: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    width = max(len(t.ids) for t in batch)
    tokens = torch.full((len(batch), width), pad_id, dtype=torch.long)
    content = torch.zeros((len(batch), width), dtype=torch.bool)
    in_response = torch.zeros((len(batch), width), dtype=torch.bool)
    for row, item in enumerate(batch):
        tokens[row, : len(item.ids)] = torch.tensor(item.ids)
        content[row, : len(item.ids)] = torch.from_numpy(item.content)
        in_response[row, : len(item.ids)] = torch.from_numpy(item.response)
    valid = content & ~torch.isin(tokens, special)
    return tokens, valid, valid & in_response, valid & ~in_response


@torch.inference_mode()
def forward_hooks(loaded: LoadedModel, tokens: Int[Tensor, "B T"], hooks: Sequence[str]) -> dict[str, Tensor]:
    """Activations at ``hooks`` for a token batch, stopping after the deepest hooked layer."""
    stop = max(check_hook(loaded, h) for h in hooks) + 1
    store: dict[str, Tensor] = {}

    def keeper(name: str) -> Any:
        # Keyed by the requested name: TransformerBridge fires aliases under their canonical names.
        def keep(act: Tensor, hook: Any) -> None:
            store[name] = act.detach().float()

        return keep

    fwd_hooks = [(h, keeper(h)) for h in hooks]
    runtime = getattr(loaded, "runtime", None)
    fast = runtime is None or runtime.attention == "sdpa"
    with _right_padded(loaded.model), fast_forward(loaded.model, enabled=fast):
        # stop_at_layer == n_layers still skips the final norm and the unembedding (262k-wide for Gemma 3).
        loaded.model.run_with_hooks(tokens.to(model_device(loaded.model)), fwd_hooks=fwd_hooks, stop_at_layer=stop)
    missing = [h for h in hooks if h not in store]
    if missing:
        raise ModelError(f"hook(s) {missing} did not fire on {loaded.identity.name}; check the hook names")
    return store


@contextlib.contextmanager
def _right_padded(model: Any) -> Iterator[None]:
    """Tell the model's tokenizer that batches are right-padded while they run (no attention mask needed)."""
    tokenizer = getattr(model, "tokenizer", None)
    side = getattr(tokenizer, "padding_side", None)
    if side is None or side == "right":
        yield
        return
    tokenizer.padding_side = "right"
    try:
        yield
    finally:
        tokenizer.padding_side = side


def iter_activations(
    loaded: LoadedModel,
    samples: Sequence[Sample],
    config: ActivationConfig | None = None,
    *,
    progress: bool = True,
    stats: ActivationStats | None = None,
) -> Iterator[ActivationBatch]:
    """Stream activations of ``samples`` at ``config.hooks``, in length-bucketed batches.

    Batches come in length order within each window, not input order: use ``batch.indices``. Pass an
    :class:`ActivationStats` to read the counts (truncations, tokens) after the iteration.
    """
    config = config or ActivationConfig()
    for hook in config.hooks:
        check_hook(loaded, hook)
    tokenizer = loaded.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    special = torch.tensor(special_token_ids(tokenizer), dtype=torch.long)
    stats = stats if stats is not None else ActivationStats()
    bar = tqdm(total=len(samples), desc="activations", unit="sample", disable=not progress)
    for lo in range(0, len(samples), config.window):
        hi = min(lo + config.window, len(samples))
        window = [_tokenize(tokenizer, samples[i], i, config.max_tokens) for i in range(lo, hi)]
        for item in window:
            if item.truncated:
                stats.truncated += 1
                if len(stats.truncated_ids) < 20:
                    stats.truncated_ids.append(samples[item.index].id)
        for batch in _batches(window, config.batch_tokens):
            tokens, valid, response, prompt = _collate(batch, pad_id, special)
            acts = forward_hooks(loaded, tokens, config.hooks)
            stats.samples += len(batch)
            stats.tokens += int(valid.sum())
            stats.padded_tokens += tokens.numel()
            bar.update(len(batch))
            bar.set_postfix(tok=stats.tokens, refresh=False)
            yield ActivationBatch(np.array([t.index for t in batch]), acts, tokens, valid, response, prompt)
    bar.close()
    if stats.truncated:
        log.warning(
            "%d of %d samples were longer than max_tokens=%d and truncated (e.g. %s)",
            stats.truncated,
            stats.samples,
            config.max_tokens,
            ", ".join(stats.truncated_ids[:3]),
        )
    padding = 100 * (stats.padded_tokens - stats.tokens) / max(stats.padded_tokens, 1)
    log.info(
        "activations: %d samples, %d pooled tokens, %.1f%% padding or special", stats.samples, stats.tokens, padding
    )


def layer_statistics(
    loaded: LoadedModel, samples: Sequence[Sample], layers: Sequence[int], config: ActivationConfig | None = None
) -> list[dict[str, float]]:
    """Per-layer mean/std of residual norms over valid tokens, and the share of energy in the mean direction."""
    base = config or ActivationConfig()
    hooks = tuple(f"blocks.{layer}.hook_resid_post" for layer in layers)
    batch_tokens = forward_batch_tokens(loaded, base.batch_tokens, base.max_tokens, len(hooks))
    config = ActivationConfig(hooks=hooks, max_tokens=base.max_tokens, batch_tokens=batch_tokens)
    sums = {h: torch.zeros(loaded.d_model, dtype=torch.float64) for h in hooks}
    sq_norm = dict.fromkeys(hooks, 0.0)
    norms: dict[str, list[Tensor]] = {h: [] for h in hooks}
    count = 0
    for batch in iter_activations(loaded, samples, config):
        count += int(batch.valid.sum())
        for h in hooks:
            x = batch.acts[h][batch.valid.to(batch.acts[h].device)].double().cpu()
            sums[h] += x.sum(0)
            sq_norm[h] += float((x * x).sum())
            norms[h].append(x.norm(dim=-1))
    rows = []
    for layer, h in zip(layers, hooks):
        n = torch.cat(norms[h])
        mean = sums[h] / max(count, 1)
        rows.append(
            {
                "layer": layer,
                "tokens": count,
                "norm_mean": float(n.mean()),
                "norm_std": float(n.std()),
                "mean_direction_energy": float(mean.dot(mean) * count / max(sq_norm[h], 1e-12)),
            }
        )
    return rows
