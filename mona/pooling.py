"""Pooling token vectors into sample vectors: pure tensor functions, tested against hand-computed examples."""

from __future__ import annotations

from typing import Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from mona.errors import MonaError

Pooling = Literal["mean", "max", "sum", "binary"]
Span = Literal["all", "prompt", "response"]


def pool_tokens(
    x: Float[Tensor, "N F"], rows: Tensor, n_rows: int, pooling: Pooling, threshold: float = 0.0
) -> Float[Tensor, "B F"]:
    """Pool token vectors ``x`` into ``n_rows`` sample vectors; ``rows[i]`` is token i's sample (sorted).

    Rows without tokens come out as zeros. ``binary``: 1.0 where any token of the row exceeds ``threshold``.
    """
    counts = torch.bincount(rows, minlength=n_rows)
    if pooling == "binary":
        active = torch.zeros((n_rows, x.shape[1]), dtype=torch.float32, device=x.device)
        active.index_add_(0, rows, (x > threshold).float())
        return (active > 0).float()
    if pooling in ("sum", "mean"):
        out = torch.zeros((n_rows, x.shape[1]), dtype=torch.float32, device=x.device).index_add_(0, rows, x.float())
        if pooling == "mean":
            out /= counts.clamp(min=1).unsqueeze(1).float()
        return out
    if pooling == "max":
        out = torch.segment_reduce(x.float(), "max", lengths=counts, axis=0)
        out[counts == 0] = 0.0
        return out
    raise MonaError(f"unknown pooling {pooling!r}")


def span_mask(valid: Bool[Tensor, "B T"], prompt: Bool[Tensor, "B T"], response: Bool[Tensor, "B T"],
              span: Span) -> Bool[Tensor, "B T"]:
    return {"all": valid, "prompt": prompt, "response": response}[span]


def first_last(acts: Float[Tensor, "B T d"], mask: Bool[Tensor, "B T"]) -> Float[Tensor, "B 2 d"]:
    """Activation of the first and last ``mask`` token of each row (zeros for rows without one)."""
    b, t = mask.shape
    pos = torch.arange(t, device=mask.device).expand(b, t)
    has = mask.any(1)
    first = torch.where(mask, pos, t).amin(1).clamp(max=t - 1)
    last = torch.where(mask, pos, -1).amax(1).clamp(min=0)
    rows = torch.arange(b, device=mask.device)
    out = torch.stack([acts[rows, first], acts[rows, last]], dim=1)
    out[~has] = 0.0
    return out
