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
"""

from __future__ import annotations

import argparse
import json
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rss", default="1000,10000,50000", help="pool sizes for the RSS part ('' to skip)")
    parser.add_argument("--skip-model", action="store_true", help="only the RSS part")
    parser.add_argument("--out", type=Path, help="also write the markdown snippet here")
    parser.add_argument("--json", type=Path, help="also write raw results as JSON here")
    args = parser.parse_args()
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
