"""``mona explain``, ``mona report`` and ``mona labels``: why a selection looks the way it does."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "explain",
        help="explain a selection: per-pick features, over-represented features, coverage",
        description="Read a selection folder and the stores it names (never the model) and write explain.json, "
        "explain_samples.jsonl, enrichment.parquet and explain_pool.parquet beside it.",
    )
    p.add_argument("selection", type=Path, help="selection folder (from `mona select`)")
    _common(p)
    p.add_argument("--out", "-o", type=Path, help="output folder (default: the selection folder)")
    p.add_argument("--top-features", type=int, default=10, help="features listed per pick (default: %(default)s)")
    p.add_argument("--top-enriched", type=int, default=50, help="enriched features listed (default: %(default)s)")
    p.add_argument("--active-threshold", type=float, help="active above this pooled value (default: the selection's)")
    p.add_argument("--alpha", type=float, default=0.05, help="false discovery rate (default: %(default)s)")
    p.add_argument("--prior", type=float, default=0.5, help="log-odds pseudo-count (default: %(default)s)")
    p.add_argument("--show", type=int, default=15, help="print this many enriched features (default: %(default)s)")
    p.set_defaults(func=run_explain)

    r = subparsers.add_parser(
        "report",
        help="write one self-contained HTML report of a selection",
        description="Summary, score and length distributions, domain mix, over-represented features with their "
        "top-activating contexts, and a card per pick, in one HTML file with inline CSS and embedded plots.",
    )
    r.add_argument("selection", type=Path, help="selection folder (from `mona select`)")
    _common(r)
    r.add_argument("--out", "-o", type=Path, help="HTML file (default: <selection>/report.html)")
    r.add_argument("--label-samples", type=Path, help="compute (or reuse cached) feature labels from these samples "
                   "(runs --model and --sae once)")
    r.add_argument("--model", default="gemma-3-270m", help="model for --label-samples (default: %(default)s)")
    r.add_argument("--sae", default="default", help="SAE for --label-samples (default: %(default)s)")
    r.add_argument("--cards", type=int, default=24, help="picks shown as cards (default: %(default)s)")
    r.add_argument("--features", type=int, default=20, help="enriched features listed (default: %(default)s)")
    r.add_argument("--screenshot", type=Path, help="also render the page to this PNG with headless Chromium")
    r.set_defaults(func=run_report)

    lab = subparsers.add_parser(
        "labels",
        help="compute feature labels: each SAE feature's top-activating tokens in a corpus",
        description="Runs the model and SAE over the samples once and caches, per feature, the top-activating "
        "tokens with their context (safetensors + JSON).",
    )
    lab.add_argument("samples", type=Path, help="corpus of samples (jsonl/json/parquet; e.g. the pool)")
    lab.add_argument("--model", default="gemma-3-270m", help="model name or folder (default: %(default)s)")
    lab.add_argument("--sae", default="default", help="SAE spec (default: %(default)s)")
    lab.add_argument("--out", "-o", type=Path, help="label folder (default: MONA_HOME/labels/<sae>-<key>)")
    lab.add_argument("--top-k", type=int, default=12, help="tokens kept per feature (default: %(default)s)")
    lab.add_argument("--context", type=int, default=10, help="context tokens each side (default: %(default)s)")
    lab.add_argument("--max-samples", type=int, help="use only the first N samples")
    lab.add_argument("--max-tokens", type=int, default=256, help="truncate samples (default: %(default)s)")
    lab.set_defaults(func=run_labels)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pool", type=Path, help="pool store (default: the one recorded in selection.json)")
    p.add_argument("--target", type=Path, action="append", default=None, help="target store (repeatable)")
    p.add_argument("--feature-store", type=Path, help="SAE store of the same pool, to explain non-SAE selections")
    p.add_argument("--pool-samples", type=Path, help="the pool's sample file, for the domain/source mix")
    p.add_argument("--labels", type=Path, help="feature-label folder (from `mona labels`)")


def _explain(args: argparse.Namespace, labels: Any = None, **config: Any) -> Any:
    from mona.explain import ExplainConfig, explain

    return explain(
        args.selection,
        pool_store=args.pool,
        target_stores=[str(t) for t in args.target] if args.target else None,
        feature_store=args.feature_store,
        pool_samples=args.pool_samples,
        labels=labels if labels is not None else args.labels,
        config=ExplainConfig(**config),
        out_dir=getattr(args, "out", None) if args.command == "explain" else None,
    )


def run_explain(args: argparse.Namespace) -> int:
    ex = _explain(args, top_features=args.top_features, top_enriched=args.top_enriched,
                  active_threshold=args.active_threshold, alpha=args.alpha, prior=args.prior)
    s = ex.summary
    print(f"{s['method']}: {s['counts']['selected']} of {s['counts']['pool']} samples -> {ex.path}")
    cov = s.get("coverage")
    if cov:
        print(f"features covered: {cov['selected_features']} of {cov['pool_features']} in the pool "
              f"({cov['coverage']:.1%}; a random subset of the same size: {cov['random_expected_coverage']:.1%})")
    if s["enriched"]:
        print(f"{'feature':>8} {'sel':>6} {'pool':>7} {'log-odds':>9} {'q-value':>9}  label")
        for r in s["enriched"][: args.show]:
            print(f"{r['feature']:>8} {r['selected_rate']:>6.1%} {r['pool_rate']:>7.1%} {r['log_odds']:>9.2f} "
                  f"{r['q_value']:>9.2e}  {r.get('label', '')}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from mona.report import render_report

    labels = args.labels
    if args.label_samples is not None:
        from mona.labels import compute_labels

        labels = compute_labels(args.label_samples, model=args.model, sae=args.sae)
    ex = _explain(args, labels=labels)
    path = render_report(args.selection, explanation=ex, labels=labels, out=args.out, cards=args.cards,
                         features=args.features)
    print(f"report: {path}")
    if args.screenshot is not None:
        from mona.report import screenshot

        screenshot(path, args.screenshot)
        print(f"screenshot: {args.screenshot}")
    return 0


def run_labels(args: argparse.Namespace) -> int:
    from mona.labels import LabelConfig, compute_labels

    config = LabelConfig(top_k=args.top_k, context=args.context, max_samples=args.max_samples,
                         max_tokens=args.max_tokens)
    labels = compute_labels(args.samples, model=args.model, sae=args.sae, config=config, out_dir=args.out)
    fired = int((labels.counts > 0).sum())
    print(f"labels of {labels.n_features} features ({fired} fired on {labels.manifest['tokens']} tokens) -> "
          f"{labels.path}")
    return 0
