"""The optional "Does the subset help?" section of a selection's HTML report, from a ``tune.json``."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

from mona.tune.summary import EVAL_LABELS, plot_png, table_rows

log = logging.getLogger(__name__)


def find_tune(selection_dir: str | Path, tune: str | Path | None = None) -> Path | None:
    """The ``tune.json`` to show: ``tune`` (a file or a folder holding one), else one in the selection folder."""
    if tune is not None:
        path = Path(tune)
        path = path / "tune.json" if path.is_dir() else path
        if not path.exists():
            from mona.errors import MonaError

            raise MonaError(f"{path}: no such tune result (run `mona tune` first)")
        return path
    found = Path(selection_dir) / "tune.json"
    return found if found.exists() else None


def tune_section(selection_dir: str | Path, tune: str | Path | None = None) -> dict[str, Any] | None:
    """Plain data for the report's tune section (table cells, plot as a data URI, settings), or ``None`` when
    there is no tune result."""
    path = find_tune(selection_dir, tune)
    if path is None:
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    names = list(data["eval_sets"])
    rows = data["summary"]
    header, body = table_rows(rows, names)
    cfg = data["config"]
    settings = [("model", cfg["model"]), ("LoRA", f"r={cfg['lora_r']} alpha={cfg['lora_alpha']}"),
                ("learning rate", cfg["learning_rate"]), ("epochs", cfg["epochs"]),
                ("max tokens", cfg["max_tokens"]), ("batch size", cfg["batch_size"]), ("seed", cfg["seed"])]
    evals = [(EVAL_LABELS.get(k, k), v.get("source") or "(samples)", v["samples"], v["tokens"])
             for k, v in data["eval_sets"].items()]
    figure = "data:image/png;base64," + base64.b64encode(plot_png(rows, names)).decode("ascii")
    return {"path": str(path), "header": header, "body": body, "figure": figure, "settings": settings,
            "evals": evals}
