"""``bm25`` — Okapi BM25 with the target set as one weighted query (vocabulary fitted on the pool).

score(d) = Σ_t q_t · idf_t · tf(t,d)(k1+1) / (tf(t,d) + k1(1 − b + b·|d|/avgdl)), idf_t =
ln(1 + (N − df_t + 0.5)/(df_t + 0.5)). ``prototype``: q_t = share of target samples containing t; ``max``: each
target sample is its own binary query and the best score counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mona.errors import MonaError
from mona.select.methods.base import Context, Scored, TargetMethod, target_ids
from mona.select.methods.text import TextOptions, require_texts, texts
from mona.select.similarity import segment_sums


@dataclass
class Bm25Options(TextOptions):
    """BM25's settings."""

    bm25_k1: float = 1.5
    """Term-frequency saturation."""
    bm25_b: float = 0.75
    """Length normalisation."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bm25_k1 < 0 or not 0.0 <= self.bm25_b <= 1.0:
            raise MonaError(f"bm25 needs k1 >= 0 and b in [0, 1], got k1={self.bm25_k1}, b={self.bm25_b}")


class Bm25(TargetMethod):
    name = "bm25"
    summary = "Okapi BM25 with the target set as the query"
    Options = Bm25Options
    target = "samples"
    needs_samples = True

    def score(self, ctx: Context, group: list[Any], k: int) -> Scored:
        require_texts(group, k, self.name)
        if "bm25" not in ctx.cache:
            ctx.cache["bm25"] = _index(texts(ctx.pool_samples), ctx.options.bm25_k1, ctx.options.bm25_b)
        vec, W = ctx.cache["bm25"]
        Q = vec.transform(texts(group)).tocsr()
        Q.data[:] = 1.0
        if ctx.options.aggregate == "prototype":
            q = np.asarray(Q.mean(axis=0), dtype=np.float32).ravel()
            return Scored(np.asarray(W @ q, dtype=np.float64).ravel())
        best, arg = _best_query(W, Q)
        tids = target_ids(group)
        return Scored(best.astype(np.float64), lambda rows: (None, [tids[int(arg[r])] for r in rows]))


def _index(docs: list[str], k1: float, b: float) -> tuple[Any, Any]:
    """The pool's vocabulary and its (N, V) BM25 term weights."""
    from sklearn.feature_extraction.text import CountVectorizer

    vec = CountVectorizer(dtype=np.float32)
    C = vec.fit_transform(docs).tocsr()
    N = C.shape[0]
    df = np.bincount(C.indices, minlength=C.shape[1]).astype(np.float64)
    idf = np.log1p((N - df + 0.5) / (df + 0.5))
    dl = segment_sums(C.data, C.indptr)
    avgdl = max(float(dl.mean()), 1e-9)
    norm = np.repeat(k1 * (1 - b + b * dl / avgdl), np.diff(C.indptr))
    W = C.copy()
    W.data = (C.data * (k1 + 1) / (C.data + norm) * idf[C.indices]).astype(np.float32)
    return vec, W


def _best_query(W: Any, Q: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per pool row, the best score over the target queries and which query gave it."""
    if Q.shape[0] * W.shape[0] <= 50_000_000:
        S = (W @ Q.T.tocsr()).toarray()
        arg = S.argmax(axis=1)
        return S[np.arange(S.shape[0]), arg], arg
    best = np.full(W.shape[0], -np.inf)
    arg = np.zeros(W.shape[0], np.int64)
    for j in range(Q.shape[0]):
        s = np.asarray(W @ Q.getrow(j).T.toarray()).ravel()
        better = s > best
        best[better], arg[better] = s[better], j
    return best, arg
