"""Steering a selection with named SAE features: exclude or require features, boost their weight, or give the
target itself as features.

* ``exclude_features`` / ``require_features`` restrict the pool before any method picks: a sample is dropped when
  one of the excluded features is active in it (pooled code above ``steer_threshold``), or when one of the required
  ones is not. The method then sees a :class:`SubsetStore` of the remaining rows; its picks are mapped back to pool
  rows.
* ``boost_features`` multiplies the listed features' codes (pool and target alike) before similarity-based methods
  compare them (``mona``, ``mmr``, ``kcenter`` on SAE stores).
* ``target_features`` makes a target set of one synthetic sample whose code is the given weights.

Feature specs are ``ID`` or ``ID=WEIGHT`` strings (or a ``{id: weight}`` dict in Python), or ``@FILE``: the
features of a saved search (``mona features search QUERY --save FILE``: JSON with a ``features`` list of
``{"feature": id}`` entries, or a plain JSON list of ids), each with the weight given after it (``@FILE=2``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from mona.errors import MonaError
from mona.select.inputs import store_mode

log = logging.getLogger(__name__)


def parse_weights(spec: Any, what: str) -> dict[int, float]:
    """``{feature: weight}`` from ``ID``/``ID=WEIGHT`` strings, ints, or a dict; one-line error otherwise."""
    if spec is None:
        return {}
    if isinstance(spec, dict):
        items = [(k, v) for k, v in spec.items()]
    else:
        items = []
        for item in [spec] if isinstance(spec, (str, int)) else list(spec):
            text = str(item)
            key, _, weight = text.partition("=")
            items.append((key, weight or 1.0))
    out: dict[int, float] = {}
    items = [expanded for key, weight in items for expanded in _expand(key, weight, what)]
    for key, weight in items:
        try:
            fid, w = int(str(key).strip()), float(weight)
        except ValueError:
            raise MonaError(f"{what}: expected ID or ID=WEIGHT (e.g. 1234=2.0), got {key!r}") from None
        if fid < 0:
            raise MonaError(f"{what}: feature ids are >= 0, got {fid}")
        out[fid] = w
    return out


def _expand(key: Any, weight: Any, what: str) -> list[tuple[Any, Any]]:
    """``@FILE`` (a saved feature search) as one ``(id, weight)`` per feature in it; anything else as is."""
    if not (isinstance(key, str) and key.startswith("@")):
        return [(key, weight)]
    import json
    from pathlib import Path

    path = Path(key[1:])
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MonaError(f"{what}: cannot read saved feature search {path}: {exc}") from None
    entries = data.get("features", []) if isinstance(data, dict) else data
    try:
        ids = [int(e["feature"]) if isinstance(e, dict) else int(e) for e in entries]
    except (KeyError, TypeError, ValueError):
        raise MonaError(f"{path}: expected a list of feature ids or of {{'feature': id}} entries") from None
    if not ids:
        raise MonaError(f"{what}: the saved feature search {path} lists no features")
    return [(i, weight) for i in ids]


def normalise_spec(spec: Any, what: str) -> tuple[str, ...] | None:
    """The canonical, JSON-friendly form of a feature spec: sorted ``"ID=WEIGHT"`` strings (None when empty)."""
    weights = parse_weights(spec, what)
    return tuple(f"{k}={v:g}" for k, v in sorted(weights.items())) or None


def normalise_ids(ids: Any, what: str) -> tuple[int, ...] | None:
    if ids is None:
        return None
    return tuple(sorted(parse_weights(ids, what))) or None


@dataclass
class SubsetStore:
    """The rows ``rows`` of a store, as a store (what a method sees once the pool is restricted)."""

    base: Any
    rows: np.ndarray
    manifest: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.manifest = dict(getattr(self.base, "manifest", None) or {})

    @property
    def ids(self) -> list[str]:
        ids = self.base.ids
        return [ids[int(r)] for r in self.rows]

    @property
    def lengths(self) -> np.ndarray | None:
        lengths = getattr(self.base, "lengths", None)
        return None if lengths is None else np.asarray(lengths)[self.rows]

    def codes(self) -> sp.csr_matrix:
        return sp.csr_matrix(self.base.codes()[self.rows])

    def dense(self) -> np.ndarray:
        return np.asarray(self.base.dense())[self.rows]

    def layers(self) -> np.ndarray:
        return np.asarray(self.base.layers())[self.rows]


def steers(config: Any) -> bool:
    return bool(config.exclude_features or config.require_features or config.boost_features
                or config.target_features)


def check_features(config: Any, pool: Any, method: Any) -> int:
    """The pool's number of SAE features, after checking that the method compares SAE codes and every feature
    id named in the config exists (one-line errors, before any scoring)."""
    if pool is None or store_mode(pool) != "sae" or "sae" not in (method.pool_modes or ()):
        raise MonaError(f"steering by SAE features needs a method that reads SAE codes and a pool store of mode sae "
                        f"(method {method.name!r}, pool mode {store_mode(pool) if pool is not None else 'none'})")
    width = pool.codes().shape[1]
    named = {*(config.exclude_features or ()), *(config.require_features or ())}
    named |= set(parse_weights(config.boost_features, "boost_features"))
    named |= set(parse_weights(config.target_features, "target_features"))
    unknown = sorted(f for f in named if f >= width)
    if unknown:
        raise MonaError(f"unknown feature id(s) {unknown[:10]}: the pool's SAE has {width} features (0..{width - 1})")
    return width


def allowed_rows(config: Any, pool: Any) -> np.ndarray | None:
    """Pool rows left after ``exclude_features`` / ``require_features`` (None when neither is set)."""
    if not (config.exclude_features or config.require_features):
        return None
    X = sp.csc_matrix(pool.codes())
    keep = np.ones(X.shape[0], bool)
    for f in config.exclude_features or ():
        keep[_active(X, f, config.steer_threshold)] = False
    for f in config.require_features or ():
        has = np.zeros(X.shape[0], bool)
        has[_active(X, f, config.steer_threshold)] = True
        keep &= has
    log.info("feature steering keeps %d of %d pool samples", int(keep.sum()), len(keep))
    return np.flatnonzero(keep)


def _active(X: sp.csc_matrix, f: int, threshold: float) -> np.ndarray:
    lo, hi = X.indptr[f], X.indptr[f + 1]
    return X.indices[lo:hi][X.data[lo:hi] > threshold]


def boost_vector(config: Any, width: int) -> np.ndarray | None:
    """(F,) multipliers from ``boost_features`` (1 elsewhere), or None."""
    weights = parse_weights(config.boost_features, "boost_features")
    if not weights:
        return None
    w = np.ones(width, np.float32)
    for f, v in weights.items():
        w[f] = v
    return w


def feature_target(config: Any, pool: Any, width: int) -> Any:
    """A target store of one synthetic sample whose code is ``target_features`` (None when not set)."""
    from mona.select.inputs import ArrayStore

    weights = parse_weights(config.target_features, "target_features")
    if not weights:
        return None
    cols = np.array(sorted(weights), np.int32)
    vals = np.array([weights[c] for c in cols], np.float32)
    codes = sp.csr_matrix((vals, cols, np.array([0, len(cols)])), shape=(1, width))
    return ArrayStore(["target-features"], codes, manifest=dict(getattr(pool, "manifest", None) or {}))
