"""Near-duplicate removal before any selection method (``SelectConfig.dedup``, ``mona select --dedup T``).

Rows are visited in pool order; a row is dropped when its cosine similarity to an earlier row that was kept is at
least ``T``, so the first (lowest row) of each group of near-duplicates stays. Similarity is measured on the
vectors diversity methods compare (:func:`mona.select.neighbours.pool_space`: the pooled SAE codes of an
``sae`` store, the dense vectors of a dense or sentence store, centred and standardised as the method's options
say). The ``exact`` path finds every pair above ``T`` (:func:`mona.select.neighbours.near_pairs`) and resolves
them in row order. The ``ivf`` path never lists pairs: rows go in blocks, each compared in one matrix product
per inverted list with the *kept* earlier rows of the lists it probes (the index's sketches, held in bfloat16
in list order; dropped rows are zeroed), and only the few best candidates within a measured margin of ``T`` are
verified exactly — the same rule, with a handful of pairs per row to verify instead of every pair above ``T``
(near-duplicate clusters make those thousands per row). The probe count is first tuned on sampled rows' exact
near-duplicates; if the index cannot find 95% of them (near-duplicates that barely stand out from a row's other
neighbours, where the compressed index cannot rank them), the ``ivf`` path lists the pairs from range searches
instead, every candidate verified exactly (slower, recall measured alike). The sampled rows audit the result.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from mona.errors import MonaError
from mona.index import PAIRS_CHUNK, IndexConfig
from mona.select.inputs import store_mode
from mona.select.matrices import PoolMatrices
from mona.select.neighbours import Space, index_info, near_pairs, open_index, pool_space, resolve, shape_bucket
from mona.vectors import normalize_rows, row_dots

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


BLOCK = 65_536
"""``ivf`` dedup: at most this many rows per block (one coarse-centroid search for the block; each inverted list
is compared with the block's rows that probe it in one product); at least 1/16 of the pool go in 16 or more
blocks, so that few pairs fall within a block (those are verified uncapped)."""

CANDIDATES = 32
"""``ivf`` dedup verifies exactly at most this many of a row's candidates from earlier blocks, the best by
approximate cosine (rows dominated by a few frequent features have a hundred within the margin; 10 missed 2% of
the drops that 32 finds, 128 as many as 32)."""
PROBE_RECALL = 0.98
"""``ivf`` dedup probes enough lists to find this share of sampled near-duplicate pairs (:func:`tune_probes`)."""


def keep_first_indexed(space: Space, threshold: float, config: IndexConfig | None = None, block: int = BLOCK,
                       progress: bool = True, target: float = PROBE_RECALL,
                       index: Any = None) -> tuple[np.ndarray | None, dict[str, Any]]:
    """(n,) bool, the rows :func:`keep_first` keeps, found without listing pairs: each block of rows is compared
    with the kept earlier rows of the inverted lists it probes (:class:`ListScan`); the few candidates above
    ``threshold - margin`` are verified exactly, and the block's own pairs are resolved in row order. The lists
    probed are first tuned to find ``target`` of sampled near-duplicate pairs (:func:`tune_probes`); when a
    quarter of the lists cannot (no cluster structure for the lists to follow), returns (None, the tuning) and
    the caller lists the pairs instead. The sampled rows then audit the result: ``audit_missed`` counts those
    kept although an earlier kept row is at least ``threshold``."""
    config = config or IndexConfig()
    index = index or open_index(space, "ivf", config, progress)
    index.hold()  # candidates are verified exactly: keep the vectors in memory when they fit
    n = space.n
    sample = sampled_duplicates(space, threshold, 16 * config.recall_queries, threshold - config.margin)
    scan = ListScan(index, space, progress)
    calib = tune_probes(scan, sample, threshold, threshold - config.margin, target)
    if calib["recall"] is not None and calib["recall"] < target:
        return None, calib
    margin = scan_margin(index, space, sample, threshold, config.margin)
    floor, per_row, nprobe = threshold - margin, CANDIDATES, int(calib["nprobe"])
    kept = np.zeros(n, bool)
    bar = tqdm(total=n, desc="dedup", unit="row", disable=not progress or n < 20_000)
    block = min(block, max(4096, -(-n // 16)))
    for a in range(0, n, block):
        b = min(n, a + block)
        j, i, approx = scan.candidates(a, b, floor, nprobe, per_row)
        live = (i >= a) | kept[i]  # forgotten rows score 0: only a threshold within the margin of 0 needs this
        j, i = _best_candidates(j[live], i[live], approx[live], i[live] < a, per_row)
        near = _verified(index, i, j, threshold)
        drop = np.zeros(b - a, bool)
        drop[j[near & (i < a)] - a] = True  # near an earlier kept row
        inside = near & (i >= a)
        kept[a:b] = ~_settle(drop, i[inside] - a, j[inside] - a)
        scan.forget(np.flatnonzero(drop) + a)
        bar.update(b - a)
    bar.close()
    pick, earlier_pairs = sample.rows, sample.earlier
    expect = np.zeros(len(pick), bool)
    expect[earlier_pairs[0][kept[earlier_pairs[1]]]] = True  # sampled rows the rule drops, given what was kept
    audit = {"audited": int(np.unique(earlier_pairs[0]).size), "missed": int((expect & kept[pick]).sum())}
    if audit["missed"]:
        log.warning("dedup: %d of %d audited rows were kept although an earlier kept row is a near-duplicate",
                    audit["missed"], audit["audited"])
    return kept, index_info(index, "ivf", method="nearest kept row", scan_margin=round(margin, 4),
                            **{f"search_{k}": v for k, v in calib.items()},
                            **{f"audit_{k}": v for k, v in audit.items()})


def _verified(index: Any, i: np.ndarray, j: np.ndarray, threshold: float) -> np.ndarray:
    """Whether each pair's exact cosine is at least ``threshold``; rows read once per chunk of pairs."""
    near = np.zeros(len(i), bool)
    if index.held is not None:  # gathered straight from the held rows
        for c in range(0, len(i), PAIRS_CHUNK):
            near[c : c + PAIRS_CHUNK] = row_dots(index.held[i[c : c + PAIRS_CHUNK]],
                                                 index.held[j[c : c + PAIRS_CHUNK]]) >= threshold - 1e-6
        return near
    for c in range(0, len(i), PAIRS_CHUNK):  # memory bounded however many candidates a block has
        rows, inverse = np.unique(np.r_[i[c : c + PAIRS_CHUNK], j[c : c + PAIRS_CHUNK]], return_inverse=True)
        X, half = index._exact(rows), len(i[c : c + PAIRS_CHUNK])
        near[c : c + half] = row_dots(X[inverse[:half]], X[inverse[half:]]) >= threshold - 1e-6
    return near


def _settle(drop: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """``drop`` after the pairs (i < j) within a block: in ascending i, a row not dropped drops its partners."""
    order = np.lexsort((j, i))
    i, j = i[order], j[order]
    starts = np.flatnonzero(np.r_[True, i[1:] != i[:-1]]) if len(i) else np.zeros(0, np.int64)
    for s0, e0 in zip(starts, np.r_[starts[1:], len(i)][: len(starts)].astype(np.int64), strict=True):
        if not drop[i[s0]]:  # ascending rows: row i's own fate is already final
            drop[j[s0:e0]] = True
    return drop


def _best_candidates(j: np.ndarray, i: np.ndarray, approx: np.ndarray, earlier: np.ndarray,
                     per_row: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs to verify: each row's ``per_row`` best by approximate cosine among earlier blocks (rows
    already dropped are forgotten, so these are kept rows), and every candidate within the block (whose fates
    are settled in row order: capping them would let dropped members of a cluster crowd out its kept one)."""
    order = np.lexsort((-approx, j, ~earlier))
    j, i, earlier = j[order], i[order], earlier[order]
    first = np.r_[True, (j[1:] != j[:-1]) | (earlier[1:] != earlier[:-1])] if len(j) else np.zeros(0, bool)
    rank = np.arange(len(j)) - np.maximum.accumulate(np.where(first, np.arange(len(j)), 0))
    return j[~earlier | (rank < per_row)], i[~earlier | (rank < per_row)]


class ListScan:
    """Every row's vector as the index's inverted lists see it (:func:`reduced`; bfloat16, 512 bytes a row at 256
    dimensions), held in list order with rows ascending within each list, so that a list's rows before any row
    form one slice: a block of rows is compared with each list it probes in one matrix product. Rows found to be
    near-duplicates are zeroed (:meth:`forget`): later rows never match them."""

    def __init__(self, index: Any, space: Space, progress: bool = True) -> None:
        import torch

        self.index, n = index, space.n
        self.owner = index.lists()
        self.nlist = int(index._ivf().nlist)
        self.order = np.argsort(self.owner, kind="stable")  # list by list, rows ascending within each
        self.where = np.empty(n, np.int64)
        self.where[self.order] = np.arange(n)
        self.bounds = np.searchsorted(self.owner[self.order], np.arange(self.nlist + 1))
        self.seen = self.bounds[:-1].copy()  # per list: the end of the slice of rows before the current block
        longest = int(np.diff(self.bounds).max()) if n else 0
        self.held = torch.zeros((n + shape_bucket(longest), index._ivf().d), dtype=torch.bfloat16)  # zero tail: padding
        bar = tqdm(total=n, desc="dedup: sketches", unit="row", disable=not progress or n < 20_000, leave=False)
        for a, blk in space.vectors.blocks():
            at = torch.from_numpy(self.where[a : a + blk.shape[0]])
            self.held[at] = torch.from_numpy(reduced(index, blk)).to(torch.bfloat16)
            bar.update(blk.shape[0])
        bar.close()

    def probe(self, rows: np.ndarray, nprobe: int) -> np.ndarray:
        """(len(rows), nprobe) the lists nearest each row, from the held vectors."""
        import torch

        held = self.held[torch.from_numpy(self.where[rows])].float().numpy()
        return self.index._ivf().quantizer.search(held, nprobe)[1]

    def candidates(self, a: int, b: int, floor: float, nprobe: int,
                   per_list: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pairs (later row j in a..b, earlier row i, approximate cosine >= ``floor``) among the rows of the
        ``nprobe`` lists nearest each row j: i before the block (not forgotten; the ``per_list`` nearest of each
        list) or within it (all). Rows must be asked for in consecutive blocks."""
        import torch

        Q = self.held[torch.from_numpy(self.where[a:b])]
        probes = self.probe(np.arange(a, b), nprobe).ravel()
        q = np.repeat(np.arange(b - a), nprobe)[probes >= 0]
        probes = probes[probes >= 0]
        by = np.argsort(probes, kind="stable")
        q, probes = q[by], probes[by]
        cuts = np.searchsorted(probes, np.arange(self.nlist + 1))
        ends = self.seen + np.bincount(self.owner[a:b], minlength=self.nlist)
        out_j, out_i, out_s = [], [], []
        for lst in np.flatnonzero(np.diff(cuts)):
            lo, mid, hi = self.bounds[lst], self.seen[lst], ends[lst]
            qs = q[cuts[lst] : cuts[lst + 1]]
            Qs = Q[torch.from_numpy(np.pad(qs, (0, shape_bucket(len(qs)) - len(qs)), mode="edge"))]
            qs = torch.from_numpy(qs)
            if mid > lo:  # the list's rows from earlier blocks: few of the block's rows have one this close
                S = (Qs @ self.held[lo : lo + shape_bucket(mid - lo)].T)[: len(qs), : mid - lo]
                hit = torch.nonzero(S.amax(1) >= floor).ravel()
                if len(hit):
                    s, at = torch.topk(S[hit].float(), min(mid - lo, per_list))
                    r, c = torch.nonzero(s >= floor, as_tuple=True)
                    out_j.append(a + qs[hit[r]].numpy()), out_i.append(self.order[lo + at[r, c].numpy()])
                    out_s.append(s[r, c].numpy())
            if hi > mid:  # the list's rows in this block
                S = (Qs @ self.held[mid : mid + shape_bucket(hi - mid)].T)[: len(qs), : hi - mid].float()
                r, c = torch.nonzero(S >= floor, as_tuple=True)
                j, i = a + qs[r].numpy(), self.order[mid + c.numpy()]
                out_j.append(j[i < j]), out_i.append(i[i < j]), out_s.append(S[r, c].numpy()[i < j])
        self.seen = ends
        if not out_j:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        j, i, s = np.concatenate(out_j), np.concatenate(out_i), np.concatenate(out_s)
        key = np.unique(j * np.int64(len(self.owner)) + i, return_index=True)[1]  # once per pair (lists overlap)
        return j[key], i[key], s[key]

    def forget(self, rows: np.ndarray) -> None:
        """Rows dropped as near-duplicates: no later row is compared with them."""
        import torch

        if len(rows):
            self.held[torch.from_numpy(self.where[rows])] = 0


def reduced(index: Any, x: Any) -> np.ndarray:
    """Rows as the index's lists see them, at unit length: their products approximate cosines (a projection
    from wider vectors shrinks every norm)."""
    return normalize_rows(index.reduced(x))


START_NPROBE = 4
"""Lists probed per row where the scan's tuning starts (doubled while recall is short)."""
MAX_PROBED = 0.25
"""The scan probes at most this share of the lists (at least 64): beyond, listing the pairs costs less."""


@dataclass
class Sampled:
    """Rows spread over the pool compared exactly with every row (:func:`sampled_duplicates`)."""

    rows: np.ndarray
    has: np.ndarray
    """Per sampled row: whether any other row is a near-duplicate."""
    dups: np.ndarray
    """(2, m): (sampled position, other row) of every near-duplicate pair."""
    close: np.ndarray
    """(3, m'): (sampled position, other row, exact cosine) of pairs within the margin below the threshold or
    above it (a random subset)."""

    @property
    def earlier(self) -> np.ndarray:
        """(2, m''): the near-duplicates before their sampled row."""
        return self.dups[:, self.dups[1] < self.rows[self.dups[0]]]


def sampled_duplicates(space: Space, threshold: float, count: int, low: float | None = None,
                       most: int = 20_000) -> Sampled:
    """``count`` rows spread over the pool and their near-duplicates (exact cosine >= ``threshold``, one pass over
    the vectors), with up to ``most`` pairs at cosine >= ``low`` (to measure the index's approximation and how
    many lists must be probed to find them)."""
    n = space.n
    pick = np.unique(np.linspace(0, n - 1, min(n, count)).astype(np.int64))
    Q = normalize_rows(space.vectors.rows(pick))
    Qt = Q.T.toarray() if sp.issparse(Q) else np.ascontiguousarray(Q.T)
    has = np.zeros(len(pick), bool)
    dups, close = [np.zeros((2, 0))], [np.zeros((3, 0))]
    low = threshold if low is None else min(low, threshold)
    for a, block in space.vectors.blocks():
        S = np.asarray(normalize_rows(block) @ Qt)
        r, q = np.nonzero(S >= low - 1e-6)
        other = a + r != pick[q]
        r, q, s = r[other], q[other], S[r[other], q[other]]
        has[q[s >= threshold - 1e-6]] = True
        dups.append(np.stack([q, a + r])[:, s >= threshold - 1e-6])
        close.append(np.stack([q, a + r, s]))
    close = np.concatenate(close, 1)
    if close.shape[1] > most:  # a random subset, spread over the pool
        close = close[:, np.sort(np.random.default_rng(0).choice(close.shape[1], most, replace=False))]
    return Sampled(pick, has, np.concatenate(dups, 1).astype(np.int64), close)


def scan_margin(index: Any, space: Space, sample: Sampled, threshold: float, most: float) -> float:
    """How far below ``threshold`` the index's approximate cosine of a near-duplicate pair may fall, measured on
    the sampled pairs close to it: four standard deviations of its error, or the largest shortfall of a pair at
    ``threshold`` if larger, plus the bfloat16 rounding; at most ``most`` (fewer than 100 sampled pairs: that)."""
    q, r, s = sample.close[0].astype(np.int64), sample.close[1].astype(np.int64), sample.close[2]
    if len(s) < 100:
        return float(most)
    approx = row_dots(reduced(index, space.vectors.rows(sample.rows))[q], reduced(index, space.vectors.rows(r)))
    err = approx - s
    worst = float(-err[s >= threshold - 1e-6].min()) if (s >= threshold - 1e-6).any() else 0.0
    return float(min(most, max(4 * err.std(), worst) + 0.005))


def tune_probes(scan: ListScan, sample: Sampled, threshold: float, low: float,
                target: float = PROBE_RECALL) -> dict[str, Any]:
    """The lists the scan must probe: of the sampled near-duplicate pairs (exact cosine >= ``threshold``; pairs
    >= ``low``, which are harder to find, when fewer than 20 were sampled), the share whose earlier row's list is
    among the later row's ``nprobe`` nearest lists, with ``nprobe`` doubling from :data:`START_NPROBE` until that
    share reaches ``target`` or :data:`MAX_PROBED` of the lists are probed. Under 20 pairs either way: the
    configured ``nprobe``, recall None. The share is per pair (on 1M synthetic rows: 64 of 1,000 lists; per
    sampled row asked for 128, which found 3 more of 15,865 drops in 8% more time)."""
    q, r = sample.dups
    if len(q) < 20:
        near = sample.close[2] >= low - 1e-6
        q, r = sample.close[0, near].astype(np.int64), sample.close[1, near].astype(np.int64)
    a, b = sample.rows[q], r
    cap = min(scan.nlist, max(64, int(MAX_PROBED * scan.nlist)))
    info: dict[str, Any] = {"sampled": len(sample.rows), "with_duplicates": int(sample.has.sum()), "pairs": len(a)}
    if len(a) < 20:
        return {**info, "recall": None, "nprobe": min(int(scan.index.config.nprobe), scan.nlist)}
    lists = scan.probe(np.maximum(a, b), cap)
    owner = scan.owner[np.minimum(a, b)][:, None]
    nprobe = min(START_NPROBE, cap)
    while True:
        recall = float((lists[:, :nprobe] == owner).any(axis=1).mean())
        if recall >= target or nprobe >= cap:
            break
        nprobe = min(2 * nprobe, cap)
    return {**info, "recall": round(recall, 4), "nprobe": nprobe}


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
            log.warning("dedup: the index's lists hold %.0f%% of sampled near-duplicate pairs (>= %.2f) within a "
                        "quarter of the lists; listing every pair above the threshold instead (slower)",
                        100 * info["recall"], threshold)
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
