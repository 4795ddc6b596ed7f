"""``mona explain``: per-pick features, over-represented features and coverage of a selection."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mona.cli.args import add_command, add_config, add_config_file, config_from, load_config


@dataclass
class SelectionInputs:
    """A selection folder and the artifacts that explain it (``mona explain`` and ``mona report``)."""

    selection: Path = field(metadata={"positional": True})
    """Selection folder (from `mona select`)."""
    pool: Path | None = None
    """Pool store (default: the one recorded in selection.json)."""
    target: tuple[Path, ...] | None = field(default=None, metadata={"nargs": None})
    """Target store (repeat the flag for several; default: the ones recorded in selection.json)."""
    feature_store: Path | None = None
    """SAE store of the same pool, to explain non-SAE selections."""
    pool_samples: Path | None = None
    """The pool's sample file, for the domain/source mix."""
    labels: Path | None = None
    """Feature-label folder (from `mona labels`)."""


@dataclass
class ExplainArgs(SelectionInputs):
    """What ``mona explain`` reads, writes and prints."""

    out: Path | None = field(default=None, metadata={"flags": ("-o",)})
    """Output folder (default: the selection folder)."""
    show: int = 15
    """Print this many enriched features."""


def register(subparsers: Any) -> None:
    from mona.explain import ExplainConfig

    p = add_command(
        subparsers, "explain", run,
        help="explain a selection: per-pick features, over-represented features, coverage",
        description="Read a selection folder and the stores it names (never the model) and write explain.json, "
        "explain_samples.jsonl, enrichment.parquet and explain_pool.parquet beside it.",
    )
    add_config(p, ExplainArgs)
    add_config_file(p, "explain")
    add_config(p, ExplainConfig, dest="explain", title="explanation (ExplainConfig)")


def explain_selection(args: argparse.Namespace, inputs: SelectionInputs, *, labels: Any = None,
                      out_dir: Path | None = None, primary: bool = True) -> Any:
    """Run :func:`mona.explain.explain` on ``inputs`` with the ExplainConfig from flags and ``--config``."""
    from mona.explain import ExplainConfig, explain

    config = load_config(args, ExplainConfig, dest="explain", section="explain", primary=primary)
    return explain(
        inputs.selection,
        pool_store=inputs.pool,
        target_stores=[str(t) for t in inputs.target] if inputs.target else None,
        feature_store=inputs.feature_store,
        pool_samples=inputs.pool_samples,
        labels=labels if labels is not None else inputs.labels,
        config=config,
        out_dir=out_dir,
    )


def run(args: argparse.Namespace) -> int:
    a = config_from(args, ExplainArgs)
    ex = explain_selection(args, a, out_dir=a.out)
    s = ex.summary
    print(f"{s['method']}: {s['counts']['selected']} of {s['counts']['pool']} samples -> {ex.path}")
    cov = s.get("coverage")
    if cov:
        print(f"features covered: {cov['selected_features']} of {cov['pool_features']} in the pool "
              f"({cov['coverage']:.1%}; a random subset of the same size: {cov['random_expected_coverage']:.1%})")
    if s["enriched"]:
        print(f"{'feature':>8} {'sel':>6} {'pool':>7} {'log-odds':>9} {'q-value':>9}  label")
        for r in s["enriched"][: a.show]:
            print(f"{r['feature']:>8} {r['selected_rate']:>6.1%} {r['pool_rate']:>7.1%} {r['log_odds']:>9.2f} "
                  f"{r['q_value']:>9.2e}  {r.get('label', '')}")
    return 0
