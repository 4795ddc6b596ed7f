"""The pool's representations as selection methods compare them, computed once per selection and shared.

SAE codes (binarised, feature-weighted, contrasted or mapped through the SAE decoder, as the method's options
say) and dense vectors (centred and standardised over the pool). Methods read their options through
:class:`PoolMatrices`; it never decides which method runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import scipy.sparse as sp

from mona.errors import ArtifactMismatch, MonaError
from mona.select import stream
from mona.select.inputs import stack_codes
from mona.select.similarity import row_norms
from mona.vectors import normalize_rows

log = logging.getLogger(__name__)

#: Representation settings and their values for methods whose options lack them.
DEFAULTS: dict[str, Any] = {
    "similarity": "jaccard",
    "aggregate": "prototype",
    "binarize": False,
    "active_threshold": 0.0,
    "feature_weights": "none",
    "max_feature_share": 1.0,
    "max_target_share": 1.0,
    "contrast": False,
    "center": True,
    "standardize": True,
}

@dataclass
class PoolMatrices:
    """Pool representations computed once and shared by every target set."""

    store: Any
    options: Any = None
    """The method's options; the representation settings it has (``similarity``, ``binarize``,
    ``active_threshold``, ``feature_weights``, ``max_feature_share``, ``contrast``, ``center``,
    ``standardize``) apply, the others keep their defaults (:data:`DEFAULTS`)."""
    _codes: sp.csr_matrix | None = None
    _weights: np.ndarray | None = None
    _weighted: sp.csr_matrix | None = None
    _code_mean: np.ndarray | None = None
    _dense: np.ndarray | None = None
    _mean: np.ndarray | None = None
    _scale: np.ndarray | None = None
    sae: Any = None
    """The SAE that made the codes, for ``similarity="decoder"``: a ``mona.saes.LoadedSAE``, an sae-lens SAE, a
    spec for :func:`mona.saes.load_sae`, or its (F, d) decoder matrix; default: the one the pool manifest names."""
    _decoder: np.ndarray | None = None
    _decoded: np.ndarray | None = None
    _decoded_norms: np.ndarray | None = None
    _dec_mean: np.ndarray | None = None
    _dec_scale: np.ndarray | None = None
    _weighted_mean: np.ndarray | None = None
    boost: np.ndarray | None = None
    """(F,) multipliers of named features (``boost_features``), applied with the feature weights."""

    def __post_init__(self) -> None:
        given = {k: getattr(self.options, k) for k in DEFAULTS if hasattr(self.options, k)}
        self.config = SimpleNamespace(**{**DEFAULTS, **given})

    def codes(self) -> sp.csr_matrix:
        if self._codes is None:
            self._codes = stack_codes([self.store], self.config.binarize, self.config.active_threshold)
        return self._codes

    def feature_weights(self) -> np.ndarray | None:
        """(F,) per-feature weights for comparing codes (``feature_weights``, ``max_feature_share``, boosted
        features), or None when every weight is 1."""
        cfg = self.config
        if cfg.feature_weights == "none" and cfg.max_feature_share >= 1.0 and self.boost is None:
            return None
        if self._weights is None:
            df, n = self.feature_counts()
            w = np.ones(len(df))
            if cfg.feature_weights == "idf":
                w = np.log((1.0 + n) / (1.0 + df)) + 1.0
            if cfg.max_feature_share < 1.0:
                w[df > cfg.max_feature_share * n] = 0.0
            if self.boost is not None:
                w = w * self.boost
            self._weights = w.astype(np.float32)
        return self._weights

    def width(self) -> int:
        """Number of features of the pool's codes (from a store's manifest when the codes are not loaded)."""
        if self._codes is None and hasattr(self.store, "iter_codes"):
            return int(self.store.n_features)
        return int(self.codes().shape[1])

    def feature_counts(self) -> tuple[np.ndarray, int]:
        """(F,) in how many pool samples each feature is active, and the pool size; a store's shards are streamed
        when its codes are not loaded."""
        cfg = self.config
        if self.streams():
            return stream.feature_counts(self.store, cfg.active_threshold, cfg.binarize), int(self.store.n)
        X = self.codes()
        return np.bincount(X.indices[X.data > cfg.active_threshold], minlength=X.shape[1]).astype(np.float64), \
            X.shape[0]

    def streams(self) -> bool:
        """Whether the pool is a store on disk whose codes are not loaded (its passes then run on the shards)."""
        from mona.store import Store

        return self._codes is None and isinstance(self.store, Store) and self.store.mode == "sae"

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
            cfg = self.config
            if self.streams():  # a store's shards, transformed as weighted_codes() transforms them
                mean = stream.mean_direction(self.store, self.feature_weights(), cfg.binarize, cfg.active_threshold)
            else:
                X = self.weighted_codes()
                mean = np.asarray(normalize_rows(X).sum(axis=0), np.float64).ravel() / max(X.shape[0], 1)
            self._code_mean = mean.astype(np.float32)
        return self._code_mean

    def targets(self, group: list[Any]) -> tuple[sp.csr_matrix | np.ndarray, np.ndarray]:
        """A target set's (m, F) codes and (F,) prototype exactly as ``mona`` scores them against
        :meth:`weighted_codes`: feature weights applied; under ``contrast`` the rows become unit-normalised offsets
        from the pool's mean direction (dense) and the prototype is shifted alike. Under ``similarity="decoder"``
        they are the code-space directions of :meth:`to_codes` (dense), one per target sample and one for the
        prototype."""
        cfg = self.config
        T = stack_codes(group, cfg.binarize, cfg.active_threshold)
        width = self.width()
        if T.shape[1] != width:
            raise MonaError(f"target codes have {T.shape[1]} features but pool codes have {width}")
        w = self.feature_weights()
        if w is not None:
            T = reweight(T, w)
        if cfg.similarity == "decoder":
            Tz = self.decode(T)
            return self.to_codes(Tz), self.to_codes(Tz.mean(axis=0, keepdims=True))[0]
        shift = self.code_mean() if cfg.contrast else None
        t = prototype(T, cfg.similarity, shift)
        if shift is not None:
            T = np.asarray(normalize_rows(T).toarray(), dtype=np.float32) - shift
        return T, t

    def decoder(self) -> np.ndarray:
        """(F, d) the SAE's decoder rows (``W_dec``), for ``similarity="decoder"``: from the SAE given
        (:func:`mona.saes.resolve_sae` accepts every form, or a bare (F, d) matrix) or the one the pool's manifest
        names, checked against the manifest's weights hash."""
        if self._decoder is None:
            ident = (getattr(self.store, "manifest", None) or {}).get("sae")
            W = self.sae if isinstance(self.sae, np.ndarray) else self._sae(ident).sae.W_dec
            W = np.asarray(W.detach().float().cpu().numpy() if hasattr(W, "detach") else W, dtype=np.float32)
            width = self.codes().shape[1]
            if W.shape[0] != width:
                raise MonaError(f"the SAE has {W.shape[0]} features but the pool codes have {width}")
            self._decoder = W
        return self._decoder

    def _sae(self, ident: Any) -> Any:
        from mona.saes import resolve_sae, sae_for_identity

        if self.sae is None:
            if not isinstance(ident, dict):
                raise MonaError("similarity='decoder' needs the SAE that made the codes, and the pool store names "
                                "none; pass it (sae= in Python, --sae for mona select)")
            return sae_for_identity(ident)
        sae = resolve_sae(self.sae)
        want = ident.get("weights_hash") if isinstance(ident, dict) else None
        if want and sae.identity.weights_hash != want:
            raise ArtifactMismatch(f"the SAE given has weights {sae.identity.weights_hash} but the pool store's "
                                   f"codes come from {want}")
        return sae

    def decoded(self) -> np.ndarray:
        """(n, d) the pool's :meth:`weighted_codes` mapped through the SAE decoder (``codes @ W_dec``), centred
        on the pool mean and divided by each dimension's standard deviation over the pool: the vectors that
        ``similarity="decoder"`` compares by cosine."""
        if self._decoded is None:
            W = self.decoder()
            X = self.weighted_codes()
            Y = np.empty((X.shape[0], W.shape[1]), np.float32)
            for a in range(0, X.shape[0], 65536):
                Y[a : a + 65536] = X[a : a + 65536] @ W
            self._decoded, self._dec_mean, self._dec_scale = centre_scale(Y)
            self._decoded_norms = row_norms(self._decoded)
            self._weighted_mean = np.asarray(X.mean(axis=0), dtype=np.float64).ravel()
        return self._decoded

    def decoded_norms(self) -> np.ndarray:
        """(n,) norms of the rows of :meth:`decoded`."""
        self.decoded()
        return self._decoded_norms

    def decode(self, T: sp.csr_matrix) -> np.ndarray:
        """(m, d) weighted target codes in the pool's decoded coordinates (as :meth:`decoded`), unit rows."""
        self.decoded()
        Y = (np.asarray(T @ self.decoder(), np.float32) - self._dec_mean) * self._dec_scale
        return np.asarray(normalize_rows(Y), np.float32)

    def to_codes(self, V: np.ndarray) -> np.ndarray:
        """(m, F) code-space directions of decoded-space vectors (m, d): ``g = W_dec (s ⊙ v / ‖v‖)`` with ``s``
        the pool's per-dimension 1/sd, so that for a pool row ``x`` (weighted codes) the decoder similarity is
        ``cos(z, v) = (x·g + offset(g)) / ‖z‖`` (``z`` its :meth:`decoded` row, ``offset`` :meth:`code_offset`)."""
        self.decoded()
        V = np.asarray(V, np.float64)
        norms = np.linalg.norm(V, axis=1, keepdims=True)
        V = np.where(norms > 0, V / np.where(norms > 0, norms, 1.0), 0.0)
        return np.asarray((V * self._dec_scale) @ self.decoder().T.astype(np.float64), np.float32)

    def code_offset(self, g: np.ndarray) -> np.ndarray | float:
        """The centring term of the decoder similarity's numerator: ``−x̄·g`` with ``x̄`` the pool's mean weighted
        code (the pool mean's own part; the same for every pool row)."""
        self.decoded()
        return -(np.asarray(g, np.float64) @ self._weighted_mean)

    def dense(self) -> np.ndarray:
        """(n, d) dense pool vectors, centred on the pool mean (``center``) and divided by the pool's
        per-dimension standard deviation (``standardize``)."""
        if self._dense is None:
            x = np.asarray(self.store.dense(), dtype=np.float32)
            self._dense, self._mean, self._scale = centre_scale(x, self.config.center, self.config.standardize)
        return self._dense

    def normalize(self, t: np.ndarray) -> np.ndarray:
        """(m, d) target vectors in the pool's coordinates (same centring and scaling as :meth:`dense`)."""
        self.dense()
        if self._mean is not None:
            t = t - self._mean
        return t * self._scale if self._scale is not None else t


def centre_scale(
    x: np.ndarray, center: bool = True, standardize: bool = True
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(n, d) ``x`` minus its column mean (``center``) and divided by its column standard deviation
    (``standardize``; columns without spread, or a single row, keep scale 1), with the (d,) mean and 1/sd used
    (None where not applied)."""
    mean = scale = None
    if center:
        mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
        x = x - mean
    if standardize:
        sd = x.std(axis=0, dtype=np.float64)
        scale = np.where(sd > 0, 1.0 / np.where(sd > 0, sd, 1.0), 1.0).astype(np.float32)
        x = x * scale
    return x, mean, scale


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
    X = sp.csr_matrix(X, copy=False)
    w = np.asarray(w, np.float32)
    data = w[X.indices]  # one temporary: the gathered weights, multiplied in place
    data *= X.data
    out = sp.csr_matrix((data, X.indices.copy(), X.indptr.copy()), shape=X.shape)
    if not np.all(w != 0):
        out.eliminate_zeros()
    return out
