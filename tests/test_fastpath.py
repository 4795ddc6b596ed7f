"""The SDPA / copy-free forward gives TransformerLens's residuals, fires the same hooks, and steps aside when a hook
reads the attention pattern or a mask is needed."""

from __future__ import annotations

import pytest
import torch

from mona.fastpath import fast_forward, supported

HOOKS = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.1.attn.hook_z", "blocks.1.mlp.hook_post"]


def gemma_like(window: int = 4, rotary_dim: int = 8) -> torch.nn.Module:
    """A random 2-layer model with Gemma 3's attention features: rotary, one key/value head for four query heads,
    QK norm, a sliding-window local layer and a global one, gated MLP, norms before and after."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=2, d_model=32, d_head=8, n_heads=4, n_key_value_heads=1, d_mlp=64, d_vocab=50, n_ctx=64,
        act_fn="gelu_pytorch_tanh", normalization_type="RMS", positional_embedding_type="rotary", rotary_dim=rotary_dim,
        gated_mlp=True, use_qk_norm=True, use_normalization_before_and_after=True, use_local_attn=True,
        attn_types=["local", "global"], window_size=window, rotary_base=10000, seed=0,
    )
    torch.manual_seed(0)
    return HookedTransformer(cfg).eval()


def tiny_gpt() -> torch.nn.Module:
    from mona.testing import tiny_model

    return tiny_model().model


def _run(model, tokens, fast: bool, extra=()) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}

    def keep(act, hook):
        out[hook.name] = act.detach().float().clone()

    with torch.inference_mode(), fast_forward(model, enabled=fast):
        model.run_with_hooks(tokens, fwd_hooks=[(h, keep) for h in [*HOOKS, *extra]], stop_at_layer=2)
    return out


def partial_rotary() -> torch.nn.Module:
    return gemma_like(rotary_dim=4)


@pytest.mark.parametrize("build", [gemma_like, partial_rotary, tiny_gpt], ids=["gemma-like", "rotary-4-of-8", "gpt"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fast_forward_matches_transformer_lens(build, dtype):
    model = build().to(dtype)
    assert supported(model)
    tokens = torch.randint(1, 50, (3, 11))  # longer than the local window of 4
    eager, fast = _run(model, tokens, False), _run(model, tokens, True)
    assert set(eager) == set(fast) == set(HOOKS)  # the same hooks fire
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    for name in HOOKS:
        rel = float((eager[name] - fast[name]).norm() / eager[name].norm())
        assert rel < tol, (name, rel)
    assert not any("forward" in vars(m) or "_mona_last" in vars(m) for m in model.modules())  # patches undone


def test_sliding_window_is_applied():
    narrow, wide = gemma_like(window=2), gemma_like(window=64)
    tokens = torch.randint(1, 50, (1, 9))
    a = _run(narrow, tokens, True)["blocks.0.hook_resid_post"]
    b = _run(wide, tokens, True)["blocks.0.hook_resid_post"]
    assert torch.allclose(a[:, :2], b[:, :2], atol=1e-5)  # within the window nothing changes
    assert not torch.allclose(a[:, 5:], b[:, 5:], atol=1e-3)  # beyond it the local layer sees less


def test_pattern_hook_falls_back_to_transformer_lens():
    model = gemma_like()
    tokens = torch.randint(1, 50, (2, 7))
    pattern = "blocks.0.attn.hook_pattern"
    out = _run(model, tokens, True, extra=[pattern])
    assert out[pattern].shape == (2, 4, 7, 7)  # TransformerLens's own attention ran and fired the hook
    eager = _run(model, tokens, False)
    assert torch.allclose(out["blocks.0.hook_resid_post"], eager["blocks.0.hook_resid_post"], atol=1e-5)


def test_attention_mask_falls_back():
    model = gemma_like()
    tokens = torch.randint(1, 50, (2, 7))
    mask = torch.ones_like(tokens)
    mask[0, :3] = 0  # left padding
    with torch.inference_mode():
        eager = model(tokens, attention_mask=mask, stop_at_layer=2)
        with fast_forward(model):
            fast = model(tokens, attention_mask=mask, stop_at_layer=2)
    assert torch.allclose(eager, fast, atol=1e-5)
