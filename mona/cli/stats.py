"""``mona stats``: per-layer residual statistics of a sample file (to choose a layer, spot a dominant direction)."""

from __future__ import annotations

import argparse
import time
from importlib.resources import files
from pathlib import Path

DEMO_SAMPLES = Path(str(files("mona").joinpath("assets/demo/samples.jsonl")))


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("stats", help="per-layer residual-stream statistics of a sample file")
    p.add_argument("--model", default="gemma-3-270m", help="model name or local HF folder (default: %(default)s)")
    p.add_argument("--input", type=Path, default=DEMO_SAMPLES, help="instruction samples (jsonl/json/parquet)")
    p.add_argument("--layers", default="0,3,6,9,12,15,17", help="comma-separated layers for the statistics")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mona.activations import ActivationConfig, layer_statistics
    from mona.data import load_samples
    from mona.models import load_model

    start = time.time()
    samples = load_samples(args.input)  # bad input fails before the model is loaded
    loaded = load_model(args.model)
    layers = [int(x) for x in args.layers.split(",")]
    rows = layer_statistics(loaded, samples, layers, ActivationConfig(max_tokens=512))
    print(
        f"\nmodel {loaded.identity.name} ({loaded.identity.source}, {loaded.n_layers} layers, d_model "
        f"{loaded.d_model}); {len(samples)} samples from {args.input}"
    )
    print(f"{'layer':>5} {'tokens':>7} {'|resid| mean':>13} {'|resid| std':>12} {'mean-dir energy':>16}")
    for r in rows:
        print(
            f"{r['layer']:>5} {r['tokens']:>7} {r['norm_mean']:>13.2f} {r['norm_std']:>12.2f} "
            f"{r['mean_direction_energy']:>16.3f}"
        )
    print(f"done in {time.time() - start:.1f} s")
    return 0
