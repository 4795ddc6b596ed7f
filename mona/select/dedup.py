"""Near-duplicate removal before any selection method (``SelectConfig.dedup``, ``mona select --dedup T``).

Rows are visited in pool order; a row is dropped when its cosine similarity to an earlier row that was kept is at
least ``T``, so the first (lowest row) of each group of near-duplicates stays. Similarity is measured on the
vectors diversity methods compare (:func:`mona.select.neighbours.pool_space`: the pooled SAE codes of an
``sae`` store, the dense vectors of a dense or sentence store, centred and standardised as the method's options
say). The ``exact`` path finds every pair above ``T`` (:func:`mona.select.neighbours.near_pairs`) and resolves
them in row order. The ``ivf`` path never lists pairs: rows go in blocks, and each row asks the store's index for
its nearest *kept* earlier row only (a bitmap of kept rows restricts the search; the candidates are re-ranked
exactly), then the block's own pairs are resolved in row order — the same rule, with one neighbour per row to
verify instead of every pair above ``T`` (near-duplicate clusters make those thousands per row). That search is
first tuned on sampled rows' exact near-duplicates; if it cannot find 95% of them (near-duplicates that barely
stand out from a row's other neighbours, where the compressed index cannot rank them), the ``ivf`` path lists
the pairs from range searches instead, every candidate verified exactly (slower, recall measured alike).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from mona.errors import MonaError
from mona.index import IndexConfig
from mona.select.inputs import store_mode
from mona.select.matrices import PoolMatrices
from mona.select.neighbours import Space, index_info, near_pairs, open_index, pool_space, resolve, tune_search
from mona.vectors import normalize_rows

log = logging.getLogger(__name__)


def keep_first(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """(n,) bool: rows kept when each row is dropped if a pair links it to an earlier kept row."""
    i, j = np.asarray(i, np.int64), np.asarray(j, np.int64)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    ok = lo != hi
    lo, hi = lo[ok], hi[ok]
    keep = np.ones(n, bool)
    if not len(hi):
        return keep
    order = np.lexsort((lo, hi))
    lo, hi = lo[order], hi[order]
    starts = np.flatnonzero(np.r_[True, hi[1:] != hi[:-1]])
    ends = np.r_[starts[1:], len(hi)]
    for a, b in zip(starts, ends, strict=True):  # ascending later row: earlier rows are already decided
        if keep[lo[a:b]].any():
            keep[hi[a]] = False
    return keep


BLOCK = 1024
"""``ivf`` dedup: rows per block (one index search for the block, one sparse product for its own pairs, whose
cost grows with the block's square)."""


def keep_first_indexed(space: Space, threshold: float, config: IndexConfig | None = None, block: int = BLOCK,
                       progress: bool = True, target: float = 0.95,
                       index: Any = None) -> tuple[np.ndarray | None, dict[str, Any]]:
    """(n,) bool, the rows :func:`keep_first` keeps, found without listing pairs: each block of rows asks the
    index for every row's nearest kept earlier row, then resolves the block's own pairs in row order. The
    search is first tuned to find the near-duplicates of sampled rows (:func:`calibrate_duplicates`); when it
    cannot find ``target`` of them (near-duplicates that barely stand out from their rows' other neighbours),
    returns (None, the calibration) and the caller lists the pairs instead."""
    config = config or IndexConfig()
    index = index or open_index(space, "ivf", config, progress)
    index.hold()  # every row is a query and a candidate: keep the vectors in memory when they fit
    n = space.n
    calib = calibrate_duplicates(index, space, threshold, 16 * config.recall_queries, target)
    if calib["recall"] is not None and calib["recall"] < target:
        return None, calib
    kept = np.zeros(n, bool)
    bar = tqdm(total=n, desc="dedup", unit="row", disable=not progress or n < 20_000)
    for a in range(0, n, block):
        r = np.arange(a, min(n, a + block))
        Q = normalize_rows(space.vectors.rows(r))
        drop = np.zeros(len(r), bool)
        if kept[:a].any():
            s, _ = index.search(Q, 1, among=kept)
            drop = s[:, 0] >= threshold - 1e-6
        S = Q @ Q.T  # the block's own pairs
        if sp.issparse(S):
            S = S.tocsr()
            i = np.repeat(np.arange(S.shape[0]), np.diff(S.indptr))
            j, sims = S.indices, S.data
        else:
            i, j = np.nonzero(np.asarray(S) >= threshold - 1e-6)
            sims = np.asarray(S)[i, j]
        near = (sims >= threshold - 1e-6) & (j > i)
        i, j = i[near], j[near]
        order = np.lexsort((j, i))
        i, j = i[order], j[order]
        starts = np.flatnonzero(np.r_[True, i[1:] != i[:-1]]) if len(i) else np.zeros(0, np.int64)
        for a0, b0 in zip(starts, np.r_[starts[1:], len(i)][: len(starts)].astype(np.int64), strict=True):
            if not drop[i[a0]]:  # ascending rows: row i's own fate is already final
                drop[j[a0:b0]] = True
        kept[r[~drop]] = True
        bar.update(len(r))
    bar.close()
    return kept, index_info(index, "ivf", method="nearest kept row", **{f"search_{k}": v for k, v in calib.items()})


START_NPROBE = 4
"""Lists probed per row where the nearest-kept-row search's tuning starts (doubled while recall is short)."""


def calibrate_duplicates(index: Any, space: Space, threshold: float, count: int, target: float = 0.95) -> dict:
    """Tune the ivf search (:func:`mona.select.neighbours.tune_search`) for what dedup asks of it: of ``count``
    sampled rows that have a near-duplicate (exact cosine >= ``threshold``, one pass over the vectors), the
    share whose search returns one. No sampled row with a near-duplicate: the configured search, recall None."""
    n = space.n
    pick = np.unique(np.linspace(0, n - 1, min(n, count)).astype(np.int64))
    Q = normalize_rows(space.vectors.rows(pick))
    Qt = Q.T.toarray() if sp.issparse(Q) else np.ascontiguousarray(Q.T)
    has = np.zeros(len(pick), bool)
    for a, block in space.vectors.blocks():
        S = np.asarray(normalize_rows(block) @ Qt)
        r, q = np.nonzero(S >= threshold - 1e-6)
        has[q[a + r != pick[q]]] = True
    info = {"sampled": len(pick), "with_duplicates": int(has.sum())}
    if not has.any():
        return {**info, "recall": None}
    rows, Qd = pick[has], Q[np.flatnonzero(has)]
    index.config = replace(index.config, nprobe=START_NPROBE)  # near-copies share a list: start narrow

    def recall_at(nprobe: int, rerank: int) -> float:
        index.config = replace(index.config, nprobe=nprobe, rerank=rerank)
        s, got = index.search(Qd, 2)  # the row itself and its nearest other row
        found = (got != rows[:, None]) & (got >= 0) & (s >= threshold - 1e-6)
        return float(found.any(axis=1).mean())

    return {**info, **tune_search(index, recall_at, target, f"the sampled rows' near-duplicates >= {threshold}")}


def near_duplicates(pool: Any, threshold: float, options: Any = None, index: str = "auto",
                    progress: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """Rows of ``pool`` kept by near-duplicate removal at cosine ``threshold`` (ascending), and what happened."""
    mode = store_mode(pool)
    if mode not in ("sae", "dense", "sentence"):
        raise MonaError(f"dedup compares embeddings: the pool store needs mode sae, dense or sentence, not {mode!r}")
    t0 = time.perf_counter()
    space = pool_space(PoolMatrices(pool, options), mode == "sae")
    path = resolve(index, space.n, space.width)
    if path == "none":
        path = "exact"
    keep, pairs, opened = None, None, None
    if path == "ivf":  # one index (and its held vectors) for the search and, if it falls short, the pairs
        opened = open_index(space, "ivf", None, progress)
        keep, info = keep_first_indexed(space, float(threshold), progress=progress, index=opened)
        if keep is None:
            log.warning("dedup: the index finds %.0f%% of sampled near-duplicates (>= %.2f) as nearest neighbours; "
                        "listing every pair above the threshold instead (slower)", 100 * info["recall"], threshold)
            fallback = {f"search_{k}": v for k, v in info.items()}
    if keep is None:
        i, j, info = near_pairs(space, float(threshold), path, progress=progress, index=opened)
        keep, pairs = keep_first(space.n, i, j), int(len(i))
        if path == "ivf":
            info = {**info, "method": "pairs", **fallback}
    rows = np.flatnonzero(keep)
    info = {"threshold": float(threshold), "kept": int(len(rows)), "dropped": int(space.n - len(rows)),
            "pairs": pairs, "seconds": round(time.perf_counter() - t0, 3), "index": info}
    log.info("dedup at cosine %.3f dropped %d of %d samples", threshold, info["dropped"], space.n)
    return rows, info


def apply_dedup(ctx: Any, keep: np.ndarray | None, pool: Any, pool_samples: Any) -> tuple[Any, np.ndarray | None,
                                                                                          dict[str, Any]]:
    """The context restricted to the rows near-duplicate removal keeps (intersected with ``keep``, the rows
    steering left), the new kept rows, and the ``dedup`` record for ``selection.json``."""
    from mona.select.steer import SubsetStore

    cfg = ctx.config
    if pool is None:
        raise MonaError("dedup compares embeddings and needs a pool store (--pool)")
    rows, info = near_duplicates(pool, cfg.dedup, cfg.options, cfg.index)
    if keep is not None:
        rows = np.intersect1d(rows, keep)
    if len(rows) == 0:
        raise MonaError("dedup leaves no pool sample")
    n = ctx.n
    if len(rows) < n:
        log.warning("dedup leaves %d pool samples, fewer than the budget %d: taking them all", len(rows), n)
        n = len(rows)
    samples = [pool_samples[int(r)] for r in rows] if pool_samples is not None else None
    new = type(ctx)(SubsetStore(pool, rows), samples, cfg, n, sae=ctx.sae, boost=ctx.boost)
    return new, rows, info
