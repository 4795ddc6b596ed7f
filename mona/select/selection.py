"""The selection artifact: ranked picks with scores and explanations, saved as JSONL + Parquet + JSON.

A selection folder holds

* ``selection.jsonl`` — one row per pick, best first: the sample's original record fields, then ``id``,
  ``row`` (position in the pool store / sample list), ``rank`` (0 = first pick), ``score``, ``method``,
  ``features`` (list of ``{"feature": int, "share": float}``, empty for methods without SAE features),
  and, when they apply, ``target`` (which target set the pick was made for) and ``match`` (id of the most
  similar target sample, for ``aggregate="max"``). A record field with one of these names is kept as
  ``record_<name>``.
* ``selection.parquet`` — the same rows (record fields that Arrow cannot type consistently are JSON strings).
* ``selection.json`` — config, counts, timing, feature semantics and the pool/target stores' paths and manifests.

``selection.jsonl`` is the source of truth; :func:`load_selection` reads it back.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mona.errors import DataError
from mona.io import atomic_write, atomic_write_json, atomic_write_lines, json_default
from mona.select.config import SelectConfig

log = logging.getLogger(__name__)

MONA_FIELDS = ("id", "row", "rank", "score", "method", "features", "target", "match")
FORMAT_VERSION = 1


@dataclass
class Selection:
    """The picks of one selection run, best first."""

    rows: np.ndarray
    """Row of each pick in the pool (store row = position in the pool sample list)."""
    ids: list[str]
    scores: np.ndarray
    method: str
    config: SelectConfig
    features: list[list[dict[str, float]]] | None = None
    """Per pick, the top contributing SAE features; ``share`` semantics in ``info["features"]``."""
    targets: list[int] | None = None
    """Per pick, the target set it was chosen for (several target sets with ``targets="quota"``)."""
    matches: list[str | None] | None = None
    """Per pick, the id of the most similar target sample (``aggregate="max"``)."""
    records: list[dict[str, Any]] | None = None
    """Per pick, the sample's original record (when pool samples were given)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Counts, timing, store identities, method statistics (written to ``selection.json``)."""

    def __len__(self) -> int:
        return len(self.ids)

    def to_rows(self) -> list[dict[str, Any]]:
        out = []
        for i, sid in enumerate(self.ids):
            rec = dict(self.records[i]) if self.records is not None else {}
            for name in MONA_FIELDS:
                if name in rec and not (name == "id" and str(rec[name]) == sid):
                    rec[f"record_{name}"] = rec.pop(name)
                rec.pop(name, None)
            rec.update(
                id=sid,
                row=int(self.rows[i]),
                rank=i,
                score=float(self.scores[i]),
                method=self.method,
                features=list(self.features[i]) if self.features is not None else [],
            )
            if self.targets is not None:
                rec["target"] = int(self.targets[i])
            if self.matches is not None:
                rec["match"] = self.matches[i]
            out.append(rec)
        return out

    def save(self, out_dir: str | Path) -> Path:
        """Write ``selection.jsonl``, ``selection.parquet`` and ``selection.json`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        rows = self.to_rows()
        atomic_write_lines(out / "selection.jsonl", rows)
        _write_parquet(rows, out / "selection.parquet")
        meta = {
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "config": self.config.to_dict(),
            "count": len(self),
            **self.info,
        }
        atomic_write_json(out / "selection.json", meta)
        log.info("wrote %d selected samples to %s", len(self), out)
        return out


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowException, TypeError, ValueError):  # heterogeneous record fields: keep them as JSON text
        fixed = []
        for r in rows:
            r = dict(r)
            for k, v in r.items():
                if k not in MONA_FIELDS:
                    r[k] = json.dumps(v, ensure_ascii=False, default=json_default)
            fixed.append(r)
        table = pa.Table.from_pylist(fixed)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def load_selection(path: str | Path) -> Selection:
    """Read a selection folder written by :meth:`Selection.save`."""
    d = Path(path)
    meta_path, rows_path = d / "selection.json", d / "selection.jsonl"
    if not meta_path.exists() or not rows_path.exists():
        raise DataError(f"{d}: not a selection folder (needs selection.json and selection.jsonl)")
    meta = json.loads(meta_path.read_text())
    rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
    rows.sort(key=lambda r: r["rank"])
    records = []
    for r in rows:
        rec = {k: v for k, v in r.items() if k not in MONA_FIELDS}
        for name in MONA_FIELDS:
            if f"record_{name}" in rec:
                rec[name] = rec.pop(f"record_{name}")
        records.append(rec)
    has_targets = bool(rows) and "target" in rows[0]
    has_matches = bool(rows) and "match" in rows[0]
    info = {k: v for k, v in meta.items() if k not in ("format_version", "method", "config", "count")}
    return Selection(
        rows=np.array([r["row"] for r in rows], dtype=np.int64),
        ids=[str(r["id"]) for r in rows],
        scores=np.array([r["score"] for r in rows], dtype=np.float64),
        method=meta["method"],
        config=SelectConfig.from_dict(meta["config"], strict=False),
        features=[r.get("features", []) for r in rows],
        targets=[int(r["target"]) for r in rows] if has_targets else None,
        matches=[r["match"] for r in rows] if has_matches else None,
        records=records if any(records) else None,
        info=info,
    )
