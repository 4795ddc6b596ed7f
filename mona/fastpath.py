"""Faster TransformerLens forward passes for inference, with the same hook names and the same residual stream.

TransformerLens computes attention explicitly (scores, mask, softmax, pattern) so that ``hook_attn_scores`` and
``hook_pattern`` can be read; and its gated MLP copies each weight matrix into a transposed contiguous layout on
every call. Profiled on Gemma 3 270M (batch 16 x 128 tokens, layers 0-6, CPU), those copies, the mask and the
per-head repeat of the single key/value head take a large share of a forward that Hugging Face runs with fused
scaled-dot-product attention (SDPA).

:func:`fast_forward` swaps, for the duration of a ``with`` block, each block's attention and gated MLP for
versions that

* run ``torch.nn.functional.scaled_dot_product_attention`` (causal, sliding window for local layers, grouped
  keys/values without materialising the repeat) instead of the explicit pattern;
* multiply by the MLP weights in their stored layout (no per-call copies);
* normalise RMS with one float32-accumulating reduction and two multiplies in the model's dtype (no float32
  copy of the residual), and compute a block's ``ln1`` once instead of three times (TransformerLens normalises
  the same residual separately for the queries, keys and values).

Every other hook still fires (``hook_q/k/v``, ``hook_rot_q/k``, ``hook_z``, ``hook_pre``, ``hook_post``, the
residual hooks). An attention module falls back to TransformerLens's own forward whenever the fast one would
differ: a hook on ``hook_attn_scores`` or ``hook_pattern``, an attention mask, a KV cache, ALiBi or relative
position bias, attention sinks, soft-capped scores, OLMo-style QK handling, 4-bit weights, ``use_attn_result``,
bidirectional attention, or training mode. The result equals TransformerLens's up to floating-point rounding
(tests check it in float32 and bfloat16).
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

_OLMO = ("OlmoeForCausalLM", "Olmo2ForCausalLM", "Olmo3ForCausalLM")
_POSITIONAL_OK = ("rotary", "standard", "shortformer")


def _hooked(hook_point: Any) -> bool:
    has = getattr(hook_point, "has_hooks", None)
    return bool(has("fwd") if callable(has) else False) or bool(getattr(hook_point, "_forward_hooks", None))


def _attention_ok(attn: Any, extra: tuple[Any, ...]) -> bool:
    cfg = attn.cfg
    soft_cap = getattr(cfg, "attn_scores_soft_cap", None)
    return (
        not attn.training
        and all(x is None for x in extra)
        and cfg.positional_embedding_type in _POSITIONAL_OK
        and (getattr(attn, "_attention_dir_override", None) or cfg.attention_dir) == "causal"
        and not getattr(cfg, "use_attention_sinks", False)
        and not (soft_cap is not None and soft_cap > 0)
        and not getattr(cfg, "use_logn_attn", False)
        and getattr(cfg, "clip_qkv", None) is None
        and cfg.original_architecture not in _OLMO
        and not getattr(cfg, "load_in_4bit", False)
        and not cfg.use_attn_result
        and not _hooked(attn.hook_attn_scores)
        and not _hooked(attn.hook_pattern)
    )


def _attention_forward(
    self: Any,
    query_input: torch.Tensor,
    key_input: torch.Tensor,
    value_input: torch.Tensor,
    past_kv_cache_entry: Any = None,
    additive_attention_mask: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    position_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """TransformerLens attention through SDPA; TransformerLens's own forward where that would differ."""
    if not _attention_ok(self, (past_kv_cache_entry, additive_attention_mask, attention_mask, position_bias)):
        return type(self).forward(self, query_input, key_input, value_input, past_kv_cache_entry,
                                  additive_attention_mask, attention_mask, position_bias)
    q, k, v = self.calculate_qkv_matrices(query_input, key_input, value_input)  # [b, t, heads, d_head]
    if self.cfg.positional_embedding_type == "rotary":
        q = self.hook_rot_q(_rotary(self, q))
        k = self.hook_rot_k(_rotary(self, k))
    q_, k_, v_ = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [b, heads, t, d_head]
    if k_.shape[1] != q_.shape[1]:  # grouped keys/values: a broadcast view, not a copy per head
        rep = q_.shape[1] // k_.shape[1]
        b, kv, t, d = k_.shape
        k_ = k_[:, :, None].expand(b, kv, rep, t, d).reshape(b, kv * rep, t, d)
        v_ = v_[:, :, None].expand(b, kv, rep, t, v_.shape[-1]).reshape(b, kv * rep, t, v_.shape[-1])
    t = q_.shape[2]
    mask = None
    window = getattr(self.cfg, "window_size", None)
    if self.attn_type == "local" and isinstance(window, int) and t > window:
        mask = self._make_causal_mask(t, t, 0, q_.device)[0, 0]
    z = F.scaled_dot_product_attention(q_, k_, v_.to(q_.dtype), attn_mask=mask, is_causal=mask is None,
                                       scale=1.0 / float(self.attn_scale))
    z = self.hook_z(z.transpose(1, 2))  # [b, t, heads, d_head]
    w_o = self.W_O
    flat = z.reshape(z.shape[0], z.shape[1], -1).to(w_o.dtype)
    return _plus_bias(torch.matmul(flat, w_o.reshape(-1, w_o.shape[-1]).to(flat.device)), self.b_O)


def _plus_bias(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x + bias``, skipping the pass over ``x`` when the bias is all zeros (Gemma, Llama: no biases)."""
    return x if not bool(bias.any()) else x + bias.to(x.device)


def _rotary(self: Any, x: torch.Tensor) -> torch.Tensor:
    """TransformerLens's rotary embedding (half-split pairs, positions 0..T-1) in fewer passes over ``x``; its own
    ``apply_rotary`` for adjacent pairs, dynamic NTK scaling or positions beyond its tables."""
    t = x.shape[1]
    if (self.cfg.rotary_adjacent_pairs or getattr(self.cfg, "use_dynamic_ntk_rope", False)
            or t > self.rotary_cos.shape[0] or x.device != self.rotary_cos.device):
        return self.apply_rotary(x, 0, None)
    dim = self.cfg.rotary_dim
    cos, sin = self.rotary_cos[None, :t, None, :], self.rotary_sin[None, :t, None, :]
    x_rot = x[..., :dim]
    half = dim // 2
    flipped = torch.cat([x_rot[..., half:].neg(), x_rot[..., :half]], dim=-1)
    out = torch.addcmul(x_rot * cos, flipped, sin)
    return out if dim == x.shape[-1] else torch.cat([out, x[..., dim:]], dim=-1)


def _gated_mlp_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """TransformerLens's gated MLP without the per-call transposed weight copies (same hooks)."""
    if self.cfg.is_layer_norm_activation() or self.W_gate.device != x.device:
        return type(self).forward(self, x)
    pre_act = self.hook_pre(torch.matmul(x, self.W_gate))
    pre_linear = self.hook_pre_linear(torch.matmul(x, self.W_in))
    post_act = self.hook_post(_plus_bias(self.act_fn(pre_act) * pre_linear, self.b_in))
    return _plus_bias(torch.matmul(post_act, self.W_out), self.b_out)


def _version(x: torch.Tensor) -> int:
    """In-place modification counter (inference tensors keep none: -1)."""
    try:
        return int(x._version)
    except RuntimeError:
        return -1


def _rms_norm_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """TransformerLens's RMSNorm in fewer passes, remembering the last input: the same tensor normalised
    again (a block's ``ln1`` for queries, keys and values) is not recomputed. Its own forward when a hook reads
    ``hook_scale``/``hook_normalized`` (which would fire once instead of once per call)."""
    if _hooked(self.hook_scale) or _hooked(self.hook_normalized) or x.device != self.w.device:
        return type(self).forward(self, x)
    last = self.__dict__.get("_mona_last")
    if last is not None and last[0] is x and last[1] == _version(x):
        return last[2]
    # one float32-accumulating reduction pass, then two multiplies in the model's dtype (no float32 copy)
    ms = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.float32).square_().div_(x.shape[-1])
    out = x * torch.rsqrt(ms.add_(self.eps)).to(x.dtype) * self.w
    self.__dict__["_mona_last"] = (x, _version(x), out)
    return out


def _patches(model: Any) -> list[tuple[Any, Any]]:
    from transformer_lens.components import AbstractAttention, RMSNorm
    from transformer_lens.components.mlps.gated_mlp import GatedMLP

    found: list[tuple[Any, Any]] = [(m, _rms_norm_forward) for m in model.modules() if type(m) is RMSNorm]
    for block in getattr(model, "blocks", []):
        attn, mlp = getattr(block, "attn", None), getattr(block, "mlp", None)
        if isinstance(attn, AbstractAttention):
            found.append((attn, _attention_forward))
        if type(mlp) is GatedMLP:
            found.append((mlp, _gated_mlp_forward))
    return found


def supported(model: Any) -> bool:
    """Whether :func:`fast_forward` changes anything for ``model`` (a ``HookedTransformer``; bridges: no)."""
    try:
        return bool(_patches(model))
    except ImportError:
        return False


@contextlib.contextmanager
def fast_forward(model: Any, enabled: bool = True) -> Iterator[None]:
    """Run ``model``'s attention through SDPA and its gated MLPs copy-free inside the ``with`` block.

    Only instances are patched, and only for the block's duration; a model this does not apply to (a
    ``TransformerBridge``, which already runs Hugging Face's modules) is left alone.
    """
    patched = _patches(model) if enabled and supported(model) else []
    for module, forward in patched:
        module.forward = types.MethodType(forward, module)
    try:
        yield
    finally:
        for module, _ in patched:
            module.__dict__.pop("forward", None)
            module.__dict__.pop("_mona_last", None)
