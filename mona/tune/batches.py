"""Samples as training examples: tokens rendered as embedding renders them, labels on the response tokens only.

A sample is rendered by :func:`mona.data.render` (the tokenizer's chat template, or Gemma's turn format) and
tokenised with its character offsets, BOS first, cut at ``max_tokens`` — exactly what the embedding stage reads.
A token is a *response token* when it overlaps the final assistant message's own text and is not a special token;
every other token (prompt, system text, turn markers, role names, a template's default system prompt, padding)
gets the label ``-100`` and carries no loss.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Int
from torch import Tensor

from mona.activations import special_token_ids
from mona.data import Sample, render
from mona.errors import DataError

log = logging.getLogger(__name__)

IGNORE = -100
"""Label of a token that carries no loss (PyTorch's cross-entropy ``ignore_index``)."""


@dataclass(frozen=True)
class Encoded:
    """One sample as token ids with per-token labels (the id itself on response tokens, else ``-100``)."""

    id: str
    ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def n_response(self) -> int:
        """Response tokens that carry loss (the first token is never predicted, so it never counts)."""
        return sum(1 for label in self.labels[1:] if label != IGNORE)


def check_responses(samples: Sequence[Sample], what: str) -> None:
    """Raise a one-line :class:`DataError` unless every sample has a non-empty response."""
    missing = [s.id for s in samples if not s.response.strip()]
    if missing:
        raise DataError(
            f"{what}: {len(missing)} of {len(samples)} samples have no response (e.g. {missing[0]!r}); the loss is "
            "measured on responses, so every sample needs a final assistant turn"
        )


def encode(sample: Sample, tokenizer: Any, max_tokens: int, special: set[int] | None = None) -> Encoded:
    """Token ids and response-only labels of one sample, cut at ``max_tokens``."""
    rendered = render(sample, tokenizer)
    enc = tokenizer(rendered.text, return_offsets_mapping=True, add_special_tokens=True)
    ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None and (not ids or ids[0] != bos):
        ids, offsets = [bos, *ids], [(0, 0), *offsets]
    ids, offsets = ids[:max_tokens], offsets[:max_tokens]
    special = special if special is not None else set(special_token_ids(tokenizer))
    spans = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    start, end = spans[:, 0], spans[:, 1]
    response = np.zeros(len(ids), dtype=bool)
    if rendered.content_spans and rendered.response_char_start < len(rendered.text):
        lo, hi = rendered.content_spans[-1]
        lo = max(lo, rendered.response_char_start)
        response = (start < hi) & (end > lo) & (end > start)
    labels = [t if keep and t not in special else IGNORE for t, keep in zip(ids, response.tolist())]
    return Encoded(sample.id, tuple(ids), tuple(labels))


def encode_all(samples: Sequence[Sample], tokenizer: Any, max_tokens: int, what: str) -> list[Encoded]:
    """Encode samples; those whose response starts beyond ``max_tokens`` carry no loss and are left out (logged)."""
    special = set(special_token_ids(tokenizer))
    encoded = [encode(s, tokenizer, max_tokens, special) for s in samples]
    kept = [e for e in encoded if e.n_response > 0]
    if len(kept) < len(encoded):
        log.warning("%s: %d of %d samples have no response token within %d tokens and are left out",
                    what, len(encoded) - len(kept), len(encoded), max_tokens)
    if not kept:
        raise DataError(f"{what}: no sample has a response token within the first {max_tokens} tokens")
    return kept


def training_batches(items: Sequence[Encoded], batch_size: int, seed: int) -> list[list[Encoded]]:
    """A seeded, deterministic order of batches: shuffle, sort windows of 8 batches by length (less padding),
    then shuffle the batches."""
    rng = random.Random(seed)
    order = list(items)
    rng.shuffle(order)
    window = 8 * batch_size
    out: list[list[Encoded]] = []
    for lo in range(0, len(order), window):
        chunk = sorted(order[lo : lo + window], key=lambda e: len(e.ids))
        out.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(out)
    return out


def eval_batches(items: Sequence[Encoded], batch_size: int) -> list[list[Encoded]]:
    """Batches of similar length (the order does not change a summed loss)."""
    order = sorted(items, key=lambda e: (len(e.ids), e.id))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(
    batch: Sequence[Encoded], pad_id: int
) -> tuple[Int[Tensor, "B T"], Bool[Tensor, "B T"], Int[Tensor, "B T"]]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (``-100`` on padding)."""
    width = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.bool)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.ids)
        ids[row, :n] = torch.tensor(e.ids)
        mask[row, :n] = True
        labels[row, :n] = torch.tensor(e.labels)
    return ids, mask, labels


def draw(samples: Sequence[Sample], n: int, seed: int) -> list[Sample]:
    """``n`` samples drawn uniformly without replacement with ``seed`` (all of them, in order, if ``n`` covers them)."""
    if n >= len(samples):
        return list(samples)
    rows = sorted(random.Random(seed).sample(range(len(samples)), n))
    return [samples[i] for i in rows]
