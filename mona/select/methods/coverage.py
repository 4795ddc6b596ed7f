"""``greedy-coverage`` — SAE-GreedSelect (arXiv 2502.14050): cover the most not-yet-covered SAE features.

Repeatedly add the sample whose active features cover the most features not covered yet. When nothing new can
be covered, coverage resets and a new round starts over the remaining samples. Two exact implementations with
the same picks: incremental gains over an inverted index (default), or lazy greedy over a heap of stale gains.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from mona.errors import MonaError
from mona.select.methods.base import Attribution, Context, Method, Picked, finish, pick_entry, row_codes

log = logging.getLogger(__name__)

NEW_FEATURES = ("features this pick newly covered, highest pooled value first; share = 1/score "
                "(score = number of newly covered features)")


@dataclass
class CoverageOptions:
    """SAE-GreedSelect's settings."""

    active_threshold: float = 0.0
    """A feature is active in a sample when its pooled code is strictly above this."""
    coverage_algorithm: Literal["incremental", "lazy"] = "incremental"
    """Exact incremental gains with an arg-max per pick, or lazy greedy over a heap of stale gains. Both give
    the same picks; see docs/select.md for when each is faster."""

    def __post_init__(self) -> None:
        if self.coverage_algorithm not in ("incremental", "lazy"):
            raise MonaError(f"coverage_algorithm must be one of incremental, lazy; got {self.coverage_algorithm!r}")


class GreedyCoverage(Method):
    name = "greedy-coverage"
    summary = "SAE-GreedSelect: cover the most not-yet-covered active SAE features"
    Options = CoverageOptions
    pool_modes = ("sae",)
    sae_features = True
    features = NEW_FEATURES

    def pick(self, ctx: Context, groups: list[list[Any]]) -> Picked:
        o = ctx.options
        return greedy_coverage(ctx.matrices().codes(), ctx.n, o.active_threshold, ctx.config.top_features,
                               o.coverage_algorithm)

    def attribute(self, a: Attribution) -> list[dict[str, Any]]:
        """Per pick, the features it newly covered, re-derived in pick order (a new round resets coverage)."""
        if a.codes is None:
            return super().attribute(a)
        covered = np.zeros(a.codes.shape[1], bool)
        out = []
        for i in range(len(a.selection)):
            entry = pick_entry(a, i)
            idx, val = row_codes(a.codes, entry["row"])
            act = val > a.threshold
            entry["n_active"] = int(act.sum())
            a_idx, a_val = idx[act], val[act]
            new = ~covered[a_idx]
            gain = int(round(entry["score"]))
            if int(new.sum()) != gain and len(a_idx) == gain:  # a new round began
                covered[:] = False
                new = np.ones(len(a_idx), bool)
            covered[a_idx[new]] = True
            order = np.lexsort((a_idx[new], -a_val[new]))
            n_new = int(new.sum())
            entry["new_features"] = a_idx[new][order].astype(int).tolist()
            out.append(finish(entry, [{"feature": int(a_idx[new][j]), "share": 1.0 / n_new,
                                       "value": float(a_val[new][j])} for j in order[: a.top_features]]))
        return out


def active_sets(X: sp.csr_matrix, threshold: float) -> sp.csr_matrix:
    """Keep only entries above ``threshold`` (values kept, explicit zeros dropped)."""
    X = sp.csr_matrix(X, copy=False)
    keep = X.data > threshold
    kept = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    return sp.csr_matrix((X.data[keep], X.indices[keep], kept[X.indptr]), shape=X.shape)


def greedy_coverage(
    X: sp.csr_matrix, n: int, threshold: float = 0.0, top_features: int = 10, algorithm: str = "incremental"
) -> Picked:
    """SAE-GreedSelect: each step adds the sample covering most not-yet-covered active features.

    Ties go to the lower row; score = number of newly covered features. When nothing new can be covered, coverage
    resets and a new round starts over the remaining samples. Two exact implementations, same picks:

    * ``incremental`` (default): gains are kept exact; covering feature f decrements the gain of every sample
      holding f (inverted index, vectorised), and each step is one arg-max over the pool. Total work per round
      O(nnz) plus O(pool) per pick.
    * ``lazy``: a heap of stale gains (upper bounds, since gains only shrink) and re-evaluation of the top entry
      only (Minoux). Few evaluations when gains fall slowly; on real codes a few very common features make almost
      every bound stale at once and it re-evaluates far more (see BENCHMARKS.md).
    """
    if algorithm == "lazy":
        return _coverage_lazy(X, n, threshold, top_features)
    return _coverage_incremental(X, n, threshold, top_features)


def _new_features(idx: np.ndarray, vals: np.ndarray, g: int, k: int) -> list[dict]:
    order = np.lexsort((idx, -vals))[:k]
    return [{"feature": int(idx[i]), "share": 1.0 / g} for i in order]


class _Trace:
    """What both implementations record: picks, gains, newly covered features, coverage state and progress."""

    def __init__(self, A: sp.csr_matrix, n: int, top_features: int) -> None:
        self.n, self.top, self.indices = n, top_features, A.indices
        self.taken = np.zeros(A.shape[0], dtype=bool)
        self.covered = np.zeros(A.shape[1], dtype=bool)
        self.ever = np.zeros(A.shape[1], dtype=bool)
        self.rows: list[int] = []
        self.gains: list[int] = []
        self.feats: list[list[dict]] = []
        self.rounds = 1
        self.bar = tqdm(total=n, desc="greedy-coverage", disable=n < 1000, leave=False)

    def take(self, r: int, g: int, idx: np.ndarray, vals: np.ndarray) -> None:
        self.covered[idx] = True
        self.ever[idx] = True
        self.taken[r] = True
        self.rows.append(r)
        self.gains.append(g)
        self.feats.append(_new_features(idx, vals, g, self.top))
        self.bar.update(1)

    def fill(self) -> None:
        """No active features left anywhere: the rest of the budget by row order."""
        rest = np.flatnonzero(~self.taken)[: self.n - len(self.rows)]
        self.rows.extend(int(x) for x in rest)
        self.gains.extend([0] * len(rest))
        self.feats.extend([] for _ in rest)
        self.bar.update(len(rest))

    def picked(self, **info: Any) -> Picked:
        self.bar.close()
        info.update(rounds=self.rounds, covered_features=int(self.ever.sum()),
                    coverable_features=int(np.unique(self.indices).size))
        return Picked(np.asarray(self.rows, np.int64), np.asarray(self.gains, np.float64), self.feats, info)


def _coverage_incremental(X: sp.csr_matrix, n: int, threshold: float, top_features: int) -> Picked:
    A = active_sets(X, threshold)
    indptr, indices, data = A.indptr, A.indices, A.data
    C = A.tocsc()  # feature -> samples holding it
    sizes = np.diff(indptr).astype(np.int64)
    done = -(1 << 40)  # gain of a taken sample: below anything decrements can reach
    gain = sizes.copy()
    t = _Trace(A, n, top_features)
    while len(t.rows) < n:
        r = int(np.argmax(gain))
        g = int(gain[r])
        if g <= 0:
            if t.covered.any() and (sizes[~t.taken] > 0).any():  # nothing new this round: start the next one
                t.covered[:] = False
                gain = np.where(t.taken, done, sizes)
                t.rounds += 1
                continue
            t.fill()
            break
        lo, hi = indptr[r], indptr[r + 1]
        new = ~t.covered[indices[lo:hi]]
        idx, vals = indices[lo:hi][new], data[lo:hi][new]
        starts, lens = C.indptr[idx], np.diff(C.indptr)[idx]
        ends = np.cumsum(lens)
        pos = np.arange(int(ends[-1])) - np.repeat(ends - lens, lens) + np.repeat(starts, lens)
        np.subtract.at(gain, C.indices[pos], 1)
        gain[r] = done
        t.take(r, g, idx, vals)
    return t.picked(algorithm="incremental")


def _coverage_lazy(X: sp.csr_matrix, n: int, threshold: float, top_features: int) -> Picked:
    A = active_sets(X, threshold)
    indptr, indices, data = A.indptr, A.indices, A.data
    sizes = np.diff(indptr)
    t = _Trace(A, n, top_features)
    evaluations = 0

    def fresh_heap() -> list[tuple[int, int]]:
        h = [(-int(sizes[r]), int(r)) for r in np.flatnonzero(~t.taken & (sizes > 0))]
        heapq.heapify(h)
        return h

    heap = fresh_heap()
    while len(t.rows) < n:
        if not heap or heap[0][0] == 0:
            if t.covered.any() and (~t.taken & (sizes > 0)).any():  # everything coverable is covered: new round
                t.covered[:] = False
                t.rounds += 1
                heap = fresh_heap()
                continue
            t.fill()
            break
        _, r = heapq.heappop(heap)
        lo, hi = indptr[r], indptr[r + 1]
        new = ~t.covered[indices[lo:hi]]
        g = int(new.sum())
        evaluations += 1
        if heap and (-g, r) > heap[0]:  # a stale bound above us may still beat us: re-queue with the true gain
            heapq.heappush(heap, (-g, r))
            continue
        if g == 0:  # every remaining bound is 0: this round can cover nothing more, start the next one
            t.covered[:] = False
            t.rounds += 1
            heap = fresh_heap()
            continue
        t.take(r, g, indices[lo:hi][new], data[lo:hi][new])
    return t.picked(algorithm="lazy", evaluations=evaluations)
