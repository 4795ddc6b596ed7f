"""Target-relevance scores on stores: MONA (SAE codes) and the dense hidden-state baseline.

Each scorer returns a :class:`Scored`: one score per pool row plus a function that explains chosen rows
(contributing features, best-matching target sample) without rescoring the pool.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from mona.errors import MonaError
from mona.select.config import SelectConfig
from mona.select.inputs import check_compatible, require_mode, stack_codes
from mona.select.similarity import (
    contributions,
    cosine_to_vector,
    max_similarity_to_rows,
    normalize_rows,
    similarity_to_vector,
)

log = logging.getLogger(__name__)

Explain = Callable[[np.ndarray], tuple[list[list[dict]] | None, list[str | None] | None]]


def _no_explain(rows: np.ndarray) -> tuple[None, None]:
    return None, None


@dataclass
class Scored:
    """Scores of every pool row against one target set."""

    scores: np.ndarray
    explain: Explain = _no_explain
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class PoolMatrices:
    """Pool representations computed once and shared by every target set."""

    store: Any
    config: SelectConfig
    _codes: sp.csr_matrix | None = None
    _weights: np.ndarray | None = None
    _weighted: sp.csr_matrix | None = None
    _code_mean: np.ndarray | None = None
    _dense: np.ndarray | None = None
    _mean: np.ndarray | None = None
    _scale: np.ndarray | None = None

    def codes(self) -> sp.csr_matrix:
        if self._codes is None:
            self._codes = stack_codes([self.store], self.config.binarize, self.config.active_threshold)
        return self._codes

    def feature_weights(self) -> np.ndarray | None:
        """(F,) per-feature weights for target scoring (``feature_weights``, ``max_feature_share``), or None."""
        cfg = self.config
        if cfg.feature_weights == "none" and cfg.max_feature_share >= 1.0:
            return None
        if self._weights is None:
            X = self.codes()
            active = X.data > cfg.active_threshold
            df = np.bincount(X.indices[active], minlength=X.shape[1]).astype(np.float64)
            n = X.shape[0]
            w = np.ones(X.shape[1])
            if cfg.feature_weights == "idf":
                w = np.log((1.0 + n) / (1.0 + df)) + 1.0
            if cfg.max_feature_share < 1.0:
                w[df > cfg.max_feature_share * n] = 0.0
            self._weights = w.astype(np.float32)
        return self._weights

    def weighted_codes(self) -> sp.csr_matrix:
        """(n, F) pool codes times :meth:`feature_weights` (zeroed features removed), for target scoring."""
        w = self.feature_weights()
        if w is None:
            return self.codes()
        if self._weighted is None:
            self._weighted = reweight(self.codes(), w)
        return self._weighted

    def code_mean(self) -> np.ndarray:
        """(F,) the pool's mean direction: mean of the unit-normalised rows of :meth:`weighted_codes` (what
        ``contrast`` subtracts from the target's own mean direction)."""
        if self._code_mean is None:
            unit = normalize_rows(self.weighted_codes())
            self._code_mean = np.asarray(unit.mean(axis=0), dtype=np.float32).ravel()
        return self._code_mean

    def targets(self, group: list[Any]) -> tuple[sp.csr_matrix | np.ndarray, np.ndarray]:
        """A target set's (m, F) codes and (F,) prototype exactly as ``mona`` scores them against
        :meth:`weighted_codes`: feature weights applied; under ``contrast`` the rows become unit-normalised offsets
        from the pool's mean direction (dense) and the prototype is shifted alike."""
        cfg = self.config
        T = stack_codes(group, cfg.binarize, cfg.active_threshold)
        width = self.codes().shape[1]
        if T.shape[1] != width:
            raise MonaError(f"target codes have {T.shape[1]} features but pool codes have {width}")
        w = self.feature_weights()
        if w is not None:
            T = reweight(T, w)
        shift = self.code_mean() if cfg.contrast else None
        t = prototype(T, cfg.similarity, shift)
        if shift is not None:
            T = np.asarray(normalize_rows(T).toarray(), dtype=np.float32) - shift
        return T, t

    def dense(self) -> np.ndarray:
        """(n, d) dense pool vectors, centred on the pool mean (``config.center``) and divided by the pool's
        per-dimension standard deviation (``config.standardize``)."""
        if self._dense is None:
            x = np.asarray(self.store.dense(), dtype=np.float32)
            if self.config.center:
                self._mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
                x = x - self._mean
            if self.config.standardize and len(x) > 1:
                sd = x.std(axis=0, dtype=np.float64)
                self._scale = np.where(sd > 0, 1.0 / np.where(sd > 0, sd, 1.0), 1.0).astype(np.float32)
                x = x * self._scale
            self._dense = x
        return self._dense

    def normalize(self, t: np.ndarray) -> np.ndarray:
        """(m, d) target vectors in the pool's coordinates (same centring and scaling as :meth:`dense`)."""
        self.dense()
        if self._mean is not None:
            t = t - self._mean
        return t * self._scale if self._scale is not None else t


def prototype(T: sp.csr_matrix, similarity: str, shift: np.ndarray | None = None) -> np.ndarray:
    """(F,) the target set's prototype: the mean code for Jaccard; for cosine the mean of the unit-normalised
    codes (every target sample weighs the same, whatever its norm), minus ``shift`` (``contrast``)."""
    rows = normalize_rows(T) if similarity == "cosine" else T
    t = np.asarray(rows.mean(axis=0), dtype=np.float32).ravel()
    return t - shift if shift is not None else t


def target_row(T: sp.csr_matrix | np.ndarray, j: int) -> np.ndarray:
    """(F,) row ``j`` of a target matrix from :meth:`PoolMatrices.targets` (sparse, or dense under contrast)."""
    return T[j] if isinstance(T, np.ndarray) else T.getrow(j).toarray().ravel()


def reweight(X: sp.csr_matrix, w: np.ndarray) -> sp.csr_matrix:
    """(n, F) codes with column j multiplied by ``w[j]``; entries whose weight is 0 are dropped."""
    X = sp.csr_matrix(X @ sp.diags(w.astype(np.float32)), dtype=np.float32)
    X.eliminate_zeros()
    return X


def _target_ids(group: list[Any]) -> list[str]:
    return [str(i) for s in group for i in s.ids]


def _non_empty(group: list[Any], k: int) -> None:
    if sum(len(s.ids) for s in group) == 0:
        raise MonaError(f"target set {k} is empty")


def score_mona(pool: PoolMatrices, group: list[Any], k: int) -> Scored:
    """MONA: weighted Jaccard (or cosine) of pooled SAE codes to the target prototype, or max over targets."""
    cfg = pool.config
    require_mode(pool.store, ("sae",), "mona")
    for s in group:
        require_mode(s, ("sae",), "mona", "target")
        check_compatible(pool.store, s)
    _non_empty(group, k)
    X = pool.weighted_codes()
    T, t = pool.targets(group)
    tids = _target_ids(group)
    if cfg.aggregate == "prototype":
        scores = similarity_to_vector(X, t, cfg.similarity)

        def explain(rows: np.ndarray) -> tuple[list[list[dict]], None]:
            return [_row_contrib(X, r, t, cfg) for r in rows], None

        return Scored(scores, explain, {"target_active_features": int((t > 0).sum())})
    scores, arg = max_similarity_to_rows(X, T, cfg.similarity)

    def explain_max(rows: np.ndarray) -> tuple[list[list[dict]], list[str | None]]:
        feats = [_row_contrib(X, r, target_row(T, int(arg[r])), cfg) for r in rows]
        return feats, [tids[int(arg[r])] for r in rows]

    return Scored(scores, explain_max)


def _row_contrib(X: sp.csr_matrix, r: int, t: np.ndarray, cfg: SelectConfig) -> list[dict]:
    lo, hi = X.indptr[r], X.indptr[r + 1]
    return contributions(X.indices[lo:hi], X.data[lo:hi], t, cfg.similarity, cfg.top_features)


def score_dense(pool: PoolMatrices, group: list[Any], k: int) -> Scored:
    """Cosine of the (centred, standardised) mean hidden state to the target prototype, or max over targets."""
    cfg = pool.config
    require_mode(pool.store, ("dense",), "dense")
    for s in group:
        require_mode(s, ("dense",), "dense", "target")
        check_compatible(pool.store, s)
    _non_empty(group, k)
    X = pool.dense()
    T = pool.normalize(np.concatenate([np.asarray(s.dense(), np.float32) for s in group], axis=0))
    if T.shape[1] != X.shape[1]:
        raise MonaError(f"target vectors have {T.shape[1]} dimensions but pool vectors have {X.shape[1]}")
    if cfg.aggregate == "prototype":
        return Scored(cosine_to_vector(X, T.mean(axis=0)))
    scores, arg = max_similarity_to_rows(X, T, "cosine")
    tids = _target_ids(group)
    return Scored(scores, lambda rows: (None, [tids[int(arg[r])] for r in rows]))
