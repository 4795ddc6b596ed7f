"""GPU mode of ``bench_embed.py`` (``--random-models``): randomly initialised TransformerLens models of the
default's shape and of Gemma 3 1B's (no weights download), tokens/s and the share of the device's bfloat16 peak."""

from __future__ import annotations

import sys
import time

import torch


def _cpu_name() -> str:
    from bench_embed import _cpu_name as name

    return name()


SHAPES = {"gemma-3-270m": "google/gemma-3-270m", "gemma-3-1b": "google/gemma-3-1b-pt"}


def random_model(tl_name: str, dtype: torch.dtype, device: str):
    """A HookedTransformer of ``tl_name``'s shape from TransformerLens's own table, randomly initialised."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.loading_from_pretrained import convert_hf_model_config

    from mona.models import LoadedModel, ModelIdentity
    from mona.runtime import Runtime

    cfg_dict = convert_hf_model_config(tl_name)
    fields = HookedTransformerConfig.__dataclass_fields__
    cfg = HookedTransformerConfig(**{k: v for k, v in cfg_dict.items() if k in fields and k != "tokenizer_name"},
                                  dtype=dtype, device=device, seed=0)
    model = HookedTransformer(cfg).eval()
    identity = ModelIdentity(tl_name, "random", "random", cfg.n_layers, cfg.d_model,
                             str(cfg_dict.get("original_architecture")))
    rt = Runtime(device=device, model_dtype=str(dtype).removeprefix("torch."))
    return LoadedModel(model, None, identity, runtime=rt)


def _flops_per_token(model, seq: int) -> float:
    blocks = sum(p.numel() for p in model.blocks.parameters())
    cfg = model.cfg
    attention = 2 * seq * cfg.n_heads * cfg.d_head * cfg.n_layers  # QK^T and PV, causal half of each
    return 2.0 * blocks + attention


def random_models(device: str, batch: int, seq: int, repeats: int, peak_tflops: float,
                  shapes: list[str]) -> list[dict]:
    from mona.activations import forward_hooks

    rows = []
    for short in shapes:
        tl_name = SHAPES[short]
        for dtype in (torch.float32, torch.bfloat16):
            loaded = random_model(tl_name, dtype, device)
            hook = f"blocks.{loaded.n_layers - 1}.hook_resid_post"
            tokens = torch.randint(1, 1000, (batch, seq))
            forward_hooks(loaded, tokens, [hook])  # warm-up
            best = float("inf")
            for _ in range(repeats):
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                start = time.perf_counter()
                forward_hooks(loaded, tokens, [hook])
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
            tps = batch * seq / best
            tflops = tps * _flops_per_token(loaded.model, seq) / 1e12
            rows.append({"model": short, "dtype": str(dtype).removeprefix("torch."), "tokens_per_s": tps,
                         "tflops": tflops, "share_of_peak": tflops / peak_tflops})
            print(f"{short} {dtype}: {tps:,.0f} tok/s, {tflops:.1f} TFLOP/s", file=sys.stderr)
            del loaded
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    return rows


def random_markdown(rows: list[dict], device: str, batch: int, seq: int, peak: float, argv: list[str]) -> str:
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else _cpu_name()
    lines = [
        "### Random models of real shapes (`--random-models`)",
        "",
        f"Command: `python benchmarks/bench_embed.py {' '.join(argv)}` — {time.strftime('%Y-%m-%d')}, {name}, "
        f"torch {torch.__version__}. Forward through every layer (`forward_hooks`, SDPA fast path), batch "
        f"{batch} x {seq} tokens; share of a {peak:g} TFLOP/s bfloat16 peak.",
        "",
        "| shape | dtype | tokens/s | TFLOP/s | share of bf16 peak |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['dtype']} | {r['tokens_per_s']:,.0f} | {r['tflops']:.1f} | "
                     f"{r['share_of_peak']:.1%} |")
    lines.append("")
    return "\n".join(lines)
