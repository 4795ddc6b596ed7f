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


def _coverage_incremental(X: sp.csr_matrix, n: int, threshold: float, top_features: int) -> Picked:
    A = active_sets(X, threshold)
    indptr, indices, data = A.indptr, A.indices, A.data
    N, F = A.shape
    C = A.tocsc()  # feature -> samples holding it
    sizes = np.diff(indptr).astype(np.int64)
    done = -(1 << 40)  # gain of a taken sample: below anything decrements can reach
    gain = sizes.copy()
    taken = np.zeros(N, dtype=bool)
    covered = np.zeros(F, dtype=bool)
    ever = np.zeros(F, dtype=bool)
    rows: list[int] = []
    gains: list[int] = []
    feats: list[list[dict]] = []
    rounds = 1
    bar = tqdm(total=n, desc="greedy-coverage", disable=n < 1000, leave=False)
    while len(rows) < n:
        r = int(np.argmax(gain))
        g = int(gain[r])
        if g <= 0:
            if covered.any() and (sizes[~taken] > 0).any():  # nothing new this round: start the next one
                covered[:] = False
                gain = np.where(taken, done, sizes)
                rounds += 1
                continue
            rest = np.flatnonzero(~taken)[: n - len(rows)]  # no active features left anywhere: fill by row order
            rows.extend(int(x) for x in rest)
            gains.extend([0] * len(rest))
            feats.extend([] for _ in rest)
            bar.update(len(rest))
            break
        lo, hi = indptr[r], indptr[r + 1]
        new = ~covered[indices[lo:hi]]
        idx, vals = indices[lo:hi][new], data[lo:hi][new]
        covered[idx] = True
        ever[idx] = True
        starts, lens = C.indptr[idx], np.diff(C.indptr)[idx]
        ends = np.cumsum(lens)
        pos = np.arange(int(ends[-1])) - np.repeat(ends - lens, lens) + np.repeat(starts, lens)
        np.subtract.at(gain, C.indices[pos], 1)
        gain[r] = done
        taken[r] = True
        rows.append(r)
        gains.append(g)
        feats.append(_new_features(idx, vals, g, top_features))
        bar.update(1)
    bar.close()
    info = {
        "algorithm": "incremental",
        "rounds": rounds,
        "covered_features": int(ever.sum()),
        "coverable_features": int(np.unique(indices).size),
    }
    return Picked(np.asarray(rows, np.int64), np.asarray(gains, np.float64), feats, info)


def _coverage_lazy(X: sp.csr_matrix, n: int, threshold: float, top_features: int) -> Picked:
    A = active_sets(X, threshold)
    indptr, indices, data = A.indptr, A.indices, A.data
    N, F = A.shape
    sizes = np.diff(indptr)
    covered = np.zeros(F, dtype=bool)
    ever = np.zeros(F, dtype=bool)
    taken = np.zeros(N, dtype=bool)
    rows: list[int] = []
    gains: list[int] = []
    feats: list[list[dict]] = []
    evaluations = 0
    rounds = 1

    def fresh_heap() -> list[tuple[int, int]]:
        h = [(-int(sizes[r]), int(r)) for r in np.flatnonzero(~taken & (sizes > 0))]
        heapq.heapify(h)
        return h

    heap = fresh_heap()
    bar = tqdm(total=n, desc="greedy-coverage", disable=n < 1000, leave=False)
    while len(rows) < n:
        if not heap or heap[0][0] == 0:
            if covered.any() and (~taken & (sizes > 0)).any():  # everything coverable is covered: new round
                covered[:] = False
                rounds += 1
                heap = fresh_heap()
                continue
            rest = np.flatnonzero(~taken)[: n - len(rows)]  # no active features left anywhere: fill by row order
            rows.extend(int(r) for r in rest)
            gains.extend([0] * len(rest))
            feats.extend([] for _ in rest)
            bar.update(len(rest))
            break
        _, r = heapq.heappop(heap)
        lo, hi = indptr[r], indptr[r + 1]
        new = ~covered[indices[lo:hi]]
        g = int(new.sum())
        evaluations += 1
        if heap and (-g, r) > heap[0]:  # a stale bound above us may still beat us: re-queue with the true gain
            heapq.heappush(heap, (-g, r))
            continue
        if g == 0:  # every remaining bound is 0: this round can cover nothing more, start the next one
            covered[:] = False
            rounds += 1
            heap = fresh_heap()
            continue
        idx, vals = indices[lo:hi][new], data[lo:hi][new]
        covered[idx] = True
        ever[idx] = True
        taken[r] = True
        rows.append(r)
        gains.append(g)
        feats.append(_new_features(idx, vals, g, top_features))
        bar.update(1)
    bar.close()
    info = {
        "algorithm": "lazy",
        "rounds": rounds,
        "evaluations": evaluations,
        "covered_features": int(ever.sum()),
        "coverable_features": int(np.unique(indices).size),
    }
    return Picked(np.asarray(rows, np.int64), np.asarray(gains, np.float64), feats, info)


