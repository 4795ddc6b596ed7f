"""Similarity of sparse pooled codes to a target, computed on CSR data without densifying the pool.

Weighted Jaccard of a row ``a`` and a target vector ``t`` (both >= 0)::

    J(a, t) = Σ_k min(a_k, t_k) / Σ_k max(a_k, t_k)

``min`` is non-zero only where ``a`` is, so Σmin is a gather ``t[indices]`` and an elementwise minimum over the
row's non-zeros, and ``Σmax = Σa + Σt − Σmin``. Cost O(nnz), memory O(chunk).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import scipy.sparse as sp
from jaxtyping import Float
from tqdm.auto import tqdm

from mona.errors import MonaError
from mona.vectors import normalize_rows

log = logging.getLogger(__name__)

CHUNK_NNZ = 1 << 23  # ~8M non-zeros per chunk: ~100 MB of temporaries


def segment_sums(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Per-row sums of CSR-ordered ``values`` (empty rows give 0), as float64."""
    indptr = np.asarray(indptr)
    out = np.zeros(len(indptr) - 1, dtype=np.float64)
    nonempty = indptr[1:] > indptr[:-1]
    if nonempty.any():
        base = indptr[0]
        # reduceat sums values[start_i : start_{i+1}]; empty rows add nothing between two starts, so only the
        # non-empty rows' starts are passed (reduceat gives a wrong value for an empty segment)
        out[nonempty] = np.add.reduceat(values[: indptr[-1] - base], indptr[:-1][nonempty] - base)
    return out


def row_chunks(indptr: np.ndarray, chunk_nnz: int | None = None) -> list[tuple[int, int]]:
    """Split rows into contiguous ranges of about ``chunk_nnz`` non-zeros each (default :data:`CHUNK_NNZ`, read
    at call time)."""
    chunk_nnz = int(chunk_nnz or CHUNK_NNZ)
    n = len(indptr) - 1
    bounds = np.searchsorted(indptr, np.arange(0, indptr[-1] + chunk_nnz, chunk_nnz), side="left")
    bounds = np.unique(np.clip(np.concatenate([[0], bounds, [n]]), 0, n))
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=False) if b > a]


def _map_chunks(fn, X: sp.csr_matrix, out: np.ndarray, desc: str, workers: int = 2) -> np.ndarray:
    chunks = row_chunks(X.indptr)
    progress = tqdm(total=X.shape[0], desc=desc, unit="row", disable=len(chunks) < 4, leave=False)

    def run(ab: tuple[int, int]) -> None:
        a, b = ab
        out[a:b] = fn(a, b)
        progress.update(b - a)

    if workers > 1 and len(chunks) > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, chunks))
    else:
        for ab in chunks:
            run(ab)
    progress.close()
    return out


def check_nonnegative(X: sp.csr_matrix | np.ndarray, what: str = "codes") -> None:
    data = X.data if sp.issparse(X) else X
    if data.size and float(data.min()) < 0:
        raise MonaError(f"weighted Jaccard needs non-negative {what}; use similarity='cosine' for signed vectors")


def jaccard_to_vector(X: sp.csr_matrix, t: Float[np.ndarray, " F"]) -> Float[np.ndarray, " n"]:
    """Weighted Jaccard of every row of ``X`` (n, F) to one non-negative vector ``t`` (F,)."""
    X = sp.csr_matrix(X, copy=False)
    t = np.asarray(t, dtype=np.float32).ravel()
    if t.shape[0] != X.shape[1]:
        raise MonaError(f"target vector has {t.shape[0]} features but the pool has {X.shape[1]}")
    sum_t = float(t.sum(dtype=np.float64))
    indptr, indices, data = X.indptr, X.indices, X.data

    def chunk(a: int, b: int) -> np.ndarray:
        lo, hi = indptr[a], indptr[b]
        vals = data[lo:hi]
        mins = np.minimum(vals, t[indices[lo:hi]])
        local = indptr[a : b + 1] - lo
        s_min = segment_sums(mins, local)
        s_a = segment_sums(vals, local)
        s_max = s_a + sum_t - s_min
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(s_max > 0, s_min / np.where(s_max > 0, s_max, 1.0), 0.0)

    return _map_chunks(chunk, X, np.empty(X.shape[0], np.float64), "jaccard")


def row_norms(X: sp.csr_matrix | np.ndarray) -> np.ndarray:
    if sp.issparse(X):
        X = sp.csr_matrix(X, copy=False)
        return np.sqrt(segment_sums(X.data.astype(np.float64) ** 2, X.indptr))
    return np.linalg.norm(np.asarray(X, dtype=np.float64), axis=1)


def cosine_to_vector(X: sp.csr_matrix | np.ndarray, t: Float[np.ndarray, " F"]) -> Float[np.ndarray, " n"]:
    """Cosine of every row of ``X`` to ``t`` (0 for all-zero rows)."""
    t = np.asarray(t, dtype=np.float64).ravel()
    tn = float(np.linalg.norm(t))
    if sp.issparse(X):
        X = sp.csr_matrix(X, copy=False)
        t32 = t.astype(np.float32)

        def chunk(a: int, b: int) -> np.ndarray:
            lo, hi = X.indptr[a], X.indptr[b]
            vals, local = X.data[lo:hi], X.indptr[a : b + 1] - lo
            dots = segment_sums(vals * t32[X.indices[lo:hi]], local)
            norms = np.sqrt(segment_sums(vals * vals, local)) * tn
            return np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0)

        return _map_chunks(chunk, X, np.empty(X.shape[0], np.float64), "cosine")
    dots = np.asarray(X, dtype=np.float64) @ t
    norms = row_norms(X) * tn
    return np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0)


def similarity_to_vector(X: Any, t: np.ndarray, similarity: str) -> np.ndarray:
    if similarity == "jaccard":
        check_nonnegative(X)
        check_nonnegative(t, "target codes")
        return jaccard_to_vector(X, t)
    return cosine_to_vector(X, t)


def max_similarity_to_rows(X: Any, T: Any, similarity: str) -> tuple[np.ndarray, np.ndarray]:
    """Max over target rows of the similarity of each pool row, and the arg-max target row (first on ties)."""
    m = T.shape[0]
    if similarity == "cosine":
        return _max_cosine(X, T)
    check_nonnegative(X)
    check_nonnegative(T, "target codes")
    T = sp.csr_matrix(T)
    best = np.full(X.shape[0], -np.inf)
    arg = np.zeros(X.shape[0], np.int64)
    for j in tqdm(range(m), desc="max-jaccard", unit="target", disable=m < 8, leave=False):
        s = jaccard_to_vector(X, T.getrow(j).toarray().ravel())
        better = s > best
        best[better] = s[better]
        arg[better] = j
    return best, arg


def _max_cosine(X: Any, T: Any, block: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    Xn, Tn = normalize_rows(X), normalize_rows(T)
    if sp.issparse(Xn) and not sp.issparse(Tn) and np.count_nonzero(Tn) < 0.1 * Tn.size:
        Tn = sp.csr_matrix(Tn)  # sparse x sparse beats scipy's single-threaded sparse x dense on sparse codes
    Tt = Tn.T.tocsr() if sp.issparse(Tn) else np.ascontiguousarray(Tn.T)
    n = X.shape[0]
    best = np.empty(n, np.float64)
    arg = np.empty(n, np.int64)
    for a in tqdm(range(0, n, block), desc="max-cosine", disable=n <= 4 * block, leave=False):
        b = min(n, a + block)
        s = Xn[a:b] @ Tt
        s = s.toarray() if sp.issparse(s) else np.asarray(s)
        arg[a:b] = s.argmax(axis=1)
        best[a:b] = s[np.arange(b - a), arg[a:b]]
    return best, arg


def contributions(
    indices: np.ndarray, values: np.ndarray, t: np.ndarray, similarity: str, k: int
) -> list[dict[str, float]]:
    """Top ``k`` features of one row's similarity to ``t``, each with its share of the score.

    ``share`` is the part of the score the feature accounts for, divided by the score, so the shares of ALL
    features sum to 1 and ``share * score`` is the feature's own term: for weighted Jaccard
    ``min(a_k, t_k) / Σ_j min(a_j, t_j)``; for cosine ``a_k t_k / Σ_j a_j t_j``. Ties go to the lower feature id.
    With a contrasted target (``t`` below the pool mean on some features) a term, and its share, can be negative:
    such a feature counts against the sample; it is listed after all positive ones.
    """
    if k <= 0 or len(indices) == 0:
        return []
    tv = t[indices]
    terms = np.minimum(values, tv) if similarity == "jaccard" else values.astype(np.float64) * tv
    total = float(terms.sum(dtype=np.float64))
    if total <= 0:
        return []
    order = np.lexsort((indices, -terms))[:k]
    return [{"feature": int(indices[i]), "share": float(terms[i] / total)} for i in order if terms[i] != 0]


def activation_shares(indices: np.ndarray, values: np.ndarray, k: int) -> list[dict[str, float]]:
    """Top ``k`` features of a row by value, share = value / row total (what the sample is made of)."""
    if k <= 0 or len(indices) == 0:
        return []
    total = float(np.abs(values).sum(dtype=np.float64))
    if total <= 0:
        return []
    order = np.lexsort((indices, -values))[:k]
    return [{"feature": int(indices[i]), "share": float(abs(values[i]) / total)} for i in order if values[i] != 0]


def max_cosine_offsets(X: Any, U: sp.csr_matrix, shift: np.ndarray,
                       block: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """:func:`max_similarity_to_rows` (cosine) against the dense rows ``U_j - shift`` without forming them: ``U``
    stays sparse, so each block is one sparse x sparse product plus one mat-vec with ``shift``."""
    Un = normalize_rows(U)
    shift = np.asarray(shift, np.float32).ravel()
    Ut = Un.T.tocsr()
    norms = np.sqrt(np.maximum(np.asarray(Un.multiply(Un).sum(axis=1), np.float64).ravel()
                               - 2.0 * np.asarray(Un @ shift, np.float64).ravel() + float(shift @ shift), 0.0))
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    n = X.shape[0]
    best = np.empty(n, np.float64)
    arg = np.empty(n, np.int64)
    for a in range(0, n, block):
        b = min(n, a + block)
        Xn = normalize_rows(X[a:b])
        S = (Xn @ Ut).toarray().astype(np.float64)
        S -= np.asarray(Xn @ shift, np.float64).reshape(-1, 1)
        S *= inv
        arg[a:b] = S.argmax(axis=1)
        best[a:b] = S[np.arange(b - a), arg[a:b]]
    return best, arg
