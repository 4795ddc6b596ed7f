"""``mona select``: choose a subset of a pool from its store (and/or its texts), toward targets or for diversity."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_FLAGS = (
    "method",
    "n",
    "ratio",
    "seed",
    "similarity",
    "aggregate",
    "binarize",
    "active_threshold",
    "feature_weights",
    "max_feature_share",
    "contrast",
    "targets",
    "top_features",
    "nait_candidate",
    "sim_threshold",
    "coverage_algorithm",
    "simscale_order",
    "mmr_lambda",
    "mmr_candidates",
)


def register(subparsers: Any) -> None:
    from mona.select.config import METHODS

    p = subparsers.add_parser(
        "select",
        help="select samples from a pool store toward target sets or for diversity",
        description="Score or pick pool samples with one method and write selection.jsonl/.parquet/.json. "
        "Each --target (store) or --target-samples (file) is one target set; repeat it for several.",
    )
    p.add_argument("--pool", type=Path, help="pool store folder (from `mona embed`)")
    p.add_argument("--pool-samples", type=Path, help="the pool's sample file (records are copied to the output)")
    p.add_argument("--target", type=Path, action="append", default=[], help="target store folder (repeatable)")
    p.add_argument(
        "--target-samples",
        type=Path,
        action="append",
        default=[],
        help="target sample file for tfidf/bm25/sbert (repeatable)",
    )
    p.add_argument("--out", "-o", required=True, type=Path, help="output folder")
    p.add_argument("--config", type=Path, help="YAML/JSON file with SelectConfig fields (flags override it)")
    p.add_argument("--method", "-m", choices=METHODS, help="selection method (default: mona)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--n", "-n", type=int, help="number of samples to select")
    budget.add_argument("--ratio", type=float, help="fraction of the pool to select (default: 0.05)")
    p.add_argument("--seed", type=int, help="random seed (default: 0)")
    p.add_argument("--similarity", choices=("jaccard", "cosine", "decoder"),
                   help="SAE-code similarity (default: jaccard); decoder compares codes through the SAE's decoder")
    p.add_argument("--sae", help="decoder similarity: the SAE that made the pool's codes (default: the one the "
                   "pool store's manifest names)")
    p.add_argument("--aggregate", choices=("prototype", "max"), help="target prototype or max over targets")
    p.add_argument("--binarize", action="store_true", default=None, help="codes above --active-threshold count as 1")
    p.add_argument("--active-threshold", type=float, help="feature is active above this pooled value (default: 0)")
    p.add_argument("--feature-weights", choices=("none", "idf"),
                   help="mona: weight SAE features by inverse pool frequency (default: none)")
    p.add_argument("--contrast", action="store_true", default=None,
                   help="mona, cosine: score against the target prototype minus the pool's mean code")
    p.add_argument("--max-feature-share", type=float,
                   help="mona: ignore features active in more than this share of the pool (default: 1 = keep all)")
    p.add_argument("--targets", choices=("merge", "quota"), help="several target sets: merge or per-set quotas")
    p.add_argument("--quotas", help="relative quotas per target set, comma separated (default: equal)")
    p.add_argument("--top-features", type=int, help="contributing features recorded per pick (default: 10)")
    p.add_argument("--nait-candidate", choices=("last", "drift"), help="NAIT candidate activation (default: last)")
    p.add_argument("--nait-layers", help="NAIT layers, comma separated (default: all)")
    p.add_argument("--coverage-algorithm", choices=("incremental", "lazy"), help="greedy-coverage implementation")
    p.add_argument("--sim-threshold", type=float, help="simscale: drop above this Jaccard (default: 0.5)")
    p.add_argument("--simscale-order", choices=("features", "random"), help="simscale visit order")
    p.add_argument("--mmr-lambda", type=float, help="mmr relevance weight λ (default: 0.7)")
    p.add_argument("--mmr-candidates", type=int, help="mmr candidate pool size (default: max(10n, 1000))")
    p.add_argument("--format", default="auto", help="sample file format: auto, alpaca, chat, prompt_response, text")
    p.add_argument("--show", type=int, default=10, help="print this many top picks (default: %(default)s)")
    p.set_defaults(func=run)


def _csv(text: str | None, cast: Any) -> tuple | None:
    from mona.errors import MonaError

    if text is None:
        return None
    try:
        return tuple(cast(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise MonaError(f"expected a comma-separated list, got {text!r}") from None


def build_config(args: argparse.Namespace) -> Any:
    from mona.select.config import SelectConfig

    data: dict[str, Any] = {}
    if args.config:
        from mona.cli import read_config_section

        data.update(read_config_section(args.config, "select"))
    for name in _FLAGS:
        value = getattr(args, name)
        if value is not None:
            data[name] = value
    if args.n is not None:
        data.pop("ratio", None)
    if args.ratio is not None:
        data.pop("n", None)
    if args.quotas is not None:
        data["quotas"] = _csv(args.quotas, float)
    if args.nait_layers is not None:
        data["nait_layers"] = _csv(args.nait_layers, int)
    return SelectConfig.from_dict(data)


def run(args: argparse.Namespace) -> int:
    from mona.data import load_samples
    from mona.select import select

    config = build_config(args)
    pool_samples = load_samples(args.pool_samples, args.format) if args.pool_samples else None
    target_samples = [load_samples(f, args.format) for f in args.target_samples]
    selection = select(
        str(args.pool) if args.pool else None,
        target=[str(t) for t in args.target] or None,
        config=config,
        pool_samples=pool_samples,
        target_samples=target_samples or None,
        sae=args.sae,
    )
    if args.pool_samples:  # lets explain/report show the pool's domain mix without being told the file again
        selection.info["pool_samples"] = str(Path(args.pool_samples).resolve())
    out = selection.save(args.out)
    counts, timing = selection.info["counts"], selection.info["timing"]
    print(
        f"{selection.method}: selected {counts['selected']} of {counts['pool']} in {timing['total_s']:.2f} s -> {out}"
    )
    for i in range(min(args.show, len(selection))):
        feats = selection.features[i] if selection.features else []
        top = " ".join(f"{f['feature']}:{f['share']:.2f}" for f in (feats or [])[:3])
        print(f"{i:>4}  {selection.scores[i]:>9.4f}  {selection.ids[i][:40]:<40}  {top}")
    return 0
