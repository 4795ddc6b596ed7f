"""What selection reads: embedding stores (or arrays shaped like them), sample lists, and their consistency checks."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from mona.errors import ArtifactMismatch, MonaError

log = logging.getLogger(__name__)


@runtime_checkable
class StoreLike(Protocol):
    """The part of ``mona.store.Store`` selection uses."""

    manifest: dict
    ids: list[str]

    def codes(self) -> sp.csr_matrix: ...

    def dense(self) -> np.ndarray: ...

    def layers(self) -> np.ndarray: ...


@dataclass
class ArrayStore:
    """An in-memory store over arrays you already have (tests, benchmarks, embeddings from elsewhere).

    Give ``codes`` (CSR, mode ``sae``), ``dense`` (mode ``dense``) or ``layers`` (``(n, L, 2, d)``, mode
    ``layers``); ``manifest`` is compared between pool and target like a real store's.
    """

    ids: list[str]
    codes_matrix: sp.csr_matrix | None = None
    dense_matrix: np.ndarray | None = None
    layers_array: np.ndarray | None = None
    lengths: np.ndarray | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    def __post_init__(self) -> None:
        self.ids = [str(i) for i in self.ids]
        if self.codes_matrix is not None:
            self.codes_matrix = sp.csr_matrix(self.codes_matrix, dtype=np.float32)
        if "mode" not in self.manifest:
            mode = "sae" if self.codes_matrix is not None else "dense" if self.dense_matrix is not None else "layers"
            self.manifest = {**self.manifest, "mode": mode}
        for arr in (self.codes_matrix, self.dense_matrix, self.layers_array):
            if arr is not None and arr.shape[0] != len(self.ids):
                raise MonaError(f"array has {arr.shape[0]} rows but {len(self.ids)} ids")

    def codes(self) -> sp.csr_matrix:
        if self.codes_matrix is None:
            if self.dense_matrix is None:
                raise MonaError("this store has no codes or dense vectors")
            return sp.csr_matrix(self.dense_matrix, dtype=np.float32)
        return self.codes_matrix

    def dense(self) -> np.ndarray:
        if self.dense_matrix is None:
            if self.codes_matrix is None:
                raise MonaError("this store has no codes or dense vectors")
            return self.codes_matrix.toarray()
        return np.asarray(self.dense_matrix, dtype=np.float32)

    def layers(self) -> np.ndarray:
        if self.layers_array is None:
            raise MonaError("this store has no per-layer activations (embed with mode 'layers' for nait)")
        return self.layers_array


def open_any(store: Any) -> Any:
    """A store object from a store, a path to a store folder, or ``None``."""
    if store is None or not isinstance(store, (str, Path)):
        return store
    from mona.store import open_store  # the store module; imported lazily so selection works on arrays alone

    return open_store(Path(store))


def store_mode(store: Any) -> str:
    return str((getattr(store, "manifest", None) or {}).get("mode", "sae"))


def store_path(store: Any) -> str | None:
    for attr in ("path", "dir", "root"):
        value = getattr(store, attr, None)
        if value is not None:
            return str(value)
    return None


def n_rows(store: Any) -> int:
    return len(store.ids)


def require_mode(store: Any, modes: tuple[str, ...], method: str, role: str = "pool") -> str:
    mode = store_mode(store)
    if mode not in modes:
        raise MonaError(
            f"method {method!r} needs a {role} store embedded with mode {' or '.join(modes)}; "
            f"this one has mode {mode!r}"
        )
    return mode


# Manifest keys that must agree between pool and target stores, and the sub-keys that identify each.
_IDENTITY_KEYS = {
    "model": ("weights_hash", "name", "source"),
    "sae": ("weights_hash", "name", "hook", "d_sae"),
    "hook": (),
    "mode": (),
    "pooling": (),
}


def _identity(value: Any, subkeys: tuple[str, ...]) -> Any:
    if isinstance(value, dict) and subkeys:
        for key in subkeys:
            if value.get(key) not in (None, "unknown"):
                return f"{key}={value[key]}"
        return None
    return value


def check_compatible(pool: Any, target: Any, what: str = "target") -> None:
    """Raise :class:`ArtifactMismatch` when ``target`` was embedded with another model, SAE, hook, mode or pooling.

    Only keys present in both manifests are compared; ``span`` may differ (logged). A store with its own
    ``check_compatible`` (``mona.store.Store``) is asked first.
    """
    own = getattr(pool, "check_compatible", None)
    if callable(own) and type(pool) is type(target):
        own(target, what)
    pm = getattr(pool, "manifest", None) or {}
    tm = getattr(target, "manifest", None) or {}
    for key, subkeys in _IDENTITY_KEYS.items():
        if key not in pm or key not in tm:
            continue
        a, b = _identity(pm[key], subkeys), _identity(tm[key], subkeys)
        if a is not None and b is not None and a != b:
            raise ArtifactMismatch(
                f"pool and {what} stores differ in {key}: pool has {a}, {what} has {b}; embed both the same way"
            )
    if pm.get("span") is not None and tm.get("span") is not None and pm["span"] != tm["span"]:
        log.info("pool span %r differs from %s span %r", pm["span"], what, tm["span"])


def check_samples(store: Any, samples: list[Any] | None, role: str = "pool") -> None:
    """Samples given beside a store must be the store's rows, in order."""
    if store is None or samples is None:
        return
    ids = list(store.ids)
    if len(ids) != len(samples):
        raise ArtifactMismatch(f"{role} store has {len(ids)} rows but {len(samples)} {role} samples were given")
    for i, (a, s) in enumerate(zip(ids, samples, strict=False)):
        if str(a) != str(s.id):
            raise ArtifactMismatch(f"{role} store row {i} is {a!r} but {role} sample {i} is {s.id!r}; same input?")


def as_groups(target: Any) -> list[list[Any]]:
    """Normalise ``target`` (one item, a list of items, or a list of lists) to a list of target sets."""
    if target is None:
        return []
    if isinstance(target, (list, tuple)):
        if not target:
            return []
        if all(isinstance(t, (list, tuple)) for t in target):
            return [list(t) for t in target]
        return [[t] for t in target]
    return [[target]]


def sample_groups(target_samples: Any) -> list[list[Any]]:
    """Target samples: a flat list is one set; a list of lists is several sets."""
    if target_samples is None:
        return []
    target_samples = list(target_samples)
    if target_samples and all(isinstance(t, (list, tuple)) for t in target_samples):
        return [list(t) for t in target_samples]
    return [target_samples] if target_samples else []


def stack_codes(stores: list[Any], binarize: bool, threshold: float) -> sp.csr_matrix:
    mats = [s.codes() for s in stores]
    mat = sp.vstack(mats, format="csr") if len(mats) > 1 else sp.csr_matrix(mats[0])
    return binarize_codes(mat, threshold) if binarize else mat


def binarize_codes(mat: sp.csr_matrix, threshold: float) -> sp.csr_matrix:
    """1 where the code is above ``threshold``, structurally sparse elsewhere."""
    mat = sp.csr_matrix(mat, copy=False)
    keep = mat.data > threshold
    if keep.all():  # the usual case for threshold 0: same structure, values 1
        return sp.csr_matrix((np.ones(mat.nnz, np.float32), mat.indices, mat.indptr), shape=mat.shape)
    from mona.select.similarity import segment_sums

    per_row = segment_sums(keep.astype(np.int32), mat.indptr).astype(np.int64)
    indptr = np.concatenate([[0], np.cumsum(per_row, dtype=np.int64)])
    return sp.csr_matrix((np.ones(int(indptr[-1]), np.float32), mat.indices[keep], indptr), shape=mat.shape)
