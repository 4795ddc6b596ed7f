"""The ``mona-sae`` command line: ``train`` and ``eval``.

    mona-sae train --config configs/sae/default.yaml [--resume] [--d_sae 4096 --hook blocks.3.hook_resid_post ...]
    mona-sae eval runs/sae/default [--corpus held_out.jsonl] [--tokens 16384] [--json metrics.json]

Overrides after the known options are config keys (``--key value`` or ``key=value``) applied on top of the
YAML file. Problems a user can fix are printed as one line (exit status 2), never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mona-sae", description="Train and evaluate SAEs with sae-lens.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train an SAE from a YAML config (extra --key value pairs override it)")
    train.add_argument("--config", required=True, help="YAML file, e.g. configs/sae/default.yaml")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint of this run")
    train.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation after training")
    train.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")

    ev = sub.add_parser("eval", help="evaluate an SAE folder on held-out text")
    ev.add_argument("sae_dir", help="SAE folder (cfg.json + sae_weights.safetensors), or 'default'")
    ev.add_argument("--corpus", help="held-out text (jsonl/json/parquet/txt/dataset folder); default: the run's split")
    ev.add_argument("--model", help="model name (default: the one recorded in the SAE's cfg.json)")
    ev.add_argument("--tokens", type=int, default=16384, help="held-out tokens to read (default 16384)")
    ev.add_argument("--ce-fraction", type=float, default=0.25, help="share of tokens for the CE-loss test")
    ev.add_argument("--context-size", type=int, default=128)
    ev.add_argument("--batch-size", type=int, default=8, help="contexts per forward pass")
    ev.add_argument("--json", dest="json_out", help="also write the metrics here")
    ev.add_argument("--no-write", action="store_true", help="do not write eval_metrics.json into the SAE folder")
    return parser


def _train(args: argparse.Namespace, extra: list[str]) -> int:
    from sae_training.config import SAETrainConfig, parse_overrides

    config = SAETrainConfig.from_yaml(args.config, parse_overrides(extra))
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    from sae_training.evaluate import format_table
    from sae_training.train import train

    result = train(config, resume=args.resume, evaluate_after=not args.no_eval)
    print(f"SAE saved to {result.sae_dir} ({result.tokens:,} tokens, {result.tokens_per_second:.0f} tok/s)")
    if result.eval_metrics:
        print(format_table(result.eval_metrics))
    return 0


def _eval(args: argparse.Namespace, extra: list[str]) -> int:
    from mona.errors import MonaError
    from mona.models import load_model
    from mona.saes import default_sae_dir, sae_metadata
    from sae_training.corpus import load_corpus
    from sae_training.evaluate import EvalConfig, evaluate, format_table

    if extra:
        raise MonaError(f"unexpected arguments: {' '.join(extra)}")
    sae_dir = default_sae_dir() if args.sae_dir == "default" else Path(args.sae_dir)
    config = EvalConfig(tokens=args.tokens, ce_fraction=args.ce_fraction, context_size=args.context_size,
                        batch_size_prompts=args.batch_size)
    meta = sae_metadata(sae_dir)
    loaded = load_model(args.model or meta.get("model_name") or "gemma-3-270m")
    texts = load_corpus(args.corpus, loaded.tokenizer) if args.corpus else None
    metrics = evaluate(sae_dir, texts=texts, loaded=loaded, config=config, write=not args.no_write)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(metrics, indent=2) + "\n")
    print(format_table(metrics))
    return 0


def main(argv: list[str] | None = None) -> int:
    from mona.errors import MonaError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("sae_lens", "datasets", "transformers", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING if not args.verbose else logging.DEBUG)
    try:
        return _train(args, extra) if args.command == "train" else _eval(args, extra)
    except MonaError as exc:
        print(f"mona-sae {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
