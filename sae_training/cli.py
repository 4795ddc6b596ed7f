"""The ``mona-sae`` command line (also ``mona sae``): ``train`` and ``eval``.

    mona-sae train --config configs/sae/default.yaml [--resume] [--d-sae 4096 --hook blocks.3.hook_resid_post ...]
    mona-sae eval runs/sae/default [--corpus held_out.jsonl] [--tokens 16384] [--json metrics.json]

Every :class:`~sae_training.config.SAETrainConfig` field is a flag (``--training-tokens``; the field's own
spelling ``--training_tokens`` is accepted too) that overrides the ``--config`` YAML file, which overrides the
defaults. Problems a user can fix are printed as one line (exit status 2), never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mona.cli.args import Parser, add_command, add_config, add_config_file, config_from, load_config, run_main

QUIET_LOGGERS = ("sae_lens", "datasets", "transformers", "httpx")


@dataclass
class TrainArgs:
    """How ``train`` runs (the SAE and its training are configured by ``SAETrainConfig``)."""

    resume: bool = False
    """Continue from the newest checkpoint of this run."""
    eval: bool = True
    """Evaluate the SAE on the held-out split after training."""
    dry_run: bool = False
    """Print the resolved config as JSON and exit."""


@dataclass
class EvalArgs:
    """What ``eval`` reads and writes (how much it reads is ``EvalConfig``)."""

    sae_dir: str = field(metadata={"positional": True})
    """SAE folder (cfg.json + sae_weights.safetensors), or 'default' for the shipped SAE."""
    corpus: str | None = None
    """Held-out text (jsonl/json/parquet/txt/dataset folder); default: the run's own held-out split."""
    model: str | None = None
    """Model name (default: the one recorded in the SAE's cfg.json)."""
    json_out: str | None = field(default=None, metadata={"flags": ("--json",)})
    """Also write the metrics to this JSON file."""
    write: bool = True
    """Write eval_metrics.json into the SAE folder."""


def register(subparsers: Any) -> None:
    """Add ``train`` and ``eval`` to ``subparsers`` (of ``mona-sae``, or of ``mona sae``)."""
    from mona.runtime import Runtime
    from sae_training.config import SAETrainConfig
    from sae_training.evaluate import EvalConfig

    train = add_command(
        subparsers, "train", run_train,
        help="train an SAE (a YAML config and/or flags)",
        description="Train an SAE with sae-lens on one hook of a model. Flags override the --config file.",
    )
    add_config(train, TrainArgs)
    add_config_file(train, "train")
    add_config(train, SAETrainConfig, dest="train", title="SAE training (SAETrainConfig)")
    add_config(train, Runtime, dest="runtime", exclude=("device", "sae_dtype", "attention", "gpu_batch_tokens"),
               title="model precision (Runtime; --device is the SAE training device above)")

    ev = add_command(subparsers, "eval", run_eval, help="evaluate an SAE folder on held-out text",
                     description="Explained variance, L0, alive features and the next-token-loss cost on held-out "
                     "text.")
    add_config(ev, EvalArgs)
    add_config_file(ev, "eval")
    add_config(ev, EvalConfig, dest="eval", aliases={"batch_size_prompts": ["--batch-size"]},
               title="evaluation (EvalConfig)")
    add_config(ev, Runtime, dest="runtime", exclude=("sae_dtype", "attention", "gpu_batch_tokens"),
               title="model device and precision (Runtime)")


def train_config(args: argparse.Namespace) -> Any:
    """The resolved :class:`SAETrainConfig`: flags > ``--config`` file > defaults."""
    from sae_training.config import SAETrainConfig

    return load_config(args, SAETrainConfig, dest="train", section="train")


def run_train(args: argparse.Namespace) -> int:
    from mona.runtime import Runtime

    a = config_from(args, TrainArgs)
    config = train_config(args)
    model_dtype = config_from(args, Runtime, dest="runtime").model_dtype
    runtime = Runtime(device=config.device, model_dtype=model_dtype).resolved()
    if a.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    from mona.models import load_model
    from sae_training.evaluate import format_table
    from sae_training.train import train

    loaded = load_model(config.model, runtime=runtime)
    result = train(config, resume=a.resume, evaluate_after=a.eval, loaded=loaded)
    print(f"SAE saved to {result.sae_dir} ({result.tokens:,} tokens, {result.tokens_per_second:.0f} tok/s)")
    if result.eval_metrics:
        print(format_table(result.eval_metrics))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from mona.models import load_model
    from mona.runtime import Runtime
    from mona.saes import default_sae_dir, sae_metadata
    from sae_training.corpus import load_corpus
    from sae_training.evaluate import EvalConfig, evaluate, format_table

    a = config_from(args, EvalArgs)
    config = load_config(args, EvalConfig, dest="eval", section="eval")
    runtime = config_from(args, Runtime, dest="runtime").resolved()
    sae_dir = default_sae_dir() if a.sae_dir == "default" else Path(a.sae_dir)
    meta = sae_metadata(sae_dir)
    loaded = load_model(a.model or meta.get("model_name") or "gemma-3-270m", runtime=runtime)
    texts = load_corpus(a.corpus, loaded.tokenizer) if a.corpus else None
    metrics = evaluate(sae_dir, texts=texts, loaded=loaded, config=config, write=a.write)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(metrics, indent=2) + "\n")
    print(format_table(metrics))
    return 0


def build_parser(prog: str = "mona-sae") -> argparse.ArgumentParser:
    parser = Parser(prog=prog, description="Train and evaluate SAEs with sae-lens.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), argv, quiet_loggers=QUIET_LOGGERS)


if __name__ == "__main__":
    sys.exit(main())
