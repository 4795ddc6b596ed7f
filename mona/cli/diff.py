"""``mona diff``: which SAE features are over- or under-represented in one dataset relative to another."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mona.cli.args import add_command, add_config, add_config_file, config_from, load_config


@dataclass
class DiffArgs:
    """What ``mona diff`` reads and writes (the comparison itself is configured by ``DiffConfig``)."""

    a: Path = field(metadata={"positional": True})
    """Side A: an SAE store folder, or a selection folder (its selected rows of the pool store)."""
    b: Path = field(metadata={"positional": True})
    """Side B: the same kinds, embedded with the same model, hook and SAE."""
    samples_a: Path | None = None
    """A's samples (jsonl/json/parquet), for the text of example samples (a selection has its own)."""
    samples_b: Path | None = None
    """B's samples, likewise."""
    labels: Path | None = None
    """Feature label folder (`mona labels`); default: the cached labels of the stores' SAE, if any."""
    out: Path | None = field(default=None, metadata={"flags": ("-o",)})
    """Output folder for diff.json, diff.parquet and diff.html (default: print the summary only)."""


def register(subparsers: Any) -> None:
    from mona.diff import DiffConfig

    p = add_command(
        subparsers, "diff", run,
        help="compare two datasets (stores or selections) by their SAE features",
        description="Per SAE feature, the share of samples of A and of B where it is active, the log odds ratio "
        "and a two-sided Fisher exact test with Benjamini-Hochberg correction; lists the features most over- and "
        "under-represented in A with labels and example samples. Reads stores only, never the model.",
    )
    add_config(p, DiffArgs)
    add_config_file(p, "diff")
    add_config(p, DiffConfig, dest="diff", title="comparison (DiffConfig)")


def run(args: argparse.Namespace) -> int:
    from mona.diff import DiffConfig, diff

    a = config_from(args, DiffArgs)
    config = load_config(args, DiffConfig, dest="diff", section="diff")
    result = diff(a.a, a.b, samples_a=a.samples_a, samples_b=a.samples_b,
                  labels=a.labels if a.labels is not None else "auto", config=config, out_dir=a.out)
    s = result.summary
    c = s["counts"]
    print(f"A: {s['a']['samples']:,} samples ({s['a']['kind']} {s['a']['path'] or s['a']['store']})")
    print(f"B: {s['b']['samples']:,} samples ({s['b']['kind']} {s['b']['path'] or s['b']['store']})")
    print(f"{c['tested']:,} features tested: {c['over']:,} more common in A, {c['under']:,} more common in B "
          f"(q < {config.alpha:g})")
    for key, title in (("over", "more common in A"), ("under", "more common in B")):
        rows = s[key][:10]
        if rows:
            print(f"\n{title}:")
            print(f"  {'feature':>8} {'A':>7} {'B':>7} {'log-odds':>9} {'q':>9}  label")
        for r in rows:
            print(f"  {r['feature']:>8} {r['a_rate']:>7.1%} {r['b_rate']:>7.1%} {r['log_odds']:>9.2f} "
                  f"{r['q_value']:>9.2g}  {r['label'] or ''}")
    if a.out is not None:
        print(f"\nwrote {a.out / 'diff.json'}, diff.parquet and diff.html")
    return 0
