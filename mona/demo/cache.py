"""The jsonl cache of built demo data under ``mona_home()/data``: one ``.jsonl`` and a ``.json`` sidecar each.

The sidecar records the build parameters (a cached file is reused only while they match) and counts per domain and
source. File names carry :data:`DATA_VERSION`, so a change to the builders' output never reuses an old file.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from mona.io import atomic_write_lines, atomic_write_text, mona_home

log = logging.getLogger(__name__)

DATA_VERSION = 1
"""Bumped whenever the builders change their output; part of every cache key."""


def data_dir() -> Path:
    return mona_home() / "data"


def cached(path: Path, params: dict) -> bool:
    """Whether ``path`` and its sidecar exist and the sidecar's parameters equal ``params``."""
    meta = path.with_suffix(".json")
    if not (path.exists() and meta.exists()):
        return False
    try:
        return json.loads(meta.read_text()).get("params") == json.loads(json.dumps(params))
    except json.JSONDecodeError:
        return False


def write(path: Path, records: list[dict], params: dict) -> None:
    """Write ``records`` as jsonl, then the sidecar (each atomically; the sidecar last marks the file complete)."""
    atomic_write_lines(path, records)
    counts = {"n": len(records),
              "domain": dict(Counter(r.get("domain", "prose") for r in records).most_common()),
              "source": dict(Counter(r.get("source") for r in records).most_common())}
    atomic_write_text(path.with_suffix(".json"), json.dumps({"params": params, "counts": counts}, indent=2))
    log.info("wrote %d records to %s", len(records), path)


def load_jsonl(path: str | Path) -> list[dict]:
    """Read a jsonl file written by these builders."""
    return [json.loads(line) for line in Path(path).open(encoding="utf-8") if line.strip()]
