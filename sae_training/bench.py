"""Training throughput of ``mona-sae train`` next to a bare sae-lens runner on the same config.

    python -m sae_training.bench --config configs/sae/default.yaml --tokens 20480 [--repeats 2]

Both runs use the same model object, corpus, hook and ``LanguageModelSAERunnerConfig``; the bare one is
``LanguageModelSAETrainingRunner(cfg, override_dataset=..., override_model=...).run()`` with nothing added,
the other is :func:`sae_training.train.train` (mean ``b_dec`` init, per-step progress and log). Activation
normalisation is off in both (sae-lens would otherwise first estimate it from 1000 batches). Runs alternate so
that load from other processes on the machine hits both alike. Prints tokens/s for each.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path


def _bare(config, loaded, texts) -> float:
    import datasets
    from sae_lens import LanguageModelSAETrainingRunner

    from sae_training.train import runner_config

    cfg = runner_config(config, loaded, dataset_label="bench")
    runner = LanguageModelSAETrainingRunner(cfg, override_dataset=datasets.Dataset.from_dict({"text": texts}),
                                            override_model=loaded.model)
    start = time.time()
    runner.run()
    return time.time() - start


def _mona(config, loaded, texts) -> float:
    from sae_training.train import train

    start = time.time()
    train(config, loaded=loaded, texts=texts, evaluate_after=False)
    return time.time() - start


def main(argv: list[str] | None = None) -> int:
    from mona.models import load_model
    from sae_training.config import SAETrainConfig
    from sae_training.corpus import load_corpus, split_corpus

    parser = argparse.ArgumentParser(prog="python -m sae_training.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/sae/default.yaml")
    parser.add_argument("--tokens", type=int, default=20480)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    base = SAETrainConfig.from_yaml(args.config)
    loaded = load_model(base.model)
    texts, _ = split_corpus(load_corpus(base.corpus, loaded.tokenizer, limit=base.corpus_size, seed=base.seed),
                            base.eval_fraction, base.seed)
    results: dict[str, list[float]] = {"sae-lens runner": [], "mona-sae train": []}
    with tempfile.TemporaryDirectory() as tmp:
        # no activation normalisation: sae-lens would estimate it from 1000 batches first, which dwarfs a short run
        config = dataclasses.replace(base, training_tokens=args.tokens, n_checkpoints=0, output_dir=str(Path(tmp)),
                                     progress=False, normalize_activations="none")
        for _ in range(args.repeats):
            results["sae-lens runner"].append(args.tokens / _bare(config, loaded, texts))
            results["mona-sae train"].append(args.tokens / _mona(config, loaded, texts))
    for name, rates in results.items():
        print(f"{name:16s} " + "  ".join(f"{r:7.0f} tok/s" for r in rates))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"tokens": args.tokens, "tokens_per_s": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
