"""The labelled mixed-domain demo pool: MMLU, codeio, evals and gsm_symbolic drawn to fixed domain shares.

The same drawing (:func:`draw` over :func:`pool_sources`) builds the SAE corpus's instruction half from the other
partition, so pool and corpus never share an item.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from mona.demo.cache import DATA_VERSION, cached, data_dir, write
from mona.demo.codeio import codeio_candidates
from mona.demo.domains import DOMAIN_SHARES, SOURCE_WEIGHTS
from mona.demo.evals import evals_candidates
from mona.demo.gsm_symbolic import gsm_subsets, gsm_template_split
from mona.demo.mmlu import mmlu_candidates
from mona.demo.records import is_sae_partition, norm, prompt_of, round_robin
from mona.errors import DataError

log = logging.getLogger(__name__)

Partition = Literal["pool", "sae"]
SourceTree = dict[str, dict[str, dict[str, Iterator]]]
"""domain -> source -> subset -> iterator of ``(key, record)``."""


def pool_sources(seed: int, partition: Partition) -> SourceTree:
    """Every source's items of one partition, grouped by domain/source/subset and shuffled with ``seed``."""
    rng = random.Random(seed)
    tree: dict[str, dict[str, dict[str, list]]] = {}
    keep_sae = partition == "sae"
    for source, candidates in (("mmlu", mmlu_candidates()), ("codeio", codeio_candidates()),
                               ("evals", evals_candidates())):
        for subset, key, rec in candidates:
            # identical prompts (an MMLU question filed under two subjects) always land in the same partition
            if is_sae_partition(source, key if source == "mmlu" else norm(prompt_of(rec))) == keep_sae:
                tree.setdefault(rec["domain"], {}).setdefault(source, {}).setdefault(subset, []).append((key, rec))
    out: SourceTree = {}
    for domain, sources in sorted(tree.items()):
        for source, subsets in sorted(sources.items()):
            for subset, items in sorted(subsets.items()):
                rng.shuffle(items)
                out.setdefault(domain, {}).setdefault(source, {})[subset] = iter(items)
    pool_templates, _ = gsm_template_split()
    out.setdefault("math", {})["gsm_symbolic"] = gsm_subsets(pool_templates, partition, seed)
    return out


def draw(tree: SourceTree, shares: dict[str, float], n: int, seed: int) -> list[dict]:
    """``n`` records with distinct prompts, ``shares`` of them per domain; sources take turns within a domain."""
    rng = random.Random(seed + 1)
    quotas = {d: round(n * s) for d, s in shares.items()}
    quotas[max(shares, key=shares.get)] += n - sum(quotas.values())
    seen: set[str] = set()
    records: list[dict] = []
    for domain, quota in quotas.items():
        streams = [stream for source, subs in sorted(tree.get(domain, {}).items())
                   for stream in [round_robin(subs, rng)] * SOURCE_WEIGHTS.get(source, 1)]
        got = 0
        while got < quota and streams:
            for stream in list(streams):
                rec = next(stream, None)
                if rec is None:
                    streams = [s for s in streams if s is not stream]
                    continue
                key = norm(prompt_of(rec))
                if key in seen or got >= quota:
                    continue
                seen.add(key)
                records.append(rec)
                got += 1
        if got < quota:
            log.warning("domain %s: only %d of %d samples available", domain, got, quota)
    rng.shuffle(records)
    return records


def build_demo_pool(n: int = 4000, seed: int = 0, *, force: bool = False) -> Path:
    """Build (or reuse) the labelled mixed-domain demo pool; returns its jsonl path under ``mona_home()/data``."""
    if n < len(DOMAIN_SHARES):
        raise DataError(f"demo pool size must be at least {len(DOMAIN_SHARES)}, got {n}")
    params = {"kind": "demo_pool", "n": n, "seed": seed, "version": DATA_VERSION, "shares": DOMAIN_SHARES}
    path = data_dir() / f"demo_pool-n{n}-seed{seed}-v{DATA_VERSION}.jsonl"
    if not force and cached(path, params):
        return path
    log.info("building demo pool (n=%d, seed=%d)", n, seed)
    records = draw(pool_sources(seed, "pool"), DOMAIN_SHARES, n, seed)
    write(path, records, params)
    return path
