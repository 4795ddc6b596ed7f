"""Diversity selection on SAE feature sets (arXiv 2502.14050) and on any embedding.

* SAE-GreedSelect (``greedy-coverage``): repeatedly add the sample whose active features cover the most
  features not covered yet. Lazy greedy: a heap holds each sample's last known gain, an upper bound of its
  current gain (coverage gains only shrink), so only the top entries are re-evaluated. When nothing new can be
  covered, coverage resets and a new round starts over the remaining samples.
* SAE-SimScale (``simscale``): visit samples (most active features first, or in random order) and keep one
  unless the Jaccard similarity of its active-feature set to an already kept sample exceeds a threshold.
  Similarities come from sparse products in blocks, never a Python loop over pairs.
* ``kcenter``: farthest-point greedy on cosine distance (each step one sparse/dense mat-vec).
* ``mmr``: maximal marginal relevance, λ·relevance − (1 − λ)·max similarity to the already selected.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from jaxtyping import Float
from tqdm.auto import tqdm

from mona.errors import MonaError
from mona.select.budget import top_n
from mona.select.inputs import binarize_codes
from mona.select.similarity import activation_shares, cosine_to_vector, jaccard_to_vector, normalize_rows

log = logging.getLogger(__name__)


@dataclass
class Picked:
    """Rows in pick order, a score per pick, optional per-pick features, and method statistics."""

    rows: np.ndarray
    scores: np.ndarray
    features: list[list[dict]] | None = None
    info: dict[str, Any] = field(default_factory=dict)


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


def simscale(
    X: sp.csr_matrix,
    n: int,
    threshold: float = 0.0,
    sim_threshold: float = 0.5,
    order: str = "features",
    seed: int = 0,
    block: int = 2048,
) -> Picked:
    """SAE-SimScale: keep samples in visit order unless Jaccard(active sets) to a kept one > ``sim_threshold``.

    Score = 1 − the largest similarity to a previously kept sample (1 for the first). Fewer than ``n`` rows
    come back when the pool runs out of sufficiently dissimilar samples (logged).
    """
    B = binarize_codes(X, threshold)
    N = B.shape[0]
    sizes = np.diff(B.indptr).astype(np.float64)
    if order == "features":
        visit = np.lexsort((np.arange(N), -sizes))
    else:
        visit = np.random.default_rng(seed).permutation(N)
    kept: list[int] = []
    kept_scores: list[float] = []
    kept_T = None  # (F, K) binary matrix of kept rows
    bar = tqdm(total=N, desc="simscale", disable=N < 20_000, leave=False)
    for a in range(0, N, block):
        rows = visit[a : a + block]
        Bb = B[rows]
        sb = sizes[rows]
        if kept_T is not None:
            inter = (Bb @ kept_T).tocsr()
            inter.sort_indices()
            ks = sizes[np.asarray(kept)]
            sim = inter.copy()
            denom = sb[np.repeat(np.arange(len(rows)), np.diff(inter.indptr))] + ks[inter.indices] - inter.data
            sim.data = np.where(denom > 0, inter.data / np.where(denom > 0, denom, 1), 0.0)
            max_kept = np.asarray(sim.max(axis=1).toarray()).ravel() if sim.nnz else np.zeros(len(rows))
        else:
            max_kept = np.zeros(len(rows))
        inner = (Bb @ Bb.T).toarray()
        denom = sb[:, None] + sb[None, :] - inner
        J = np.where(denom > 0, inner / np.where(denom > 0, denom, 1), 0.0)
        new_local: list[int] = []
        for i in range(len(rows)):
            if max_kept[i] > sim_threshold:
                continue
            m = float(J[i, new_local].max()) if new_local else 0.0
            if m > sim_threshold:
                continue
            new_local.append(i)
            kept.append(int(rows[i]))
            kept_scores.append(1.0 - max(m, float(max_kept[i])))
            if len(kept) >= n:
                break
        bar.update(len(rows))
        if len(kept) >= n:
            break
        if new_local:
            add = Bb[new_local].T.tocsr()
            kept_T = add if kept_T is None else sp.hstack([kept_T, add], format="csr")
    bar.close()
    if len(kept) < n:
        log.warning(
            "simscale kept %d of the %d requested: no other sample is below similarity %.2f to the kept ones",
            len(kept),
            n,
            sim_threshold,
        )
    return Picked(
        np.asarray(kept, np.int64),
        np.asarray(kept_scores),
        None,
        {"visited": int(min(N, a + block)), "kept": len(kept)},
    )


def kcenter(X: Any, n: int, seed: int = 0) -> Picked:
    """Farthest-point greedy on cosine distance 1 − cos; first centre drawn with ``seed``; ties → lower row.

    Score = cosine distance of the pick to its nearest earlier centre (1.0 for the first). Each step is one
    mat-vec over the pool.
    """
    Xn = normalize_rows(X)
    N = Xn.shape[0]
    is_sparse = sp.issparse(Xn)
    first = int(np.random.default_rng(seed).integers(N))
    mind = np.full(N, np.inf)
    rows = [first]
    scores = [1.0]
    for _ in tqdm(range(n), desc="kcenter", disable=n < 200, leave=False):
        c = rows[-1]
        v = Xn[c].toarray().ravel() if is_sparse else Xn[c]
        d = 1.0 - np.asarray(Xn @ v, dtype=np.float64).ravel()
        np.minimum(mind, d, out=mind)
        mind[c] = -np.inf
        if len(rows) >= n:
            break
        nxt = int(np.argmax(mind))
        rows.append(nxt)
        scores.append(float(mind[nxt]))
    return Picked(np.asarray(rows, np.int64), np.asarray(scores))


def mmr(
    X: Any,
    relevance: Float[np.ndarray, " n"],
    n: int,
    lam: float = 0.7,
    similarity: str = "jaccard",
    candidates: int | None = None,
) -> Picked:
    """Maximal marginal relevance over the ``candidates`` most relevant rows; ties → lower row.

    Score = the MMR objective λ·rel − (1 − λ)·max_sim at the time of the pick.
    """
    N = X.shape[0]
    C = min(N, candidates or max(10 * n, 1000))
    if C < n:
        raise MonaError(f"mmr_candidates={C} is smaller than the budget n={n}")
    cand = np.sort(top_n(relevance, C))  # ascending row order so argmax ties go to the lower row
    Xc = X[cand]
    if sp.issparse(Xc):
        Xc = sp.csr_matrix(Xc)
    rel = np.asarray(relevance, np.float64)[cand]
    maxsim = np.zeros(C)
    free = np.ones(C, bool)
    rows: list[int] = []
    scores: list[float] = []
    for _ in tqdm(range(n), desc="mmr", disable=n < 200, leave=False):
        obj = np.where(free, lam * rel - (1 - lam) * maxsim, -np.inf)
        i = int(np.argmax(obj))
        rows.append(int(cand[i]))
        scores.append(float(obj[i]))
        free[i] = False
        v = Xc[i].toarray().ravel() if sp.issparse(Xc) else np.asarray(Xc[i])
        if similarity == "jaccard":
            s = jaccard_to_vector(Xc, v)
        else:
            s = cosine_to_vector(Xc, v)
        np.maximum(maxsim, s, out=maxsim)
    return Picked(np.asarray(rows, np.int64), np.asarray(scores), info={"candidates": int(C)})


def own_features(X: sp.csr_matrix, rows: np.ndarray, k: int) -> list[list[dict]]:
    """Each row's top-``k`` features by pooled value (share of the row's total)."""
    out = []
    for r in rows:
        lo, hi = X.indptr[r], X.indptr[r + 1]
        out.append(activation_shares(X.indices[lo:hi], X.data[lo:hi], k))
    return out
