"""Embedding-stage benchmark: throughput, bytes on disk and peak memory, printed as a BENCHMARKS.md snippet.

Run: ``python benchmarks/bench_embed.py [--samples 64] [--rss 1000,10000,50000] [--out results.md]``

1. Throughput on the default model (Gemma 3 270M, layer-6 residual) and the default SAE, measured side by side
   in one process, each method run ``--repeats`` times interleaved (best time kept, the machine may be shared):
   * ``limit``: bare TransformerLens forward to the hook layer over the same length-bucketed batches
     (``mona.activations.iter_activations``: tokenise + forward with ``stop_at_layer``), nothing else;
   * ``embed``: ``mona.embed.embed`` end to end (forward + SAE encode + pooling + writing the store);
   * ``naive``: Hugging Face forward with ``output_hidden_states=True`` through the whole model (unembedding
     included), batches of 8 in input order, then a dense SAE encode of every token and a masked mean.
   When the default SAE is not installed, a freshly initialised sae-lens TopK SAE of the same shape is used
   (throughput and bytes depend on its width and k, not on its training).
2. Bytes per sample of the store against dense float32 codes (n x d_sae x 4 bytes).
3. Peak RSS of ``embed`` at several pool sizes, each in a fresh subprocess, on short synthetic samples with a
   tiny random model and SAE (so that 50k samples take a minute on 2 cores): what is measured is the store
   machinery's memory, which must not grow with the pool (the model's own memory is constant anyway).

``--compare-dtypes`` (instead of 1-2): ``mona embed`` end to end on the default model and SAE through four
routes, interleaved in one process (best of ``--repeats``): float32 as before the runtime setting
(TransformerLens's own attention, and the attention mask its left-padding tokenizer made it build for every
batch), float32 and bfloat16 through the SDPA fast path, bfloat16 with TransformerLens's attention; the ratios
to the first route, and the per-sample Jaccard overlap of active features of each route with float32.

``--random-models`` (GPU; skipped cleanly without one unless ``--device cpu``): forward throughput of randomly
initialised models of the default's shape (Gemma 3 270M) and of a 1B shape (Gemma 3 1B), no weights download,
through ``mona.activations.forward_hooks`` to the last layer, float32 and bfloat16: tokens/s and the share of the
GPU's bfloat16 peak (``--peak-tflops``, H200 dense: 989) the matmuls reach.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TOPICS = [
    ("A baker makes {a} muffins and sells {b} boxes of 6. How many muffins are left?",
     "{b} boxes of 6 is {c} muffins. {a} - {c} = {d} muffins are left, because each box holds six muffins."),
    ("Write a Python function that returns the largest of {a} numbers in a list without using max().",
     "def largest(xs):\n    best = xs[0]\n    for x in xs[1:]:\n        if x > best:\n            best = x\n"
     "    return best\n# It scans the list once, so it runs in linear time for {a} numbers."),
    ("Explain why the sky looks blue at noon and red at sunset, for a class of {a} students.",
     "Sunlight scatters off air molecules, and short blue wavelengths scatter most (Rayleigh scattering). "
     "At sunset light crosses {b} times more air, so the blue is scattered away and red remains."),
    ("Summarise the causes of the First World War in {a} sentences.",
     "Alliances tied the great powers together; militarism and an arms race raised tension; imperial rivalry "
     "competed for colonies; nationalism stirred the Balkans; and the assassination in Sarajevo lit the fuse."),
]


def bench_samples(n: int) -> list:
    from mona.data import load_samples

    rows = []
    for i in range(n):
        q, r = TOPICS[i % len(TOPICS)]
        a, b = 20 + i, 2 + i % 5
        fill = {"a": a, "b": b, "c": 6 * b, "d": a - 6 * b}
        rows.append({"id": f"b{i}", "instruction": q.format(**fill), "output": (r.format(**fill) + " ") * (1 + i % 3)})
    return load_samples(rows)


def default_or_fresh_sae(d_model: int, hook: str):
    from mona.saes import DEFAULT_SAE_HOOK, default_sae_dir, load_sae

    if (default_sae_dir() / "sae_weights.safetensors").exists():
        loaded = load_sae("default")
        return loaded, f"default SAE `{loaded.identity.name}` ({loaded.identity.d_sae} wide)", loaded.identity.hook
    from sae_lens import TopKSAE, TopKSAEConfig

    torch.manual_seed(0)
    sae = TopKSAE(TopKSAEConfig(d_in=d_model, d_sae=8192, k=32)).eval()
    with torch.no_grad():
        sae.W_enc.normal_(0, d_model**-0.5)
        sae.W_dec.copy_(sae.W_enc.T)
    note = "freshly initialised sae-lens TopK SAE, 640 -> 8192, k=32 (default SAE not installed)"
    return sae, note, hook or DEFAULT_SAE_HOOK


def run_limit(loaded, samples, hook) -> tuple[float, int]:
    from mona.activations import ActivationConfig, iter_activations

    start, tokens = time.perf_counter(), 0
    for batch in iter_activations(loaded, samples, ActivationConfig(hooks=(hook,)), progress=False):
        tokens += int(batch.valid.sum())
    return time.perf_counter() - start, tokens


def run_embed(loaded, sae, samples, hook, out: Path) -> tuple[float, object]:
    from mona.embed import EmbedConfig, embed

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    store = embed(samples, model=loaded, sae=sae, config=EmbedConfig(hook=hook), out_dir=out, progress=False)
    return time.perf_counter() - start, store


@torch.inference_mode()
def run_naive(hf, tokenizer, sae_module, samples, layer: int, batch: int = 8) -> float:
    from mona.data import render

    start = time.perf_counter()
    for lo in range(0, len(samples), batch):
        texts = [render(s, tokenizer).text for s in samples[lo : lo + batch]]
        enc = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=512)
        hidden = hf(**enc, output_hidden_states=True).hidden_states[layer + 1]
        codes = sae_module.encode(hidden.reshape(-1, hidden.shape[-1])).reshape(*hidden.shape[:2], -1)
        mask = enc["attention_mask"].unsqueeze(-1).float()
        _ = (codes * mask).sum(1) / mask.sum(1)
    return time.perf_counter() - start


def throughput(n: int, repeats: int) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mona.models import converted_dir, hook_layer, load_model
    from mona.saes import resolve_sae

    loaded = load_model("gemma-3-270m")
    sae, sae_note, hook = default_or_fresh_sae(loaded.d_model, None)
    layer = hook_layer(hook)
    samples = bench_samples(n)
    folder = converted_dir("gemma-3-270m")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "right"
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    sae_module = resolve_sae(sae, model=loaded, hook=hook).sae
    tmp = Path(tempfile.mkdtemp(prefix="mona-bench-"))
    # warm-up (allocators, kernels)
    run_limit(loaded, samples[:4], hook)
    run_embed(loaded, sae, samples[:4], hook, tmp / "warm")
    run_naive(hf, tokenizer, sae_module, samples[:4], layer)
    best = {"limit": float("inf"), "embed": float("inf"), "naive": float("inf")}
    tokens, store = 0, None
    for _ in range(repeats):
        t, tokens = run_limit(loaded, samples, hook)
        best["limit"] = min(best["limit"], t)
        t, store = run_embed(loaded, sae, samples, hook, tmp / "store")
        best["embed"] = min(best["embed"], t)
        best["naive"] = min(best["naive"], run_naive(hf, tokenizer, sae_module, samples, layer))
    d_sae = store.n_features
    shard_bytes = sum(p.stat().st_size for p in (store.path / "shards").rglob("*.safetensors"))
    nnz = store.codes().nnz
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "samples": n, "tokens": tokens, "seconds": best, "sae": sae_note, "hook": hook, "d_sae": d_sae,
        "bytes_per_sample": shard_bytes / n, "dense_bytes_per_sample": d_sae * 4, "nnz_per_sample": nnz / n,
    }


# --------------------------------------------------------------------------------------------------------
# float32 vs bfloat16, and the routes in between
# --------------------------------------------------------------------------------------------------------


def _embed_route(loaded, sae, samples, hook, out: Path, legacy_padding: bool = False) -> tuple[float, object]:
    import contextlib

    import mona.activations as acts

    saved = acts._right_padded
    if legacy_padding:  # the forward as it ran before: the tokenizer's left padding side makes TL build a mask
        acts._right_padded = lambda model: contextlib.nullcontext()
    try:
        return run_embed(loaded, sae, samples, hook, out)
    finally:
        acts._right_padded = saved


def _active(store) -> list[set]:
    codes = store.codes().tocsr()
    return [set(codes.indices[codes.indptr[i]:codes.indptr[i + 1]].tolist()) for i in range(codes.shape[0])]


EARLIER_WORKER = r"""
import json, shutil, sys, time
from pathlib import Path
from mona.data import load_samples
from mona.embed import EmbedConfig, embed
from mona.models import load_model
from mona.saes import load_sae
rows, hook, out = json.loads(Path(sys.argv[1]).read_text()), sys.argv[2], Path(sys.argv[3])
samples, loaded, sae = load_samples(rows), load_model("gemma-3-270m"), load_sae("default")
def run(part):
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    embed(part, model=loaded, sae=sae, config=EmbedConfig(hook=hook), out_dir=out, progress=False)
    return time.perf_counter() - start
run(samples[:4])  # warm-up
print("ready", flush=True)
for line in sys.stdin:
    print(json.dumps({"seconds": run(samples)}), flush=True)
"""
"""The float32 `mona embed` of an earlier version (`--against REV`), waiting on stdin between runs."""


class EarlierEmbed:
    """A worker process running :data:`EARLIER_WORKER` from ``git archive REV`` (the default model and SAE)."""

    def __init__(self, rev: str, rows: list[dict], hook: str, tmp: Path) -> None:
        import subprocess

        src = tmp / f"mona-{rev}"
        src.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        (tmp / "rows.json").write_text(json.dumps(rows))
        env = {**os.environ, "PYTHONPATH": str(src)}
        self.proc = subprocess.Popen([sys.executable, "-c", EARLIER_WORKER, str(tmp / "rows.json"), hook,
                                      str(tmp / "earlier-store")], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        for line in self.proc.stdout:  # libraries may print before the worker is ready
            if line.strip() == "ready":
                break
        else:
            raise RuntimeError(f"the mona {rev} worker did not start")
        self.store = tmp / "earlier-store"

    def run(self) -> float:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("{"):
                return float(json.loads(line)["seconds"])
        raise RuntimeError("the earlier mona worker stopped")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def compare_dtypes(n: int, repeats: int, against: str | None = None) -> dict:
    from mona.models import load_model
    from mona.runtime import Runtime

    fp32 = load_model("gemma-3-270m", runtime=Runtime(device="cpu", model_dtype="float32"))
    bf16 = load_model("gemma-3-270m", runtime=Runtime(device="cpu", model_dtype="bfloat16"))
    sae, sae_note, hook = default_or_fresh_sae(fp32.d_model, None)
    samples = bench_samples(n)
    eager = dict(attention="eager")
    sae32 = dict(sae_dtype="float32")
    routes = {  # name: (model, runtime settings, legacy padding)
        "fp32_before": (fp32, eager, True),
        "fp32_sdpa": (fp32, {}, False),
        "bf16_eager_sae32": (bf16, {**eager, **sae32}, False),
        "bf16_sdpa_sae32": (bf16, sae32, False),
        "bf16_sdpa": (bf16, {}, False),
    }
    tmp = Path(tempfile.mkdtemp(prefix="mona-bench-dtypes-"))
    best = dict.fromkeys(routes, float("inf"))
    stores: dict = {}
    for loaded, attn, legacy in routes.values():  # warm-up
        loaded.runtime = Runtime(device="cpu", model_dtype=loaded.runtime.model_dtype, **attn)
        _embed_route(loaded, sae, samples[:4], hook, tmp / "warm", legacy)
    earlier = None
    if against:  # the float32 embed of an earlier version, in its own process, interleaved with the others
        earlier = EarlierEmbed(against, [_row(s) for s in samples], hook, tmp)
        best["earlier"] = float("inf")
    for _ in range(repeats):
        if earlier is not None:
            best["earlier"] = min(best["earlier"], earlier.run())
            print(f"earlier ({against}): {best['earlier']:.1f} s", file=sys.stderr)
        for name, (loaded, attn, legacy) in routes.items():
            loaded.runtime = Runtime(device="cpu", model_dtype=loaded.runtime.model_dtype, **attn)
            t, stores[name] = _embed_route(loaded, sae, samples, hook, tmp / name, legacy)
            best[name] = min(best[name], t)
            print(f"{name}: {t:.1f} s", file=sys.stderr)
    if earlier is not None:
        from mona.store import open_store

        earlier.close()
        stores["earlier"] = open_store(earlier.store)
    tokens = _pooled_tokens(stores["fp32_before"])
    ref = _active(stores["fp32_before"])
    overlap = {}
    for name, store in stores.items():
        jac = [len(a & b) / max(len(a | b), 1) for a, b in zip(ref, _active(store))]
        overlap[name] = float(np.mean(jac))
    shutil.rmtree(tmp, ignore_errors=True)
    return {"samples": n, "tokens": tokens, "seconds": best, "overlap": overlap, "sae": sae_note, "hook": hook,
            "against": against}


def _row(sample) -> dict:
    """A sample as the input row it was loaded from (for the earlier version's worker)."""
    return dict(sample.record)


def _pooled_tokens(store) -> int:
    return int(np.asarray(store.lengths).sum())


def dtype_markdown(res: dict, argv: list[str]) -> str:
    s, tok = res["seconds"], res["tokens"]
    base = s["earlier"] if res.get("against") else s["fp32_before"]
    labels = {
        **({"earlier": f"float32, `mona embed` at {res['against']} (before the precision and fast-path changes)"}
           if res.get("against") else {}),
        "fp32_before": "float32, before (TL attention + padding mask)",
        "fp32_sdpa": "float32, SDPA fast path (default)",
        "bf16_eager_sae32": "bfloat16, TL attention, SAE in float32",
        "bf16_sdpa_sae32": "bfloat16, SDPA fast path, SAE in float32",
        "bf16_sdpa": "`--model-dtype bfloat16` (SDPA fast path, SAE in bfloat16: `--sae-dtype auto`)",
    }
    lines = [
        "### float32 vs bfloat16 (`--compare-dtypes`)",
        "",
        f"Command: `nice -n 10 python benchmarks/bench_embed.py {' '.join(argv)}` — {time.strftime('%Y-%m-%d')}, "
        f"{platform.machine()} CPU ({_cpu_name()}), {torch.get_num_threads()} torch threads, torch "
        f"{torch.__version__}, load average {os.getloadavg()[0]:.1f} at the end. `mona embed` end to end (forward "
        f"to layer 6, SAE encode, mean pooling, store "
        f"written); SAE: {res['sae']}. {res['samples']} samples, {tok:,} pooled tokens; the routes interleaved in "
        "one process, best of the repeats"
        + (f" (mona {res['against']} in a worker process that waits while the others run)." if res.get("against")
           else "."),
        "",
        f"| route | seconds | tokens/s | vs {'the earlier float32 embed' if res.get('against') else 'float32 before'}"
        " | active-set overlap with float32 (Jaccard) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in labels.items():
        lines.append(f"| {label} | {s[name]:.1f} | {tok / s[name]:,.0f} | {base / s[name]:.2f}x | "
                     f"{res['overlap'][name]:.3f} |")
    lines.append("")
    return "\n".join(lines)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                bf16 = ", AVX-512 BF16" if "avx512_bf16" in flags else ""
                amx = ", AMX" if "amx_bf16" in flags else ""
                return line.split(":", 1)[1].strip() + bf16 + amx
    except OSError:
        pass
    return platform.processor() or "unknown"


# --------------------------------------------------------------------------------------------------------
# Randomly initialised models of real shapes (GPU)
# --------------------------------------------------------------------------------------------------------

RSS_CHILD = """
import json, resource, sys, tempfile, time, torch
sys.path.insert(0, {repo!r})
from mona.data import load_samples
from mona.embed import EmbedConfig, embed
from mona.testing import tiny_model
from sae_lens import TopKSAE, TopKSAEConfig
n = {n}
lm = tiny_model(n_layers=2, d_model=32)
torch.manual_seed(0)
sae = TopKSAE(TopKSAEConfig(d_in=32, d_sae=2048, k=16)).eval()
with torch.no_grad():
    sae.W_enc.normal_(0, 0.18)
samples = load_samples([{{"id": str(i), "prompt": f"What is {{i}} + {{i % 7}}?", "response": f"It is {{i + i % 7}}."}}
                        for i in range(n)])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
with tempfile.TemporaryDirectory() as out:
    store = embed(samples, model=lm, sae=sae, config=EmbedConfig(hook="blocks.1.hook_resid_post"), out_dir=out,
                  progress=False)
    nnz = store.manifest["shards"] and sum(r["nnz"] for r in store.manifest["shards"])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"n": n, "rss_before_mb": before / 1024, "peak_rss_mb": peak / 1024,
                  "seconds": time.perf_counter() - start, "nnz_per_sample": nnz / n}}))
"""


def peak_rss(sizes: list[int]) -> list[dict]:
    out = []
    for n in sizes:
        proc = subprocess.run([sys.executable, "-c", RSS_CHILD.format(repo=str(REPO), n=n)], capture_output=True,
                              text=True, check=True)
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"rss n={n}: {out[-1]}", file=sys.stderr)
    return out


def markdown(res: dict, rss: list[dict], argv: list[str]) -> str:
    s = res["seconds"]
    tok = res["tokens"]
    lines = [
        "### Embedding stage (`benchmarks/bench_embed.py`)",
        "",
        f"Command: `python benchmarks/bench_embed.py {' '.join(argv)}` — {time.strftime('%Y-%m-%d')}, "
        f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads, Python {platform.python_version()}, "
        f"torch {torch.__version__}. Model: gemma-3-270m, hook `{res['hook']}`; SAE: {res['sae']}. "
        f"{res['samples']} instruction samples, {tok} pooled tokens; best of the interleaved repeats.",
        "",
        "| route | seconds | samples/s | tokens/s | vs limit |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in (("limit", "TL forward to the hook layer (limit)"), ("embed", "`mona embed` (SAE, mean, store)"),
                        ("naive", "HF full forward + output_hidden_states + dense SAE")):
        lines.append(f"| {label} | {s[name]:.1f} | {res['samples'] / s[name]:.1f} | {tok / s[name]:.0f} | "
                     f"{s['limit'] / s[name]:.0%} |")
    lines += [
        "",
        f"embed reaches **{s['limit'] / s['embed']:.0%}** of the forward-only limit (target >= 80%) and is "
        f"**{s['naive'] / s['embed']:.1f}x** faster than the naive route (target >= 2x).",
        "",
        f"Disk: {res['bytes_per_sample']:.0f} B/sample ({res['nnz_per_sample']:.0f} active features of "
        f"{res['d_sae']}, float16 values) vs {res['dense_bytes_per_sample']} B/sample as dense float32 codes: "
        f"**{res['bytes_per_sample'] / res['dense_bytes_per_sample']:.1%}** (target <= 10%).",
        "",
    ]
    if rss:
        lines += [
            "Peak RSS of `embed` (fresh process per size; tiny random 2-layer d_model 32 model + "
            "2048-wide TopK SAE (k=16), "
            "short synthetic samples, shard_size 1024 — measures the store machinery, not the model):",
            "",
            "| samples | peak RSS (MB) | RSS before embed (MB) | seconds |",
            "|---:|---:|---:|---:|",
        ]
        for r in rss:
            lines.append(f"| {r['n']:,} | {r['peak_rss_mb']:.0f} | {r['rss_before_mb']:.0f} | {r['seconds']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    from bench_embed_gpu import SHAPES, random_markdown, random_models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rss", default="1000,10000,50000", help="pool sizes for the RSS part ('' to skip)")
    parser.add_argument("--skip-model", action="store_true", help="only the RSS part")
    parser.add_argument("--out", type=Path, help="also write the markdown snippet here")
    parser.add_argument("--json", type=Path, help="also write raw results as JSON here")
    parser.add_argument("--compare-dtypes", action="store_true",
                        help="only the float32 vs bfloat16 comparison of `mona embed` routes")
    parser.add_argument("--against", metavar="REV", default=None,
                        help="--compare-dtypes: also run the float32 embed of an earlier git revision, interleaved")
    parser.add_argument("--random-models", action="store_true",
                        help="only the randomly initialised 270M/1B-shaped models (needs a GPU unless --device cpu)")
    parser.add_argument("--device", default="auto", help="device for --random-models (auto: the GPU)")
    parser.add_argument("--batch", type=int, default=32, help="--random-models batch size")
    parser.add_argument("--seq", type=int, default=512, help="--random-models sequence length")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="bfloat16 dense peak of the GPU")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="--random-models shapes, comma-separated")
    args = parser.parse_args()
    if args.random_models:
        device = args.device
        if device == "auto":
            if not torch.cuda.is_available():
                print("random-model GPU benchmark skipped: no CUDA device (pass --device cpu to run it on the CPU)")
                return
            device = "cuda"
        rows = random_models(device, args.batch, args.seq, args.repeats, args.peak_tflops, args.shapes.split(","))
        text = random_markdown(rows, device, args.batch, args.seq, args.peak_tflops, sys.argv[1:])
        print(text)
        if args.out:
            args.out.write_text(text)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
        return
    if args.compare_dtypes:
        res = compare_dtypes(args.samples, args.repeats, args.against)
        text = dtype_markdown(res, sys.argv[1:])
        print(text)
        if args.out:
            args.out.write_text(text)
        if args.json:
            args.json.write_text(json.dumps(res, indent=2))
        return
    rss = peak_rss([int(x) for x in args.rss.split(",") if x])
    res = None if args.skip_model else throughput(args.samples, args.repeats)
    if args.json:
        args.json.write_text(json.dumps({"throughput": res, "rss": rss}, indent=2))
    if res is None:
        print(json.dumps(rss, indent=2))
        return
    text = markdown(res, rss, sys.argv[1:])
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
