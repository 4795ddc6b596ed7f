"""Chat samples from OpenAI ``evals``' ``registry/data`` (read from the package folder, never imported).

Only the English datasets labelled in :data:`~mona.demo.domains.EVALS_DOMAINS` are read, at most
:data:`MAX_EVALS_LINES` usable records each. Few-shot turns named ``example_user``/``example_assistant`` become
user/assistant turns; the dataset's ``ideal`` answer becomes the final assistant turn.
"""

from __future__ import annotations

import functools
import hashlib
import json

from mona.demo.domains import EVALS_DOMAINS
from mona.demo.packages import PACKAGES, package_dir
from mona.demo.records import MAX_SAMPLE_CHARS, clip
from mona.errors import DataError

MAX_EVALS_LINES = 2000  # read at most this many records of one evals dataset


def evals_messages(row: dict) -> list[dict] | None:
    """A row's chat messages ending in its ideal answer, or None if it has no usable answer or is too long."""
    inp, ideal = row.get("input"), row.get("ideal")
    if isinstance(ideal, list):
        ideal = ideal[0] if ideal and isinstance(ideal[0], str) else None
    if isinstance(inp, str):
        inp = [{"role": "user", "content": inp}]
    if not isinstance(inp, list) or not isinstance(ideal, str) or not ideal.strip():
        return None
    msgs = []
    for m in inp:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            return None
        role = m.get("role", "user")
        if m.get("name") == "example_user":
            role = "user"
        elif m.get("name") == "example_assistant":
            role = "assistant"
        msgs.append({"role": role if role in ("system", "user", "assistant") else "user", "content": m["content"]})
    if sum(len(m["content"]) for m in msgs) + len(ideal) > MAX_SAMPLE_CHARS or not msgs:
        return None
    return [{"role": m["role"], "content": clip(m["content"])} for m in msgs] + [
        {"role": "assistant", "content": clip(ideal)}]


@functools.lru_cache(maxsize=1)
def evals_candidates() -> tuple[tuple[str, str, dict], ...]:
    """``(dataset, "file:line", record)`` of every usable record, datasets and files in sorted order."""
    root = package_dir("evals") / "registry" / "data"
    if not root.is_dir():
        raise DataError(f"{root} not found: pip install --no-deps --force-reinstall {PACKAGES['evals']}")
    out = []
    for name, domain in sorted(EVALS_DOMAINS.items()):
        seen = 0
        for file in sorted((root / name).rglob("*.jsonl")):
            rel = file.relative_to(root).as_posix()
            for lineno, line in enumerate(file.open(encoding="utf-8", errors="replace")):
                if seen >= MAX_EVALS_LINES:
                    break
                try:
                    msgs = evals_messages(json.loads(line))
                except json.JSONDecodeError:
                    continue
                if msgs is None:
                    continue
                seen += 1
                key = f"{rel}:{lineno}"
                rec = {"id": f"evals-{hashlib.sha256(key.encode()).hexdigest()[:12]}", "source": "evals",
                       "domain": domain, "subset": name, "messages": msgs}
                out.append((name, key, rec))
    return tuple(out)
