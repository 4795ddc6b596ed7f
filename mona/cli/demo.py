"""``mona demo``: the whole pipeline on the embedded default model, offline.

1. builds the demo pool (mixed-domain, labelled) and the demo targets from registry packages,
2. embeds pool and target with the default model and the shipped default SAE (cached, resumable),
3. selects 5% of the pool toward the target with MONA's default setting (``mona select --method mona`` with no
   other flag), and a diversity subset with SAE feature coverage,
4. explains both selections (features behind each pick, enriched features, coverage),
5. writes a self-contained HTML report for each, and prints where everything is.

Every stage writes its artifacts under ``--out``; a second run reuses them.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mona.cli.args import add_command, add_config, config_from

log = logging.getLogger(__name__)


@dataclass
class DemoArgs:
    """Options of ``mona demo``."""

    out: Path = Path("runs/demo")
    """Output folder."""
    pool_size: int = 2000
    """Demo pool samples."""
    target: Literal["math", "code", "science", "reasoning"] = "math"
    """Demo target set."""
    target_size: int | None = None
    """Use only this many target samples (none: all)."""
    ratio: float = 0.05
    """Share of the pool to select."""
    max_tokens: int = 256
    """Truncate samples to this many tokens."""
    label_samples: int = 300
    """Pool samples used for feature labels."""
    model: str = "gemma-3-270m"
    """Model name or local HF folder."""
    sae: str = "default"
    """SAE: 'default', a sae-lens folder, registry:<release>/<id>."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "demo", run,
                    help="run the whole pipeline on the embedded default model and demo data")
    add_config(p, DemoArgs)


def _stage(name: str, start: float) -> None:
    print(f"[{time.time() - start:6.0f} s] {name}", flush=True)


def run(args: argparse.Namespace) -> int:
    from mona import demo
    from mona.data import load_samples
    from mona.embed import EmbedConfig, embed
    from mona.explain import explain
    from mona.labels import LabelConfig, compute_labels
    from mona.models import load_model
    from mona.report import render_report
    from mona.saes import load_sae
    from mona.select import SelectConfig, select

    args = config_from(args, DemoArgs)  # type: ignore[assignment]
    start = time.time()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    pool_path = demo.build_demo_pool(n=args.pool_size, seed=0)
    target_path = demo.build_demo_targets(seed=0, split="all")[args.target]
    pool, target = load_samples(pool_path), load_samples(target_path, limit=args.target_size)
    hits = demo.TARGET_DOMAINS[args.target]
    base_rate = sum(s.record["domain"] in hits for s in pool) / len(pool)
    _stage(f"demo data: pool {len(pool)} samples ({base_rate:.0%} {args.target}), target {len(target)}", start)

    model = load_model(args.model)
    sae = load_sae(args.sae, model=model)
    _stage(f"model {model.identity.name}, SAE {sae.identity.name} ({sae.identity.d_sae} features at {sae.hook})", start)
    config = EmbedConfig(max_tokens=args.max_tokens)
    pool_store = embed(pool, model=model, sae=sae, config=config, out_dir=out / "stores" / "pool")
    target_store = embed(target, model=model, sae=sae, config=config, out_dir=out / "stores" / f"target-{args.target}")
    _stage("embedded pool and target", start)

    labels = compute_labels(
        pool[: args.label_samples], model=model, sae=sae, config=LabelConfig(max_tokens=args.max_tokens)
    )
    _stage("feature labels", start)

    runs = {
        # mona's default (the robust preset, chosen across the demo and transfer benchmarks, BENCHMARKS.md)
        f"mona-{args.target}": (SelectConfig.build(method="mona", ratio=args.ratio), target_store),
        "diversity": (SelectConfig.build(method="greedy-coverage", ratio=args.ratio), None),
    }
    summary = []
    for name, (cfg, tstore) in runs.items():
        folder = out / "selections" / name
        selection = select(pool_store, target=tstore, config=cfg, pool_samples=pool, sae=sae)
        selection.info["pool_samples"] = str(Path(pool_path).resolve())
        selection.save(folder)
        ex = explain(folder, pool_store=pool_store, target_stores=tstore, pool_samples=pool, sae=sae)
        report = render_report(folder, explanation=ex, labels=labels, pool_samples=pool)
        domains = [r["domain"] for r in selection.records]
        precision = sum(d in hits for d in domains) / len(domains)
        summary.append((name, cfg.method, len(selection), precision, len(set(domains)), folder, report))
        _stage(f"selected, explained and reported: {name}", start)

    print(f"\npool: {pool_path}\ntarget: {target_path}\nstores: {out / 'stores'}")
    print(f"{'selection':<16} {'method':<16} {'picks':>5} {args.target + ' share':>12} {'domains':>8}  report")
    for name, method, n, precision, n_domains, _folder, report in summary:
        print(f"{name:<16} {method:<16} {n:>5} {precision:>12.0%} {n_domains:>8}  {report}")
    print(f"(pool base rate of {args.target}: {base_rate:.0%}; selections in {out / 'selections'})")
    print(f"done in {time.time() - start:.0f} s")
    return 0
