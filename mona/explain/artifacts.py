"""The explanation artifact: its config, the files it is saved as, and reading them back.

Outputs, beside the selection unless told otherwise: ``explain.json`` (summary, coverage, top enriched
features), ``explain_samples.jsonl`` (one row per pick), ``enrichment.parquet`` (every tested feature) and
``explain_pool.parquet`` (one row per pool sample: selected, rank, active features, length, relevance).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mona.errors import MonaError
from mona.io import atomic_write, atomic_write_json, atomic_write_lines, check_format

log = logging.getLogger(__name__)

EXPLAIN_JSON = "explain.json"
SAMPLES_JSONL = "explain_samples.jsonl"
ENRICHMENT_PARQUET = "enrichment.parquet"
POOL_PARQUET = "explain_pool.parquet"
FORMAT_VERSION = 1


@dataclass
class ExplainConfig:
    """How a selection is explained. Saved as ``config`` inside ``explain.json``."""

    top_features: int = 10
    """Features listed per pick (at most what the selection recorded, unless the stores are available)."""
    top_enriched: int = 50
    """Over-represented features listed in ``explain.json`` (``enrichment.parquet`` has all tested ones)."""
    active_threshold: float | None = None
    """A feature is active in a sample when its pooled code is above this; ``None`` = the selection's own."""
    prior: float = 0.5
    """Pseudo-count added to each cell of the 2x2 table for the log odds ratio (0.5 = Haldane–Anscombe)."""
    alpha: float = 0.05
    """False discovery rate: features with BH q-value below this are flagged ``significant``."""
    min_pool_count: int = 1
    """Only features active in at least this many pool samples are tested (fewer tests, more power)."""

    def __post_init__(self) -> None:
        if self.top_features < 0 or self.top_enriched < 0:
            raise MonaError("top_features and top_enriched must be >= 0")
        if self.prior <= 0:
            raise MonaError(f"prior must be > 0, got {self.prior}")
        if not 0 < self.alpha < 1:
            raise MonaError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.min_pool_count < 1:
            raise MonaError(f"min_pool_count must be >= 1, got {self.min_pool_count}")


@dataclass
class Explanation:
    """What :func:`mona.explain.explain` computed; :meth:`save` writes it, :func:`load_explanation` reads it."""

    summary: dict[str, Any]
    samples: list[dict[str, Any]]
    enrichment: dict[str, np.ndarray] | None = None
    pool: dict[str, np.ndarray] | None = None
    path: Path | None = None

    def save(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_lines(out / SAMPLES_JSONL, self.samples)
        for name, table in ((ENRICHMENT_PARQUET, self.enrichment), (POOL_PARQUET, self.pool)):
            if table is not None:
                _write_table(table, out / name)
            else:
                (out / name).unlink(missing_ok=True)
        atomic_write_json(out / EXPLAIN_JSON, self.summary)
        self.path = out
        log.info("wrote the explanation of %d picks to %s", len(self.samples), out)
        return out


def _write_table(table: dict[str, np.ndarray], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    atomic_write(path, lambda tmp: pq.write_table(pa.table({k: pa.array(v) for k, v in table.items()}), tmp))


def _read_table(path: Path) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    return {name: t.column(name).to_numpy(zero_copy_only=False) for name in t.column_names}


def load_explanation(path: str | Path) -> Explanation:
    """Read the files :meth:`Explanation.save` wrote into ``path``."""
    d = Path(path)
    if not (d / EXPLAIN_JSON).exists():
        raise MonaError(f"{d}: no {EXPLAIN_JSON}; run `mona explain {d}` first")
    summary = json.loads((d / EXPLAIN_JSON).read_text())
    check_format(summary.get("format_version"), FORMAT_VERSION, "explanation", d / EXPLAIN_JSON)
    samples = [json.loads(x) for x in (d / SAMPLES_JSONL).read_text(encoding="utf-8").splitlines() if x.strip()]
    return Explanation(summary, samples, _read_table(d / ENRICHMENT_PARQUET), _read_table(d / POOL_PARQUET), d)
