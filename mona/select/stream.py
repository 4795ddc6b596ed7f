"""Passes over a store's SAE codes straight on its shards' arrays, two shards at a time.

Selection's statistics over a pool on disk (how many samples each feature is active in, the mean direction) and
prototype scores are each one pass over the shards' memory-mapped ``indptr`` / ``indices`` / ``values``. Each
shard becomes a CSR matrix over those arrays once per pass (values converted to float32 by table lookup); feature
weights enter the products (``X @ (w ⊙ t)`` for dot products, ``X² @ w²`` for norms, ``(Xᵀ r) ⊙ w`` for column
sums) rather than a reweighted copy of the codes. Shards are processed by a small thread pool (scipy's and
numpy's kernels release the GIL); results come back in shard order.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from mona.select.similarity import check_nonnegative, segment_sums

R = TypeVar("R")
WORKERS = 2
"""Shards processed at once (each holds one shard's float32 values and products in memory)."""


_F16 = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
"""float32 value of every float16 bit pattern: a table lookup converts stored codes ~3x faster than ``astype``."""


def as_float32(values: np.ndarray) -> np.ndarray:
    """Stored code values (float16 or float32, possibly memory-mapped) as a float32 array."""
    if values.dtype == np.float16:
        return _F16[np.asarray(values).view(np.uint16)]
    return np.asarray(values, np.float32)


@dataclass
class Shard:
    """One shard's codes as selection compares them: ``X`` (rows, F) float32 CSR after binarising, and the
    feature weights that multiply its columns (applied inside each product, never to a copy of the codes)."""

    start: int
    X: sp.csr_matrix
    weights: np.ndarray | None = None

    def norms(self) -> np.ndarray:
        """(rows,) L2 norm of every (weighted) row."""
        X = self.X
        if self.weights is None:
            return np.sqrt(segment_sums(np.square(X.data, dtype=np.float64), X.indptr))
        squared = sp.csr_matrix((np.square(X.data), X.indices, X.indptr), shape=X.shape)
        return np.sqrt(np.maximum(np.asarray(squared @ np.square(self.weights), np.float64), 0.0))

    def dots(self, t: np.ndarray) -> np.ndarray:
        """(rows,) every (weighted) row's dot product with the dense vector ``t``."""
        t = t if self.weights is None else t * self.weights
        return np.asarray(self.X @ np.asarray(t, np.float32), np.float64)

    def column_sums(self, r: np.ndarray) -> np.ndarray:
        """(F,) Σ_i r_i · x_i over the (weighted) rows ``x_i``."""
        out = np.asarray(self.X.T @ np.asarray(r, np.float32), np.float64)
        return out if self.weights is None else out * self.weights

    def weighted_values(self) -> np.ndarray:
        """The non-zeros' values after weighting, in CSR order."""
        X = self.X
        return X.data if self.weights is None else X.data * self.weights[X.indices]


def map_shards(store: Any, fn: Callable[[Shard], R], *, binarize: bool = False, threshold: float = 0.0,
               weights: np.ndarray | None = None, desc: str | None = None) -> list[R]:
    """``fn`` applied to every shard of ``store`` (an ``sae`` store), in shard order.

    Values are binarised (``> threshold`` → 1, else 0) when asked; ``weights[feature]`` multiply them inside the
    :class:`Shard`'s products. Entries that become 0 stay in place (they add nothing to sums, products or norms)."""
    starts = store.shard_starts()
    width = int(store.n_features)
    w = None if weights is None else np.asarray(weights, np.float32)

    def run(k: int) -> R:
        arrays = store.shard(k)
        indptr = np.asarray(arrays["indptr"], np.int64)
        lo, hi = int(indptr[0]), int(indptr[-1])
        values = as_float32(arrays["values"][lo:hi])
        if binarize:
            values = (values > threshold).astype(np.float32)
        X = sp.csr_matrix((values, np.asarray(arrays["indices"][lo:hi], np.int32), indptr - lo),
                          shape=(len(indptr) - 1, width))
        return fn(Shard(int(starts[k]), X, w))

    shards = range(len(starts) - 1)
    bar = tqdm(total=len(shards), desc=desc, unit="shard", disable=desc is None or len(shards) < 8, leave=False)

    def tracked(k: int) -> R:
        out = run(k)
        bar.update(1)
        return out

    try:
        if WORKERS > 1 and len(shards) > 1:
            with ThreadPoolExecutor(WORKERS) as pool:
                return list(pool.map(tracked, shards))
        return [tracked(k) for k in shards]
    finally:
        bar.close()


def feature_counts(store: Any, threshold: float, binarize: bool) -> np.ndarray:
    """(F,) in how many samples each feature's code is above ``threshold`` (float64)."""
    width = int(store.n_features)

    def count(s: Shard) -> np.ndarray:
        X = s.X  # one per active entry (binarised values already are 0 or 1)
        active = X if binarize else sp.csr_matrix(((X.data > threshold).astype(np.float32), X.indices, X.indptr),
                                                  shape=X.shape)
        return np.asarray(active.T @ np.ones(X.shape[0], np.float32), np.float64)

    parts = map_shards(store, count, binarize=binarize, threshold=threshold, desc="feature counts")
    return np.sum(parts, axis=0, dtype=np.float64) if parts else np.zeros(width)


def mean_direction(store: Any, weights: np.ndarray | None, binarize: bool, threshold: float) -> np.ndarray:
    """(F,) the mean of the unit-normalised (binarised, weighted) rows (float64; zero rows count as zero)."""
    width = int(store.n_features)

    def part(s: Shard) -> np.ndarray:
        norms = s.norms()
        return s.column_sums(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0))

    parts = map_shards(store, part, binarize=binarize, threshold=threshold, weights=weights, desc="pool mean")
    total = np.sum(parts, axis=0, dtype=np.float64) if parts else np.zeros(width)
    return total / max(int(store.n), 1)


def prototype_scores(store: Any, t: np.ndarray, similarity: str, weights: np.ndarray | None, binarize: bool,
                     threshold: float) -> np.ndarray:
    """(n,) every row's cosine or weighted Jaccard to the prototype ``t``, as
    :func:`mona.select.similarity.similarity_to_vector` computes it on the (binarised, weighted) codes."""
    t32 = np.asarray(t, np.float32).ravel()
    tn = float(np.linalg.norm(t32.astype(np.float64)))
    sum_t = float(t32.sum(dtype=np.float64))

    def cosine(s: Shard) -> np.ndarray:
        den = s.norms() * tn
        return np.where(den > 0, s.dots(t32) / np.where(den > 0, den, 1.0), 0.0)

    def jaccard(s: Shard) -> np.ndarray:
        values, indptr = s.weighted_values(), s.X.indptr
        check_nonnegative(values)
        s_min = segment_sums(np.minimum(values, t32[s.X.indices]), indptr)
        s_max = segment_sums(values, indptr) + sum_t - s_min
        return np.where(s_max > 0, s_min / np.where(s_max > 0, s_max, 1.0), 0.0)

    if similarity == "jaccard":
        check_nonnegative(t32, "target codes")
    fn = jaccard if similarity == "jaccard" else cosine
    parts = map_shards(store, fn, binarize=binarize, threshold=threshold, weights=weights, desc=similarity)
    return np.concatenate(parts) if parts else np.zeros(0)
