"""What gets tuned on: each selection's best-ranked samples, random subsets of the same size from the pool, and the
in-domain reference (other samples of the target), each one run with a stable key."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mona.data import Sample, load_samples, to_sample
from mona.errors import DataError, MonaError
from mona.tune.batches import check_responses, draw
from mona.tune.config import TuneConfig

log = logging.getLogger(__name__)

BASE = "base"
RANDOM = "random"
REFERENCE = "reference"


@dataclass
class Subset:
    """One training set, tuned on in one run (``samples`` empty for the base model, which is only evaluated)."""

    key: str
    """File name of the run's result (``selection-<name>``, ``random-n80-seed1``, ``reference``, ``base``)."""
    group: str
    """Row of the result table it belongs to (a selection's name, ``random``, ``reference`` or ``base``)."""
    kind: str
    """``selection``, ``random``, ``reference`` or ``base``."""
    seed: int
    """Seed the subset was drawn with (random subsets; the training seed is the config's)."""
    samples: list[Sample] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    """Where it came from: the selection folder and method, the pool or tuning-split file."""


@dataclass
class SelectionInput:
    name: str
    folder: Path
    method: str
    samples: list[Sample]
    pool_samples: str | None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "selection"


def read_selection(folder: str | Path) -> SelectionInput:
    """A selection folder's picks as samples, best first; one-line errors for records that cannot be tuned on."""
    from mona.select import load_selection

    folder = Path(folder)
    sel = load_selection(folder)
    if not sel.records:
        raise DataError(f"{folder}: the selection holds no sample records (select with --pool-samples to keep them)")
    samples = [to_sample(r, where=f"{folder}/selection.jsonl rank {i}") for i, r in enumerate(sel.records)]
    check_responses(samples, f"selection {folder}")
    return SelectionInput(_slug(folder.name), folder, sel.method, samples, sel.info.get("pool_samples"))


def read_samples(source: str | Path | Sequence[Sample], what: str, limit: int | None = None,
                 seed: int = 0) -> list[Sample]:
    """Samples of an evaluation or tuning-split file (or a list), all with responses; at most ``limit``, drawn
    with ``seed``."""
    samples = list(source) if isinstance(source, (list, tuple)) else load_samples(source)
    check_responses(samples, f"{what} {source if isinstance(source, (str, Path)) else '(samples)'}")
    return draw(samples, limit, seed) if limit is not None else samples


def plan(selections: Sequence[SelectionInput], config: TuneConfig, *, pool: Sequence[Sample] | None,
         tune_split: Sequence[Sample] | None, pool_path: str | None = None) -> list[Subset]:
    """Every run, in the order they are run: the base model, each selection, the random subsets of each distinct
    selection size, then the reference."""
    runs = [Subset(BASE, BASE, BASE, config.seed)]
    names: set[str] = set()
    sizes: list[int] = []
    for sel in selections:
        name = sel.name
        for i in range(2, len(selections) + 2):
            if name not in names and name not in (BASE, RANDOM, REFERENCE):
                break
            name = f"{sel.name}-{i}"
        names.add(name)
        picked = sel.samples[: config.max_samples]
        sizes.append(len(picked))
        runs.append(Subset(f"selection-{name}", name, "selection", config.seed, picked,
                           {"folder": str(sel.folder), "method": sel.method, "selected": len(sel.samples)}))
    if config.random_seeds:
        if not pool:
            raise MonaError("random subsets need the pool: give --pool-samples (or select with --pool-samples so "
                            "selection.json records it), or --random-seeds 0")
        for n in sorted(set(sizes)):
            if n > len(pool):
                raise MonaError(f"a random subset of {n} samples is larger than the pool ({len(pool)} samples)")
            for seed in range(config.seed, config.seed + config.random_seeds):
                name = RANDOM if len(set(sizes)) == 1 else f"{RANDOM}-n{n}"
                runs.append(Subset(f"random-n{n}-seed{seed}", name, RANDOM, seed, draw(pool, n, seed),
                                   {"pool": pool_path, "pool_size": len(pool)}))
    if tune_split:
        n = min(len(tune_split), max(sizes or [config.max_samples]))
        runs.append(Subset(REFERENCE, REFERENCE, REFERENCE, config.seed, draw(tune_split, n, config.seed),
                           {"size": len(tune_split)}))
    return runs


def pool_of(selections: Sequence[SelectionInput], pool_samples: str | Path | Sequence[Sample] | None,
            needed: bool) -> tuple[list[Sample] | None, str | None]:
    """The pool random subsets are drawn from: ``pool_samples``, else the file the first selection names."""
    if not needed:
        return None, None
    pool, path = None, None
    if pool_samples is not None:
        path = str(pool_samples) if isinstance(pool_samples, (str, Path)) else None
        pool = load_samples(pool_samples) if path else list(pool_samples)
    else:
        for sel in selections:
            if sel.pool_samples:
                if not Path(sel.pool_samples).exists():
                    raise DataError(f"{sel.folder}: its pool file {sel.pool_samples} is gone; give --pool-samples")
                log.info("random subsets from the pool recorded in %s: %s", sel.folder, sel.pool_samples)
                pool, path = load_samples(sel.pool_samples), sel.pool_samples
                break
    if pool is not None:  # random subsets are drawn among the samples that can be tuned on
        tunable = [s for s in pool if s.response.strip()]
        if len(tunable) < len(pool):
            log.warning("pool: %d of %d samples have no response and are never drawn", len(pool) - len(tunable),
                        len(pool))
        pool = tunable
    return pool, path
