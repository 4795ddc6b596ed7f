"""The demo's record format and the helpers every source shares: ids, clipping, the SAE-corpus partition.

A record is a labelled chat sample::

    {"id": ..., "source": "mmlu", "domain": "science", "subset": "high school physics",
     "messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator

MAX_CONTENT_CHARS = 1200  # per message; keeps the average sample near 100-200 tokens
MAX_SAMPLE_CHARS = 4000  # samples longer than this before truncation are skipped
SAE_PARTITION = 5  # items whose stable hash % SAE_PARTITION == 0 belong to the SAE corpus, never to the pool


def stable_hash(*parts: object) -> int:
    """A seed-like integer from ``parts`` that is the same in every process (unlike :func:`hash`)."""
    return int(hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:15], 16)


def is_sae_partition(source: str, key: str) -> bool:
    """Whether an item belongs to the SAE corpus's fixed fifth of a source (the pool never draws from it)."""
    return stable_hash(source, key) % SAE_PARTITION == 0


def clip(text: str, limit: int = MAX_CONTENT_CHARS) -> str:
    """``text`` stripped and cut to about ``limit`` characters, at a line break where one is near."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip() + "\n..."


def record(source: str, domain: str, subset: str, key: str, prompt: str, response: str) -> dict:
    """A one-turn record; its id hashes ``subset`` and ``key``, so it does not depend on the build's parameters."""
    return {
        "id": f"{source}-{hashlib.sha256(f'{subset}|{key}'.encode()).hexdigest()[:12]}",
        "source": source,
        "domain": domain,
        "subset": subset,
        "messages": [{"role": "user", "content": clip(prompt)}, {"role": "assistant", "content": clip(response)}],
    }


def norm(text: str) -> str:
    """Whitespace-collapsed lower case: what duplicate and disjointness checks compare."""
    return " ".join(text.split()).lower()


def prompt_of(record: dict) -> str:
    """All non-final turns of a record joined: what disjointness checks compare."""
    return "\n".join(m["content"] for m in record["messages"][:-1])


def round_robin(subsets: dict[str, Iterator], rng: random.Random) -> Iterator[dict]:
    """Yield one record from each subset's ``(key, record)`` iterator in turn (shuffled order) until all run out."""
    live = list(subsets.values())
    rng.shuffle(live)
    while live:
        for it in list(live):
            item = next(it, None)
            if item is None:
                live.remove(it)
            else:
                yield item[1]
