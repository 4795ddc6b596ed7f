"""``simscale`` — SAE-SimScale (arXiv 2502.14050): keep a sample unless it is too similar to one kept already.

Samples are visited by number of active features (most first) or in seeded random order; similarity is the
Jaccard index of active-feature sets, from sparse products in blocks, never a Python loop over pairs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from mona.errors import MonaError
from mona.index import IndexConfig, empty_ivf
from mona.select.inputs import binarize_codes
from mona.select.methods.base import OWN_FEATURES, Context, Method, Picked, own_features
from mona.select.neighbours import binary_space, pool_rows, resolve
from mona.store import Store
from mona.vectors import Vectors, row_dots

log = logging.getLogger(__name__)


@dataclass
class SimScaleOptions:
    """SAE-SimScale's settings."""

    active_threshold: float = 0.0
    """A feature is active in a sample when its pooled code is strictly above this."""
    sim_threshold: float = 0.5
    """Drop a sample whose Jaccard similarity of active-feature sets to a kept one exceeds this."""
    simscale_order: Literal["features", "random"] = "features"
    """Visit samples by number of active features (most first) or in seeded random order."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.sim_threshold <= 1.0:
            raise MonaError(f"sim_threshold must be in [0, 1], got {self.sim_threshold}")
        if self.simscale_order not in ("features", "random"):
            raise MonaError(f"simscale_order must be one of features, random; got {self.simscale_order!r}")


class SimScale(Method):
    name = "simscale"
    summary = "SAE-SimScale: drop samples too similar (active-feature Jaccard) to one already kept"
    Options = SimScaleOptions
    pool_modes = ("sae",)
    sae_features = True
    features = OWN_FEATURES

    def pick(self, ctx: Context, groups: list[list[Any]]) -> Picked:
        o, pm = ctx.options, ctx.matrices()
        if resolve(ctx.config.index, pool_rows(ctx.pool), pm.width()) == "ivf":
            space = binary_space(pm, o.active_threshold)
            p = simscale_ivf(space, ctx.n, o.sim_threshold, o.simscale_order, ctx.config.seed)
            ctx.cache["index"] = p.info["index"]
            raw = Vectors(pm.store) if isinstance(pm.store, Store) and pm._codes is None else Vectors(pm.codes())
            p.features = own_features(raw.rows(p.rows), np.arange(len(p.rows)), ctx.config.top_features)
            return p
        X = pm.codes()
        p = simscale(X, ctx.n, o.active_threshold, o.sim_threshold, o.simscale_order, ctx.config.seed)
        p.features = own_features(X, p.rows, ctx.config.top_features)
        return p


class ExactKept:
    """The kept samples' active sets, compared with a block of visited samples by one sparse product."""

    def __init__(self) -> None:
        self.kept_T: sp.csr_matrix | None = None  # (F, K) binary
        self.sizes = np.zeros(0)

    def best(self, Bb: sp.csr_matrix, sb: np.ndarray) -> np.ndarray:
        """Per row of the binary block ``Bb`` (active-set sizes ``sb``), its largest Jaccard similarity to the
        kept rows; 0 when nothing is kept yet."""
        if self.kept_T is None:
            return np.zeros(Bb.shape[0])
        return _max_jaccard(Bb, sb, self.kept_T, self.sizes)

    def add(self, Bk: sp.csr_matrix, sk: np.ndarray) -> None:
        add = Bk.T.tocsr()
        self.kept_T = add if self.kept_T is None else sp.hstack([self.kept_T, add], format="csr")
        self.sizes = np.concatenate([self.sizes, sk])


def _max_jaccard(Bb: sp.csr_matrix, sb: np.ndarray, kept_T: sp.csr_matrix, kept_sizes: np.ndarray) -> np.ndarray:
    inter = (Bb @ kept_T).tocsr()
    sim = inter.copy()
    denom = sb[np.repeat(np.arange(Bb.shape[0]), np.diff(inter.indptr))] + kept_sizes[inter.indices] - inter.data
    sim.data = np.where(denom > 0, inter.data / np.where(denom > 0, denom, 1), 0.0)
    return np.asarray(sim.max(axis=1).toarray()).ravel() if sim.nnz else np.zeros(Bb.shape[0])


def simscale(
    X: sp.csr_matrix | None,
    n: int,
    threshold: float = 0.0,
    sim_threshold: float = 0.5,
    order: str = "features",
    seed: int = 0,
    block: int = 2048,
    *,
    sizes: np.ndarray | None = None,
    rows_of: Any = None,
    kept: Any = None,
) -> Picked:
    """SAE-SimScale: keep samples in visit order unless Jaccard(active sets) to a kept one > ``sim_threshold``.

    Score = 1 − the largest similarity to a previously kept sample (1 for the first). Fewer than ``n`` rows
    come back when the pool runs out of sufficiently dissimilar samples (logged). Each block of visited rows is
    compared with the kept ones through ``kept`` (:class:`ExactKept` by default, :class:`IndexedKept` at scale)
    and with itself by one sparse product; ``rows_of``/``sizes`` read the binary rows and their active-set sizes
    when ``X`` is not given (a store streamed by row).
    """
    if X is not None:
        B = binarize_codes(X, threshold)
        sizes, rows_of = np.diff(B.indptr).astype(np.float64), lambda r: B[r]
    N = len(sizes)
    kept = kept or ExactKept()
    visit = np.lexsort((np.arange(N), -sizes)) if order == "features" else np.random.default_rng(seed).permutation(N)
    rows: list[int] = []
    scores: list[float] = []
    bar = tqdm(total=N, desc="simscale", disable=N < 20_000, leave=False)
    for a in range(0, N, block):
        vb = visit[a : a + block]
        Bb, sb = rows_of(vb), sizes[vb]
        max_kept = kept.best(Bb, sb)
        inner = (Bb @ Bb.T).toarray()
        denom = sb[:, None] + sb[None, :] - inner
        J = np.where(denom > 0, inner / np.where(denom > 0, denom, 1), 0.0)
        new_local: list[int] = []
        for i in range(len(vb)):
            if max_kept[i] > sim_threshold:
                continue
            m = float(J[i, new_local].max()) if new_local else 0.0
            if m > sim_threshold:
                continue
            new_local.append(i)
            rows.append(int(vb[i]))
            scores.append(1.0 - max(m, float(max_kept[i])))
            if len(rows) >= n:
                break
        bar.update(len(vb))
        if len(rows) >= n:
            break
        if new_local:
            kept.add(Bb[new_local], sb[new_local])
    bar.close()
    if len(rows) < n:
        log.warning("simscale kept %d of the %d requested: no other sample is below similarity %.2f to the kept "
                    "ones", len(rows), n, sim_threshold)
    return Picked(np.asarray(rows, np.int64), np.asarray(scores), None,
                  {"visited": int(min(N, a + block)), "kept": len(rows)})


EXACT_KEPT = 4096
""":class:`IndexedKept` compares visited rows with every kept row by sparse products up to this many kept rows."""
PROPOSALS = 32
""":class:`IndexedKept`: kept rows the index proposes per visited row (their Jaccard is computed exactly)."""


class IndexedKept:
    """The kept samples in an IVF index of their own (trained on a sample of the pool, with its sketch), so a
    visited row is compared with the :data:`PROPOSALS` kept rows nearest by cosine instead of all of them; their
    Jaccard is exact. Jaccard ``J > t`` implies cosine ``> 2t/(1+t)`` for binary vectors, and the kept rows are
    pairwise dissimilar, so a kept row too similar to a visited one ranks among its nearest kept rows. The kept
    active sets are held in memory (one growing CSR); the first :data:`EXACT_KEPT` are compared exactly."""

    def __init__(self, space: Any, expected: int, config: IndexConfig) -> None:
        self.index = empty_ivf(space.vectors, expected, config)
        self.rows = GrowingRows(space.width)
        self.sizes = np.zeros(0)
        self.proposed = 0

    def best(self, Bb: sp.csr_matrix, sb: np.ndarray) -> np.ndarray:
        count = len(self.sizes)
        if count == 0:
            return np.zeros(Bb.shape[0])
        K = self.rows.matrix()
        if count <= EXACT_KEPT:
            return _max_jaccard(Bb, sb, K.T.tocsr(), self.sizes)
        _, cand = self.index.faiss_index.search(self.index.prepare(Bb), min(PROPOSALS, count))
        qi, ci = np.nonzero(cand >= 0)
        kr = cand[qi, ci]
        self.proposed += len(kr)
        inter = row_dots(Bb[qi], K[kr])
        union = sb[qi] + self.sizes[kr] - inter
        out = np.zeros(Bb.shape[0])
        np.maximum.at(out, qi, np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0))
        return out

    def add(self, Bk: sp.csr_matrix, sk: np.ndarray) -> None:
        self.rows.append(Bk)
        self.sizes = np.concatenate([self.sizes, sk])
        self.index.faiss_index.add(self.index.prepare(Bk))  # FAISS numbers them in kept order

    def audit(self, count: int, threshold: float, seed: int) -> dict[str, Any]:
        """Of ``count`` sampled kept rows past the first :data:`EXACT_KEPT`, how many an exact comparison with
        every row kept before them would have dropped (the index's misses)."""
        K, total = self.rows.matrix(), len(self.sizes)
        if total <= EXACT_KEPT:
            return {"audited": 0, "missed": 0}
        pick = np.sort(np.random.default_rng(seed).choice(np.arange(EXACT_KEPT, total), min(count, total - EXACT_KEPT),
                                                          replace=False))
        Kp_T, best = K[pick].T.tocsr(), np.zeros(len(pick))
        for a in range(0, int(pick.max()), 65_536):  # every earlier kept row, a slice of rows at a time
            inter = (K[a : a + 65_536] @ Kp_T).toarray()
            union = self.sizes[a : a + 65_536, None] + self.sizes[pick][None, :] - inter
            J = np.where(np.arange(a, a + inter.shape[0])[:, None] < pick[None, :], inter / np.maximum(union, 1e-12), 0)
            best = np.maximum(best, J.max(axis=0))
        missed = int(np.sum(best > threshold))
        return {"audited": int(len(pick)), "missed": int(missed)}


class GrowingRows:
    """Rows appended block by block into capacity-doubling buffers, viewed as one CSR without copying."""

    def __init__(self, width: int) -> None:
        self.width, self.n, self.nnz = width, 0, 0
        self.indptr = np.zeros(1024, np.int64)
        self.indices = np.zeros(1 << 16, np.int32)
        self.data = np.zeros(1 << 16, np.float32)

    def append(self, X: sp.csr_matrix) -> None:
        X = sp.csr_matrix(X)
        m, z = X.shape[0], X.nnz
        while self.n + m + 1 > len(self.indptr):
            self.indptr = np.concatenate([self.indptr, np.zeros(len(self.indptr), np.int64)])
        while self.nnz + z > len(self.indices):
            self.indices = np.concatenate([self.indices, np.zeros(len(self.indices), np.int32)])
            self.data = np.concatenate([self.data, np.zeros(len(self.data), np.float32)])
        self.indptr[self.n + 1 : self.n + m + 1] = self.nnz + X.indptr[1:]
        self.indices[self.nnz : self.nnz + z] = X.indices
        self.data[self.nnz : self.nnz + z] = X.data
        self.n, self.nnz = self.n + m, self.nnz + z

    def matrix(self) -> sp.csr_matrix:
        return sp.csr_matrix((self.data[: self.nnz], self.indices[: self.nnz], self.indptr[: self.n + 1]),
                             shape=(self.n, self.width), copy=False)


def simscale_ivf(space: Any, n: int, sim_threshold: float = 0.5, order: str = "features", seed: int = 0,
                 block: int = 4096, config: IndexConfig | None = None) -> Picked:
    """SimScale over a large pool: the visited rows are read from the store block by block, and compared with
    the kept ones through an index of the kept rows alone (:class:`IndexedKept`), whose size grows with the
    budget, not the pool. An exact audit of sampled kept rows measures what the index missed."""
    import faiss

    config = config or IndexConfig()
    sizes = np.concatenate([np.diff(b.indptr) for _, b in space.vectors.blocks()]).astype(np.float64)
    kept = IndexedKept(space, n, config)
    faiss.extract_index_ivf(kept.index.faiss_index).nprobe = int(config.nprobe)
    p = simscale(None, n, 0.0, sim_threshold, order, seed, block, sizes=sizes, rows_of=space.vectors.rows, kept=kept)
    audit = kept.audit(AUDIT, sim_threshold, seed)
    if audit["audited"] and audit["missed"]:
        log.warning("simscale: %d of %d audited kept samples had a kept sample above similarity %.2f that the index "
                    "did not propose", audit["missed"], audit["audited"], sim_threshold)
    p.info["index"] = {"path": "ivf", "kind": "ivf", "over": "kept samples", **kept.index.info,
                       "nprobe": int(config.nprobe), "proposals": PROPOSALS, "proposed": int(kept.proposed), **audit}
    return p


AUDIT = 256
"""Kept rows :func:`simscale_ivf` checks exactly against every earlier kept row (its recall measurement)."""
