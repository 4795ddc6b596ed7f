"""``tune()``: fine-tune on each selection, on random subsets of the pool and on an in-domain reference, and compare
their held-out loss. Every run's result is written as soon as it finishes; a rerun reuses the finished ones."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from mona.data import Sample, fingerprint
from mona.errors import MonaError
from mona.io import atomic_write_bytes, atomic_write_json, check_format, json_hash
from mona.tune.batches import Encoded, encode_all
from mona.tune.config import TuneConfig
from mona.tune.subsets import Subset, plan, pool_of, read_samples, read_selection
from mona.tune.summary import format_table, plot_png, summarize

log = logging.getLogger(__name__)

TUNE_JSON = "tune.json"
TUNE_PNG = "tune.png"
RUNS_DIR = "tune_runs"
FORMAT_VERSION = 1


@dataclass
class TuneResult:
    """What ``tune()`` measured: each run's losses and the per-subset summary rows."""

    config: TuneConfig
    runs: list[dict[str, Any]]
    """One record per run (``key``, ``group``, ``kind``, ``n_train``, ``train`` statistics, ``eval`` losses)."""
    eval_sets: dict[str, dict[str, Any]]
    """``eval`` (held-out target) and optionally ``cross`` (cross-source): file, samples, tokens."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    """Per subset group: loss, gain over the base model and share of the reference's gain per evaluation set."""
    path: Path | None = None

    def table(self) -> str:
        return format_table(self.rows, list(self.eval_sets))

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "config": self.config.to_dict(), "eval_sets": self.eval_sets,
                "summary": self.rows, "runs": self.runs}

    def save(self, out_dir: str | Path) -> Path:
        """Write ``tune.json`` and ``tune.png`` into ``out_dir``."""
        out = Path(out_dir)
        atomic_write_json(out / TUNE_JSON, self.to_dict())
        atomic_write_bytes(out / TUNE_PNG, plot_png(self.rows, list(self.eval_sets)))
        self.path = out / TUNE_JSON
        return self.path


def load_tune(path: str | Path) -> TuneResult:
    """Read a ``tune.json`` (or the folder holding one)."""
    path = Path(path)
    path = path / TUNE_JSON if path.is_dir() else path
    if not path.exists():
        raise MonaError(f"{path}: no such tune result (run `mona tune` first)")
    data = json.loads(path.read_text(encoding="utf-8"))
    check_format(data.get("format_version"), FORMAT_VERSION, "tune result", path)
    return TuneResult(TuneConfig.from_dict(data["config"]), data["runs"], data["eval_sets"], data["summary"], path)


def _with_overrides(config: TuneConfig | None, overrides: dict[str, Any]) -> TuneConfig:
    config = config or TuneConfig()
    names = {f.name for f in dataclasses.fields(TuneConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise MonaError(f"unknown tune option(s) {unknown}; valid ones: {', '.join(sorted(names))}")
    return dataclasses.replace(config, **overrides) if overrides else config


def tune(
    selections: Sequence[str | Path],
    eval: str | Path | Sequence[Sample],
    *,
    eval_cross: str | Path | Sequence[Sample] | None = None,
    tune_split: str | Path | Sequence[Sample] | None = None,
    pool_samples: str | Path | Sequence[Sample] | None = None,
    config: TuneConfig | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    **overrides: Any,
) -> TuneResult:
    """Tune on each selection folder's samples and report the held-out loss before and after.

    Args:
        selections: selection folders (``mona select`` output; their records are the training samples).
        eval: held-out samples of the target (file or list); the loss is measured on their responses.
        eval_cross: optional second evaluation set, same skill from another source.
        tune_split: optional other samples of the target, tuned on as the in-domain reference.
        pool_samples: the pool random subsets are drawn from (default: the file the selection recorded).
        config: a :class:`TuneConfig`; ``overrides`` replace single fields of it.
        out_dir: where ``tune.json``, ``tune.png`` and ``tune_runs/`` go (default: the first selection folder).
    """
    config = _with_overrides(config, overrides)
    if not selections:
        raise MonaError("give at least one selection folder to tune on")
    sels = [read_selection(f) for f in selections]
    sources = {"eval": eval, **({"cross": eval_cross} if eval_cross is not None else {})}
    eval_samples = {k: read_samples(v, f"{k} file", config.eval_samples, config.seed) for k, v in sources.items()}
    split = read_samples(tune_split, "tuning split") if tune_split is not None else None
    pool, pool_path = pool_of(sels, pool_samples, config.random_seeds > 0)
    subsets = plan(sels, config, pool=pool, tune_split=split, pool_path=pool_path)
    out = Path(out_dir) if out_dir is not None else sels[0].folder

    from mona.tune.model import torch_threads

    with torch_threads(config.threads):
        result = _tune(sources, eval_samples, subsets, config, out, progress)
    log.info("wrote %s", result.path)
    return result


def _tune(sources: dict[str, Any], eval_samples: dict[str, list[Sample]], subsets: list[Subset],
          config: TuneConfig, out: Path, progress: bool) -> TuneResult:
    from mona.tune.model import check_memory, load_causal_lm

    lm = load_causal_lm(config)
    check_memory(lm, config)
    tok, width = lm.tokenizer, config.max_tokens
    evals = {k: encode_all(v, tok, width, f"{k} set") for k, v in eval_samples.items()}
    train = {s.key: encode_all(s.samples, tok, width, s.key) if s.samples else [] for s in subsets}
    eval_sets = {k: {"source": str(sources[k]) if isinstance(sources[k], (str, Path)) else None,
                     "samples": len(evals[k]), "tokens": sum(e.n_response for e in evals[k]),
                     "fingerprint": fingerprint(eval_samples[k])} for k in evals}
    runs = []
    for subset in tqdm(subsets, desc="runs", unit="run", disable=not progress):
        runs.append(_run(lm, subset, train[subset.key], evals, eval_sets, config, out, progress))
    result = TuneResult(config, runs, eval_sets, summarize(runs, list(evals)))
    result.save(out)
    return result


def _run(lm: Any, subset: Subset, items: list[Encoded], evals: dict[str, list[Encoded]],
         eval_sets: dict[str, dict[str, Any]], config: TuneConfig, out: Path, progress: bool) -> dict[str, Any]:
    """One run, or its result from an earlier run with the same settings, samples and evaluation sets."""
    from mona.tune.train import evaluate, train_lora

    path = out / RUNS_DIR / f"{subset.key}.json"
    key = json_hash({"version": FORMAT_VERSION, "config": config.training_key(), "train": [e.id for e in items],
                     "samples": fingerprint(subset.samples) if subset.samples else None,
                     "eval": {k: v["fingerprint"] for k, v in eval_sets.items()}})
    if path.exists():
        try:
            done = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            done = {}
        if done.get("fingerprint") == key:
            log.info("%s: finished earlier, reusing %s", subset.key, path)
            return done
        log.warning("%s: the earlier result was made with other settings or data; running it again", subset.key)
    if subset.kind == "base":
        model, stats = lm.model, None
    else:
        model, stats = train_lora(lm, items, config, config.seed, progress=progress, desc=subset.key)
    losses = {k: evaluate(model, lm, v, config, progress=progress, desc=f"{subset.key} {k}") for k, v in evals.items()}
    del model
    record = {"key": subset.key, "group": subset.group, "kind": subset.kind, "seed": subset.seed,
              "n_train": len(items), "ids": [e.id for e in items], "info": subset.info, "train": stats,
              "eval": losses, "fingerprint": key}
    atomic_write_json(path, record)
    shown = ", ".join(f"{k} {v['loss']:.4f}" for k, v in losses.items())
    log.info("%s (%d samples): %s", subset.key, len(items), shown)
    return record

