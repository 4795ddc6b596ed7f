"""Python tasks from reasoning-gym's ``data/codeio.jsonl.gz`` (read from the package folder, never imported)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

from mona.demo.packages import package_file
from mona.demo.records import record


def codeio_candidates() -> Iterator[tuple[str, str, dict]]:
    """``(subset, key, record)`` per task; a subset per difficulty spreads the round-robin over easy and hard."""
    path = package_file("reasoning_gym", "data/codeio.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            row = json.loads(line)
            prompt = ("Write a Python function `main_solution` for the following task.\n\n"
                      f"{row['task_description'].strip()}\n\n{row['input_output_spec'].strip()}")
            response = f"```python\n{row['code_sample'].strip()}\n```"
            subset = f"difficulty_{row.get('difficulty', 0)}"
            yield subset, str(i), record("codeio", "code", subset, str(i), prompt, response)
