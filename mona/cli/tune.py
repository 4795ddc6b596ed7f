"""``mona tune``: does the subset help? LoRA-tune a small model on each selection and compare held-out target loss
with random subsets of the same size, the base model and an in-domain reference."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mona.cli.args import add_command, add_config, add_config_file, config_from, load_config


@dataclass
class TuneArgs:
    """What ``mona tune`` reads and writes (the fine-tune itself is configured by ``TuneConfig``)."""

    selections: list[Path] = field(metadata={"positional": True, "nargs": "+"})
    """Selection folders to tune on (from `mona select`)."""
    eval: Path
    """Held-out target samples: the loss is measured on their responses."""
    eval_cross: Path | None = None
    """A second evaluation file: the same skill from another source."""
    tune_split: Path | None = None
    """Other target samples, tuned on as the in-domain reference (its gain is the 100% mark)."""
    pool_samples: Path | None = None
    """Pool the random subsets are drawn from (default: the file recorded in selection.json)."""
    out: Path | None = field(default=None, metadata={"flags": ("-o",)})
    """Output folder for tune.json, tune.png and tune_runs/ (default: the first selection folder)."""
    quiet: bool = False
    """No progress bars."""


def register(subparsers: Any) -> None:
    from mona.tune import TuneConfig

    p = add_command(
        subparsers, "tune", run,
        help="does the subset help? LoRA-tune on each selection and compare held-out target loss",
        description="Fine-tune a small causal LM with LoRA on each selection's samples (loss on response tokens "
        "only) and report the mean per-token loss on held-out target samples before and after, next to random "
        "subsets of the same size from the pool, the base model and an in-domain reference (--tune-split). "
        "Each finished run is saved at once; rerunning the command reuses them.",
    )
    add_config(p, TuneArgs)
    add_config_file(p, "tune")
    add_config(p, TuneConfig, dest="tune", title="fine-tune (TuneConfig)")


def run(args: argparse.Namespace) -> int:
    from mona.tune import TuneConfig, tune

    a = config_from(args, TuneArgs)
    config = load_config(args, TuneConfig, dest="tune", section="tune")
    result = tune(a.selections, a.eval, eval_cross=a.eval_cross, tune_split=a.tune_split,
                  pool_samples=a.pool_samples, config=config, out_dir=a.out, progress=not a.quiet)
    print(result.table())
    print(f"-> {result.path} (plot: {result.path.with_name('tune.png')})")
    return 0
