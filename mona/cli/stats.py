"""``mona stats``: per-layer residual statistics of a sample file (to choose a layer, spot a dominant direction)."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from mona.cli.args import add_command, add_config, config_from

DEMO_SAMPLES = Path(str(files("mona").joinpath("assets/demo/samples.jsonl")))


@dataclass
class StatsArgs:
    """What ``mona stats`` reads."""

    model: str = "gemma-3-270m"
    """Model name or local HF folder."""
    input: Path = DEMO_SAMPLES
    """Instruction samples (jsonl/json/parquet); the default is the packaged demo samples."""
    layers: tuple[int, ...] = (0, 3, 6, 9, 12, 15, 17)
    """Layers for the statistics (comma- or space-separated)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from mona.activations import ActivationConfig
    from mona.runtime import Runtime

    p = add_command(subparsers, "stats", run, help="per-layer residual-stream statistics of a sample file")
    add_config(p, StatsArgs)
    add_config(p, ActivationConfig, dest="activations", exclude=("hooks", "window"),
               title="activations (ActivationConfig)")
    add_config(p, Runtime, dest="runtime", title="device and precision (Runtime)")


def run(args: argparse.Namespace) -> int:
    from mona.activations import ActivationConfig, layer_statistics
    from mona.data import load_samples
    from mona.models import load_model
    from mona.runtime import Runtime

    a = config_from(args, StatsArgs)
    config = config_from(args, ActivationConfig, dest="activations")
    runtime = config_from(args, Runtime, dest="runtime").resolved()
    start = time.time()
    samples = load_samples(a.input)  # bad input fails before the model is loaded
    loaded = load_model(a.model, runtime=runtime)
    rows = layer_statistics(loaded, samples, list(a.layers), config)
    print(
        f"\nmodel {loaded.identity.name} ({loaded.identity.source}, {loaded.n_layers} layers, d_model "
        f"{loaded.d_model}); {len(samples)} samples from {a.input}"
    )
    print(f"{'layer':>5} {'tokens':>7} {'|resid| mean':>13} {'|resid| std':>12} {'mean-dir energy':>16}")
    for r in rows:
        print(
            f"{r['layer']:>5} {r['tokens']:>7} {r['norm_mean']:>13.2f} {r['norm_std']:>12.2f} "
            f"{r['mean_direction_energy']:>16.3f}"
        )
    print(f"done in {time.time() - start:.1f} s")
    return 0
