"""Row vectors as selection compares them: unit-norm rows, and a source (array or store) streamed in blocks.

Used by the FAISS index (:mod:`mona.index`) and by selection's similarity code alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from mona.store import DENSE_MODES, Store


def normalize_rows(x: sp.csr_matrix | np.ndarray) -> sp.csr_matrix | np.ndarray:
    """L2-normalise rows (zero rows stay zero), float32."""
    if sp.issparse(x):
        x = sp.csr_matrix(x, dtype=np.float32)
        counts = np.diff(x.indptr)
        squares = np.zeros(x.shape[0])
        filled = counts > 0  # reduceat over the non-empty rows' starts (an empty segment would read its neighbour)
        if filled.any():
            squares[filled] = np.add.reduceat(np.square(x.data, dtype=np.float64), x.indptr[:-1][filled])
        norms = np.sqrt(squares)
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(np.float32)
        data = np.repeat(scale, counts)
        data *= x.data
        return sp.csr_matrix((data, x.indices.copy(), x.indptr.copy()), shape=x.shape)
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def dense(x: Any) -> np.ndarray:
    """Contiguous float32 rows (a sparse block densified)."""
    return np.ascontiguousarray(x.toarray() if sp.issparse(x) else x, dtype=np.float32)



def count_sketch(width: int, dims: int, seed: int, mass: np.ndarray | None = None) -> np.ndarray:
    """(2, width) float32: a target dimension and a sign for every feature.

    Without ``mass``, every feature is hashed to a random dimension with a random sign (a count sketch). With
    ``mass`` (each feature's share of the squared norm in a sample of rows), the heaviest features first get a
    dimension each and only the rest are hashed into the remaining ones: a few features carrying most of the
    norm (the frequent features of pooled SAE codes) then no longer collide, and inner products keep their
    error from the light features alone. The number of dedicated dimensions ``h`` minimises the estimated error
    variance, (mass left to hash)² / (dims − h), over ``h`` in 0 .. 3/4 of ``dims``."""
    rng = np.random.default_rng(seed)
    dim, sign = rng.integers(0, dims, width), rng.choice([-1.0, 1.0], width)
    if mass is not None and dims > 1:
        order = np.argsort(-np.asarray(mass, np.float64), kind="stable")
        share = np.asarray(mass, np.float64)[order] / max(float(np.sum(mass)), 1e-30)
        h = np.arange(min(3 * dims // 4, width) + 1)
        tail = 1.0 - np.concatenate([[0.0], np.cumsum(share)])[h]
        heavy = int(h[np.argmin(np.maximum(tail, 0.0) ** 2 / (dims - h))])
        heavy = int(np.count_nonzero(share[:heavy]))  # features never seen are hashed
        dim = rng.integers(0, dims - heavy, width)  # the light features share dims [0, dims - heavy)
        dim[order[:heavy]] = np.arange(dims - heavy, dims)
        sign[order[:heavy]] = 1.0
    return np.stack([dim, sign]).astype(np.float32)


def sketch(x: sp.csr_matrix, projection: np.ndarray, dims: int) -> np.ndarray:
    """(n, dims) float32 count-sketch of sparse rows: feature ``f`` adds ``sign[f]·x_f`` to dimension ``dim[f]``.
    A Johnson–Lindenstrauss-type projection (inner products are preserved in expectation) computed in O(nnz)
    from the sparse rows, where a dense random projection would cost O(nnz·dims)."""
    dim, sign = projection[0].astype(np.int32), projection[1]
    x = sp.csr_matrix(x, dtype=np.float32)
    out = sp.csr_matrix((x.data * sign[x.indices], dim[x.indices], x.indptr), shape=(x.shape[0], dims))
    return np.ascontiguousarray(out.toarray(), np.float32)  # toarray adds up the features sharing a dimension


def row_dots(A: Any, B: Any) -> np.ndarray:
    """Row-wise dot products of two equally long stacks of rows (sparse or dense)."""
    if sp.issparse(A) or sp.issparse(B):  # a sparse side keeps the product sparse (never densified)
        S, D = (A, B) if sp.issparse(A) else (B, A)
        return np.asarray(sp.csr_matrix(S).multiply(D).sum(axis=1), np.float64).ravel()
    return np.einsum("ij,ij->i", dense(A), dense(B)).astype(np.float64)


@dataclass
class Vectors:
    """Row vectors an index is built over: streamed in blocks to build it, gathered by row to re-rank.

    ``source`` is a CSR matrix, a dense array, or a store (read shard by shard through its memory maps);
    ``transform`` maps a block of raw rows to the compared vectors (feature weights, binarising), row-wise."""

    source: Any
    transform: Callable[[Any], Any] | None = None
    block: int = 65_536

    @property
    def n(self) -> int:
        return int(self.source.n if isinstance(self.source, Store) else self.source.shape[0])

    @property
    def width(self) -> int:
        return int(self.source.n_features if isinstance(self.source, Store) else self.source.shape[1])

    @property
    def sparse(self) -> bool:
        if isinstance(self.source, Store):
            return self.source.mode not in DENSE_MODES
        return sp.issparse(self.source)

    def _t(self, x: Any) -> Any:
        return self.transform(x) if self.transform is not None else x

    def blocks(self) -> Iterator[tuple[int, Any]]:
        """(first row, block) in row order: CSR blocks for sparse vectors, float32 arrays for dense ones."""
        if isinstance(self.source, Store):
            if self.source.mode in DENSE_MODES:
                for start, arrays in self.source.iter_shards():
                    yield start, self._t(np.asarray(arrays["dense"], np.float32))
                return
            for start, codes in self.source.iter_codes():
                for a, block in _split(codes, self.block):
                    yield start + a, self._t(block)
            return
        for a in range(0, self.n, self.block):
            yield a, self._t(self.source[a : a + self.block])

    def rows(self, rows: np.ndarray) -> Any:
        """The vectors of ``rows`` (in that order)."""
        if isinstance(self.source, Store):
            x = self.source.rows(rows)
            return self._t(x.toarray() if not self.sparse else x)
        return self._t(self.source[np.asarray(rows, np.int64)])

    def nbytes(self) -> int:
        """Bytes :meth:`all` would take in memory (float32 values, int32 feature ids for sparse rows)."""
        if isinstance(self.source, Store):
            if self.source.mode in DENSE_MODES:
                return self.n * self.width * 4
            return int(sum(int(s.get("nnz", 0)) for s in self.source.manifest.get("shards", []))) * 8 + self.n * 8
        x = self.source
        return int(x.data.nbytes + x.indices.nbytes + x.indptr.nbytes) if sp.issparse(x) else int(np.asarray(x).nbytes)

    def all(self) -> Any:
        """Every vector at once (small sources only)."""
        parts = [b for _, b in self.blocks()]
        if not parts:
            return np.zeros((0, self.width), np.float32)
        return sp.vstack(parts, format="csr") if sp.issparse(parts[0]) else np.concatenate(parts)


def _split(x: Any, size: int) -> Iterator[tuple[int, Any]]:
    for a in range(0, x.shape[0], size):
        yield a, x[a : a + size]


def as_vectors(source: Any) -> Vectors:
    return source if isinstance(source, Vectors) else Vectors(source)
