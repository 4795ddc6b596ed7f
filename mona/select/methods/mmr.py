"""``mmr`` — maximal marginal relevance: relevance to the target traded against redundancy with the picks so far.

Relevance is ``mona``'s score on SAE stores (same options) or the dense cosine on dense stores; redundancy is
measured in the same space (through the decoder under ``similarity="decoder"``).

The greedy loop runs over the most relevant candidates. While picks × candidates is small every pick is
compared with every candidate. Above that (or with ``index="ivf"``) the picks are added one by one to an empty
copy of the store's FAISS index, and a lazy greedy asks it for the nearest pick of only those candidates whose
objective could still be the best (objectives only fall as picks accumulate); its proposals are re-scored
exactly. Both give MMR's picks; the index path misses a redundancy only where the index misses a candidate's
nearest pick.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from jaxtyping import Float
from tqdm.auto import tqdm

from mona.errors import MonaError
from mona.select.budget import top_n
from mona.select.inputs import store_mode
from mona.select.methods.base import Attribution, Context, Method, Picked
from mona.select.methods.dense import score_dense
from mona.select.methods.mona import CodeOptions, overlap_attribution, score_codes
from mona.select.neighbours import Space, code_space, dense_space, index_info, open_index, pool_rows, resolve
from mona.select.similarity import cosine_to_vector, jaccard_to_vector
from mona.vectors import normalize_rows, row_dots


@dataclass
class MmrOptions(CodeOptions):
    """MMR's settings: the relevance settings of ``mona`` (SAE stores) or ``dense`` (dense stores), and λ."""

    center: bool = True
    """Dense stores: subtract the pool's mean vector before cosine."""
    standardize: bool = True
    """Dense stores: divide each dimension by its standard deviation over the pool before cosine."""
    mmr_lambda: float = 0.7
    """Score = λ·relevance − (1 − λ)·max similarity to the already selected samples."""
    mmr_candidates: int | None = None
    """Run the greedy loop on this many most relevant samples (default max(10·n, 1000))."""

    def __post_init__(self) -> None:
        if self.aggregate is None:  # the relevance is a similarity, traded against similarities to the picks
            self.aggregate = "prototype"
        if self.aggregate == "fused":
            raise MonaError("mmr's relevance is a similarity: aggregate must be prototype or max, not fused")
        super().__post_init__()
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise MonaError(f"mmr_lambda must be in [0, 1], got {self.mmr_lambda}")
        if self.mmr_candidates is not None and self.mmr_candidates < 1:
            raise MonaError(f"mmr_candidates must be >= 1, got {self.mmr_candidates}")


class Mmr(Method):
    name = "mmr"
    summary = "relevance to the target traded against redundancy with the picks so far"
    Options = MmrOptions
    target = "store"
    pool_modes = ("sae", "dense")
    merge_targets = True
    sae_features = True
    features = "overlap with the target, as for mona (relevance part of the score)"

    def _relevance(self, ctx: Context, group: list[Any]):
        pm = ctx.matrices()
        if store_mode(ctx.pool) == "sae":
            return score_codes(pm, group, 0, ctx.config.top_features, self.name)
        return score_dense(pm, group, 0, self.name, ("dense",))

    def pick(self, ctx: Context, groups: list[list[Any]]) -> Picked:
        o = ctx.options
        rel = self._relevance(ctx, groups[0])
        cand = top_candidates(rel.scores, ctx.n, o.mmr_candidates)
        space, sim = self._space(ctx)
        path = mmr_path(ctx.config.index, ctx.n, len(cand), pool_rows(ctx.pool), space.width)
        if path == "loop":
            p = mmr(space.vectors.rows(cand), rel.scores[cand], ctx.n, o.mmr_lambda, sim, len(cand))
            p.rows = cand[p.rows]
        else:
            index = open_index(space, path)
            p = mmr_indexed(index, space.vectors.rows(cand), rel.scores[cand], ctx.n, o.mmr_lambda, sim)
            p.rows = cand[p.rows]
            info = index_info(index, path, **p.info)
            p.info["method_info"] = {"index": info}
            ctx.cache["index"] = info
        p.features, _ = rel.explain(p.rows)
        return p

    def _space(self, ctx: Context) -> tuple[Space, str]:
        """The vectors redundancy is measured on, and how: the (unweighted) SAE codes with the relevance's
        similarity, the decoded codes (``decoder``), or the dense vectors (cosine)."""
        o, pm = ctx.options, ctx.matrices()
        if store_mode(ctx.pool) != "sae":
            return dense_space(pm), "cosine"
        if o.similarity == "decoder":
            return dense_space(pm, decoder=True), "cosine"
        return code_space(pm, weighted=False), o.similarity

    def relevance(self, ctx: Context, groups: list[list[Any]]) -> np.ndarray | None:
        return self._relevance(ctx, groups[0]).scores if groups else None

    def attribute(self, a: Attribution) -> list[dict[str, Any]]:
        return overlap_attribution(a, check_scores=False)


MMR_EXACT_PAIRS = 25_000_000
"""``index="auto"``: every pick against every candidate while picks × candidates is at most this (seconds of
sparse products); the pick index above it."""


def top_candidates(relevance: np.ndarray, n: int, count: int | None) -> np.ndarray:
    """The ``count`` (default max(10·n, 1000)) most relevant rows, in ascending row order."""
    C = min(len(relevance), count or max(10 * n, 1000))
    if C < n:
        raise MonaError(f"mmr_candidates={C} is smaller than the budget n={n}")
    return np.sort(top_n(relevance, C))


def mmr_path(mode: str, n: int, C: int, pool: int, width: int) -> str:
    """``loop`` (exact MMR: every pick against every candidate) or the index kind serving the neighbourhoods
    (``flat`` or ``ivf``)."""
    if mode in ("exact", "none") or (mode == "auto" and n * C <= MMR_EXACT_PAIRS):
        return "loop"
    return "ivf" if mode == "ivf" or resolve("auto", pool, width) == "ivf" else "flat"


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
    cand = top_candidates(relevance, n, candidates)  # ascending row order so argmax ties go to the lower row
    C = len(cand)
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


EXACT_PICKS = 1024
"""Up to this many picks, a candidate's nearest pick is found by comparing it with all of them (a pick far from
every other is then still seen); above, through the pick index."""
PICK_BATCH = 256
"""Picks are added to the pick index this many at a time (the ones not yet added are compared exactly)."""


class PickIndex:
    """The picks so far, searchable for each candidate's most similar pick: an empty copy of the pool's FAISS index
    (same projection and coarse lists) that picks are added to in batches; its proposals, and the picks not yet
    added, are scored exactly."""

    def __init__(self, index: Any, X: Any, similarity: str, proposals: int, flush: int | None = None) -> None:
        import faiss

        self.index, self.X, self.similarity, self.proposals = index, X, similarity, proposals
        self.flush = flush or PICK_BATCH
        self.faiss = faiss.clone_index(index.faiss_index)
        self.faiss.reset()
        if index.kind == "ivf":
            faiss.extract_index_ivf(self.faiss).nprobe = int(index._ivf().nprobe)
        self.Xn = normalize_rows(X) if similarity == "cosine" else X
        self.ids: list[int] = []  # every pick, in order; the first `indexed` are in the FAISS index
        self.indexed = 0
        self.queries = 0

    def add(self, pos: int) -> None:
        self.ids.append(pos)
        if len(self.ids) - self.indexed >= self.flush and len(self.ids) > EXACT_PICKS:
            new = np.asarray(self.ids[self.indexed :], np.int64)
            self.faiss.add(self.index.prepare(self.X[new]))  # FAISS numbers them in order: row = ids[label]
            self.indexed = len(self.ids)

    def nearest(self, positions: np.ndarray) -> np.ndarray:
        """(len(positions),) each candidate's highest exact similarity among the picks the index proposes and the
        picks not yet indexed (all picks while there are at most :data:`EXACT_PICKS`)."""
        out = np.zeros(len(positions))
        if not self.ids or not len(positions):
            return out
        self.queries += len(positions)
        ids = np.asarray(self.ids, np.int64)
        if len(ids) <= EXACT_PICKS or not self.indexed:  # few picks: compare with all (the index misses far ones)
            return np.maximum(out, self.brute(positions, ids))
        k = min(self.indexed, self.proposals)
        _, found = self.faiss.search(self.index.prepare(self.X[positions]), k)
        qi = np.repeat(np.arange(len(positions)), k)
        ok = found.ravel() >= 0
        np.maximum.at(out, qi[ok], self.pair_sims(positions[qi[ok]], ids[found.ravel()[ok]]))
        if self.indexed < len(ids):
            out = np.maximum(out, self.brute(positions, ids[self.indexed :]))
        return out

    def brute(self, positions: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """(len(positions),) each candidate's highest similarity to the picks ``ids``."""
        if self.similarity == "cosine":
            S = self.Xn[positions] @ self.Xn[ids].T
            return (S.toarray() if sp.issparse(S) else np.asarray(S)).max(axis=1)
        qi = np.repeat(np.arange(len(positions)), len(ids))
        out = np.full(len(positions), -np.inf)
        np.maximum.at(out, qi, self.pair_sims(positions[qi], np.tile(ids, len(positions))))
        return out

    def pair_sims(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.similarity == "jaccard":
            return pair_jaccard(self.X, a, b)
        return row_dots(self.Xn[a], self.Xn[b])

    def to_rows(self, rows_matrix: Any, pos: int) -> np.ndarray:
        """Exact similarity of every row of ``rows_matrix`` (candidates, as :attr:`Xn` holds them) to ``pos``."""
        v = self.Xn[pos]
        v = v.toarray().ravel() if sp.issparse(v) else np.asarray(v).ravel()
        if self.similarity == "jaccard":
            return jaccard_to_vector(rows_matrix, v)
        return np.asarray(rows_matrix @ v, np.float64).ravel()


def mmr_indexed(index: Any, X: Any, relevance: np.ndarray, n: int, lam: float, similarity: str,
                batch: int = 256, working: int = 2048) -> Picked:
    """Exact MMR over the candidates ``X`` (rows in candidate order) with redundancy from a :class:`PickIndex`:
    a lazy greedy. Every candidate's objective only falls as picks accumulate, so the heap holds upper bounds; the
    best ones are refreshed in batches (their nearest pick from the index) into a working set that is kept
    current pick by pick, and a working-set entry at least as good as every remaining bound is the next pick.
    Ties → lower candidate, as :func:`mmr`."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # FAISS's idle threads would spin against numpy between the many small calls
    try:
        return _lazy_greedy(PickIndex(index, X, similarity, max(4 * index.config.rerank, 1)), relevance, n, lam,
                            batch, working)
    finally:
        faiss.omp_set_num_threads(threads)


def _lazy_greedy(picks: PickIndex, relevance: np.ndarray, n: int, lam: float, batch: int, working: int) -> Picked:
    rel = np.asarray(relevance, np.float64)
    heap = [(-lam * float(r), j) for j, r in enumerate(rel)]
    heapq.heapify(heap)
    maxsim = np.zeros(len(rel))
    W = np.zeros(0, np.int64)  # working set: candidates whose maxsim covers every pick so far
    XW, alive = picks.Xn[W], np.zeros(0, bool)
    rows: list[int] = []
    scores: list[float] = []
    with tqdm(total=n, desc="mmr", disable=n < 2000, leave=False) as bar:
        while len(rows) < n and (alive.any() or heap):
            obj = np.where(alive, lam * rel[W] - (1 - lam) * maxsim[W], -np.inf)
            best = int(np.lexsort((W, -obj))[0]) if alive.any() else -1
            bound = -heap[0][0] if heap else -np.inf
            if best < 0 or obj[best] < bound or (obj[best] == bound and heap[0][1] < W[best]):
                fresh = np.asarray([heapq.heappop(heap)[1] for _ in range(min(batch, len(heap)))], np.int64)
                maxsim[fresh] = np.maximum(maxsim[fresh], picks.nearest(fresh))
                W = np.concatenate([W[alive], fresh])
                if len(W) > working:  # return the weakest to the heap (their values stay valid upper bounds)
                    order = np.lexsort((W, -(lam * rel[W] - (1 - lam) * maxsim[W])))
                    for j in W[order[working // 2 :]]:
                        heapq.heappush(heap, (-(lam * rel[j] - (1 - lam) * maxsim[j]), int(j)))
                    W = W[np.sort(order[: working // 2])]
                XW, alive = picks.Xn[W], np.ones(len(W), bool)
                continue
            pos = int(W[best])
            rows.append(pos)
            scores.append(float(obj[best]))
            alive[best] = False
            picks.add(pos)
            maxsim[W] = np.maximum(maxsim[W], picks.to_rows(XW, pos))
            bar.update(1)
    info = {"candidates": int(len(rel)), "refreshed": int(picks.queries)}
    return Picked(np.asarray(rows, np.int64), np.asarray(scores), info=info)


def pair_jaccard(X: sp.csr_matrix, a: np.ndarray, b: np.ndarray, block: int = 65_536) -> np.ndarray:
    """Weighted Jaccard Σmin/Σmax of the row pairs ``(X[a_i], X[b_i])`` (non-negative codes)."""
    out = np.empty(len(a))
    sums = np.asarray(X.sum(axis=1), np.float64).ravel()
    for s in range(0, len(a), block):
        A, B = X[a[s : s + block]], X[b[s : s + block]]
        mins = np.asarray(A.minimum(B).sum(axis=1), np.float64).ravel()
        den = sums[a[s : s + block]] + sums[b[s : s + block]] - mins
        out[s : s + block] = np.where(den > 0, mins / np.where(den > 0, den, 1.0), 0.0)
    return out
