"""``mona labels``: each SAE feature's top-activating tokens in a corpus, with context (cached)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mona.cli.args import add_command, add_config, add_config_file, config_from, load_config


@dataclass
class LabelArgs:
    """What ``mona labels`` reads and writes (the labels themselves are configured by ``LabelConfig``)."""

    samples: Path = field(metadata={"positional": True})
    """Corpus of samples (jsonl/json/parquet; e.g. the pool)."""
    model: str = "gemma-3-270m"
    """Model name or local HF folder."""
    sae: str = "default"
    """SAE: 'default', a sae-lens folder, registry:<release>/<id>."""
    out: Path | None = field(default=None, metadata={"flags": ("-o",)})
    """Label folder (default: MONA_HOME/labels/<sae>-<key>)."""


def register(subparsers: Any) -> None:
    from mona.labels import LabelConfig
    from mona.runtime import Runtime

    p = add_command(
        subparsers, "labels", run,
        help="compute feature labels: each SAE feature's top-activating tokens in a corpus",
        description="Runs the model and SAE over the samples once and caches, per feature, the top-activating "
        "tokens with their context (safetensors + JSON).",
    )
    add_config(p, LabelArgs)
    add_config_file(p, "labels")
    add_config(p, LabelConfig, dest="labels", title="feature labels (LabelConfig)")
    add_config(p, Runtime, dest="runtime", title="device and precision (Runtime)")


def run(args: argparse.Namespace) -> int:
    from mona.labels import LabelConfig, compute_labels
    from mona.runtime import Runtime

    a = config_from(args, LabelArgs)
    runtime = config_from(args, Runtime, dest="runtime").resolved()
    config = load_config(args, LabelConfig, dest="labels", section="labels")
    labels = compute_labels(a.samples, model=a.model, sae=a.sae, config=config, out_dir=a.out, runtime=runtime)
    fired = int((labels.counts > 0).sum())
    print(f"labels of {labels.n_features} features ({fired} fired on {labels.manifest['tokens']} tokens) -> "
          f"{labels.path}")
    return 0
