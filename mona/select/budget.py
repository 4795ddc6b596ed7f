"""Turning scores into a ranked pick: stable top-n and per-target quotas filled round-robin."""

from __future__ import annotations

import numpy as np
from jaxtyping import Float, Int


def rank_order(scores: Float[np.ndarray, " n"], rows: np.ndarray | None = None) -> np.ndarray:
    """Positions of ``scores`` sorted by score descending, then by row index ascending."""
    rows = np.arange(len(scores)) if rows is None else rows
    return np.lexsort((rows, -np.asarray(scores, dtype=np.float64)))


def top_n(scores: Float[np.ndarray, " n"], n: int) -> Int[np.ndarray, " k"]:
    """Row indices of the ``n`` best scores, best first; ties broken by the lower row index. O(N + n log n)."""
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    N = len(scores)
    n = min(n, N)
    if n <= 0:
        return np.zeros(0, np.int64)
    if n < N:
        kth = np.partition(scores, N - n)[N - n]  # the n-th largest value
        above = np.flatnonzero(scores > kth)
        tied = np.flatnonzero(scores == kth)[: n - len(above)]  # flatnonzero is ascending: lowest rows first
        cand = np.concatenate([above, tied])
    else:
        cand = np.arange(N)
    return cand[np.lexsort((cand, -scores[cand]))].astype(np.int64)


def split_quota(n: int, weights: list[float]) -> list[int]:
    """Split ``n`` into integer parts proportional to ``weights`` (largest remainder, earlier sets win ties)."""
    w = np.asarray(weights, dtype=np.float64)
    raw = n * w / w.sum()
    parts = np.floor(raw).astype(int)
    rest = n - int(parts.sum())
    order = np.lexsort((np.arange(len(w)), -(raw - parts)))
    parts[order[:rest]] += 1
    return parts.tolist()


def round_robin(
    score_lists: list[np.ndarray], n: int, quotas: list[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``n`` rows from several score vectors over the same pool, each set filling its quota in turn.

    Set i takes its best row not yet taken, then set i+1, ...; a set whose quota is full is skipped; if a set
    runs out of rows its remaining quota passes to the others. Returns (rows, owning set) in pick order.
    """
    k = len(score_lists)
    want = split_quota(n, quotas or [1.0] * k)
    orders = [top_n(s, len(s)) for s in score_lists]
    pos = [0] * k
    taken = np.zeros(len(score_lists[0]), bool)
    rows: list[int] = []
    owner: list[int] = []
    got = [0] * k
    while len(rows) < n:
        progressed = False
        for i in range(k):
            if got[i] >= want[i] or len(rows) >= n:
                continue
            order = orders[i]
            while pos[i] < len(order) and taken[order[pos[i]]]:
                pos[i] += 1
            if pos[i] >= len(order):
                continue
            r = int(order[pos[i]])
            taken[r] = True
            rows.append(r)
            owner.append(i)
            got[i] += 1
            progressed = True
        if not progressed:  # every set with quota left is exhausted: hand the rest to whoever still has rows
            want = [g + n for g in got]
    return np.asarray(rows, np.int64), np.asarray(owner, np.int64)
