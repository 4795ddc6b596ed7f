"""Embedding stores: per-sample embeddings on disk as numbered, checksummed shards plus a manifest.

Layout of a store folder::

    manifest.json            what the store holds and how it was made (model, hook, SAE, config, input
                             fingerprint, mona version) and, once complete, every shard's sha256 and row count
    ids.jsonl                one JSON string per line: sample ids in input order (row order)
    embed_config.json        the EmbedConfig the store was made with
    shards/00000.safetensors shard 0 (rows 0..shard_size-1); or shards/00000/<name>.npy with storage "npy"
    shards/00000.done        completion marker: the shard's row count and file checksums
    logs/00000.json          timing of the run that wrote shard 0 (the only non-deterministic files)

A shard holds, by mode: ``sae`` — CSR ``indptr`` (int64), ``indices`` (uint16 when the SAE has at most 65,536
features, else int32), ``values`` (float16/32);
``dense`` and ``sentence`` — ``dense`` (rows, d); ``layers`` — ``layers`` (rows, L, 2, d). Every shard also has
``lengths`` (int32, valid tokens pooled per sample). Shard files carry no timestamps, so the same inputs and
settings give byte-identical stores whether written in one run, resumed after a crash, or in ``shard=(i, n)`` parts.

Shards are written to a temporary name, renamed into place, and only then marked done; a shard whose bytes no
longer match its checksum is refused on read and recomputed by the next ``embed`` run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from jaxtyping import Float

from mona.errors import ArtifactMismatch, MonaError
from mona.io import atomic_write, atomic_write_json, check_format, json_hash, remove, sha256_file

log = logging.getLogger(__name__)

STORE_FORMAT = 1
MANIFEST = "manifest.json"
IDS = "ids.jsonl"
SHARD_DIR = "shards"
LOG_DIR = "logs"

# Manifest keys that must agree for a store to be reused or resumed; everything else is informational.
DENSE_MODES = ("dense", "sentence")
"""Modes whose shards hold one dense vector per sample (``dense`` arrays)."""
IDENTITY_KEYS = ("store_format", "mode", "model", "hook", "hooks", "sae", "pooling", "span", "settings", "input")


def first_difference(have: dict[str, Any], want: dict[str, Any], prefix: str = "") -> str | None:
    """Dotted path and both values of the first differing key (sorted order), or None when equal."""
    for key in sorted(set(have) | set(want)):
        a, b = have.get(key), want.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}: store has {_short(a)}, requested {_short(b)}"
    return None


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def check_identity(manifest: dict[str, Any], request: dict[str, Any], where: Path) -> None:
    """Raise :class:`ArtifactMismatch` (one line) unless a store's identity equals the requested one."""
    have = {k: manifest.get(k) for k in IDENTITY_KEYS}
    want = {k: request.get(k) for k in IDENTITY_KEYS}
    diff = first_difference(have, want)
    if diff:
        raise ArtifactMismatch(
            f"store {where} was made differently ({diff}); use another output folder or delete this one"
        )


# --------------------------------------------------------------------------------------------------------
# Shard files
# --------------------------------------------------------------------------------------------------------


def shard_name(k: int) -> str:
    return f"{k:05d}"


def shard_files(root: Path, k: int, storage: str) -> Path:
    """Path of shard ``k``'s data: a .safetensors file, or a folder of .npy files."""
    base = root / SHARD_DIR / shard_name(k)
    return base.with_suffix(".safetensors") if storage == "safetensors" else base


def marker_path(root: Path, k: int) -> Path:
    return root / SHARD_DIR / f"{shard_name(k)}.done"


def write_shard(root: Path, k: int, arrays: dict[str, np.ndarray], storage: str) -> dict[str, Any]:
    """Write shard ``k`` atomically (temporary name, then rename) and return its marker record."""
    target = shard_files(root, k, storage)
    files: dict[str, str] = {}

    def write(tmp: Path) -> None:
        if storage == "safetensors":
            from safetensors.numpy import save_file

            save_file({name: np.ascontiguousarray(a) for name, a in arrays.items()}, str(tmp))
            files[target.name] = sha256_file(tmp)
            return
        tmp.mkdir()
        for name in sorted(arrays):
            path = tmp / f"{name}.npy"
            np.save(path, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            files[f"{target.name}/{name}.npy"] = sha256_file(path)

    atomic_write(target, write)
    record = {"index": k, "rows": int(arrays["lengths"].shape[0]), "files": files}
    if "indices" in arrays:
        record["nnz"] = int(arrays["indices"].shape[0])
    atomic_write_json(marker_path(root, k), record)
    return record


def read_marker(root: Path, k: int) -> dict[str, Any] | None:
    path = marker_path(root, k)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def verify_shard(root: Path, record: dict[str, Any]) -> str | None:
    """None when every file of a shard matches its checksum, else a short reason."""
    for name, digest in record["files"].items():
        path = root / SHARD_DIR / name
        if not path.exists():
            return f"{name} is missing"
        if sha256_file(path) != digest:
            return f"{name} does not match its checksum (truncated or modified)"
    return None


def load_shard(root: Path, record: dict[str, Any], storage: str, verify: bool = True) -> dict[str, np.ndarray]:
    """A shard's arrays, memory-mapped (read-only; rows are read from disk as they are used)."""
    k = int(record["index"])
    if verify:
        problem = verify_shard(root, record)
        if problem:
            raise MonaError(
                f"store {root}: shard {k} is corrupted ({problem}); rerun the same `mona embed` command to recompute it"
            )
    target = shard_files(root, k, storage)
    if storage == "safetensors":
        return map_safetensors(target)
    return {p.stem: np.load(p, allow_pickle=False, mmap_mode="r") for p in sorted(target.glob("*.npy"))}


_ST_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I8": np.int8, "I16": np.int16,
              "I32": np.int32, "I64": np.int64, "U8": np.uint8, "U16": np.uint16, "U32": np.uint32,
              "U64": np.uint64, "BOOL": np.bool_}


def map_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a read-only memory map (nothing is read until it is used)."""
    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
    out: dict[str, np.ndarray] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        a, b = spec["data_offsets"]
        dtype, shape = np.dtype(_ST_DTYPES[spec["dtype"]]), tuple(spec["shape"])
        if b == a:
            out[name] = np.zeros(shape, dtype)
            continue
        out[name] = np.memmap(path, dtype=dtype, mode="r", offset=8 + size + a, shape=shape)
    return out


def discard_shard(root: Path, k: int, storage: str) -> None:
    marker_path(root, k).unlink(missing_ok=True)
    remove(shard_files(root, k, storage))


# --------------------------------------------------------------------------------------------------------
# Reading a finished store
# --------------------------------------------------------------------------------------------------------


@dataclass
class Store:
    """A finished (or, after a partial ``shard=(i, n)`` run, unfinished) embedding store."""

    path: Path
    manifest: dict[str, Any]
    verify: bool = True

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    @property
    def mode(self) -> str:
        return self.manifest["mode"]

    @property
    def n(self) -> int:
        return int(self.manifest["input"]["n_samples"])

    @property
    def n_features(self) -> int:
        """Width of an embedding: SAE width (mode ``sae``) or d_model (``dense``, ``layers``, ``sentence``)."""
        return int(self.manifest["n_features"])

    @property
    def ids(self) -> list[str]:
        if not hasattr(self, "_ids"):
            lines = (self.path / IDS).read_text(encoding="utf-8").splitlines()
            self._ids = json.loads("[" + ",".join(lines) + "]")  # one parse, not one per line
        return self._ids

    def _require_complete(self) -> None:
        if not self.complete:
            done = sum(marker_path(self.path, k).exists() for k in range(self.manifest["n_shards"]))
            raise MonaError(
                f"store {self.path} is incomplete ({done} of {self.manifest['n_shards']} shards); run the remaining "
                f"`mona embed --shard i/n` parts, then `mona embed --finalize`"
            )

    def iter_shards(self) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """(first row, arrays) for every shard, in row order; each shard's checksum is verified first."""
        self._require_complete()
        for k, start in enumerate(self.shard_starts()[:-1]):
            yield int(start), self.shard(k)

    def shard_starts(self) -> np.ndarray:
        """(n_shards + 1,) first row of every shard, then the row count."""
        rows = [int(r["rows"]) for r in self.manifest["shards"]]
        return np.concatenate([[0], np.cumsum(rows, dtype=np.int64)]).astype(np.int64)

    def shard(self, k: int) -> dict[str, np.ndarray]:
        """Shard ``k``'s arrays, memory-mapped; its checksum is verified the first time this object reads it."""
        verified = self.__dict__.setdefault("_verified", set())
        record = self.manifest["shards"][k]
        arrays = load_shard(self.path, record, self.manifest["settings"]["storage"], self.verify and k not in verified)
        verified.add(k)
        return arrays

    @property
    def lengths(self) -> np.ndarray:
        """(n,) int: valid tokens pooled per sample (0 when the span was empty)."""
        if not hasattr(self, "_lengths"):
            self._lengths = np.concatenate([a["lengths"] for _, a in self.iter_shards()]).astype(np.int64)
        return self._lengths

    def iter_codes(self) -> Iterator[tuple[int, sp.csr_matrix]]:
        """(first row, float32 CSR block) per shard: streams a store of any size in shard-sized pieces."""
        for start, arrays in self.iter_shards():
            yield start, _as_csr(arrays, self.n_features, self.mode)

    def rows(self, rows: np.ndarray) -> sp.csr_matrix:
        """(len(rows), F) float32 CSR of the given rows (in the given order), read from the memory-mapped shards
        that hold them: selecting a few rows of a large store never loads the rest."""
        rows = np.asarray(rows, np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n):
            raise MonaError(f"row index out of range for store {self.path} ({self.n} rows)")
        starts = self.shard_starts()
        owner = np.searchsorted(starts, rows, side="right") - 1
        order = np.argsort(owner, kind="stable")
        parts, where = [], []
        for k in np.unique(owner):
            pos = order[owner[order] == k]
            parts.append(_take_rows(self.shard(int(k)), rows[pos] - starts[k], self.n_features, self.mode))
            where.append(pos)
        if not parts:
            return sp.csr_matrix((0, self.n_features), dtype=np.float32)
        out = sp.vstack(parts, format="csr")
        inverse = np.empty(len(rows), np.int64)
        inverse[np.concatenate(where)] = np.arange(len(rows))
        return out[inverse]

    def codes(self) -> sp.csr_matrix:
        """(n, F) float32 CSR of all embeddings (for ``dense``/``sentence`` modes, the dense vectors as CSR)."""
        if self.mode == "layers":
            raise MonaError(f"store {self.path} holds per-layer activations (mode 'layers'); use .layers()")
        blocks = [block for _, block in self.iter_codes()]
        return sp.vstack(blocks, format="csr").astype(np.float32) if blocks else sp.csr_matrix((0, self.n_features))

    def dense(self) -> Float[np.ndarray, "n d"]:
        """(n, D) float32: dense embeddings (modes ``dense``, ``sentence``) or densified SAE codes (``sae``)."""
        if self.mode in DENSE_MODES:
            return np.concatenate([a["dense"] for _, a in self.iter_shards()]).astype(np.float32)
        return self.codes().toarray()

    def layers(self) -> Float[np.ndarray, "n L 2 d"]:
        """(n, L, 2, d) float32: per layer, the first and last valid-token activation (mode ``layers``)."""
        if self.mode != "layers":
            raise MonaError(f"store {self.path} has mode {self.mode!r}; per-layer activations need mode 'layers'")
        return np.concatenate([a["layers"] for _, a in self.iter_shards()]).astype(np.float32)

    def check_compatible(self, other: Store, what: str = "target") -> None:
        """Raise :class:`ArtifactMismatch` unless ``other`` lives in the same embedding space (model, hook, SAE,
        mode, pooling) so that its vectors can be compared with this store's."""
        keys = ("mode", "model", "hook", "sae", "pooling")
        diff = first_difference({k: self.manifest.get(k) for k in keys}, {k: other.manifest.get(k) for k in keys})
        if diff:
            diff = diff.replace("store has", "this store has").replace("requested", f"{what} has")
            raise ArtifactMismatch(f"{what} store {other.path} is not comparable with {self.path} ({diff})")


def pool_fingerprint(store: Store) -> str:
    """Short hash of a store's identity (its manifest minus per-run information), for derived artifacts."""
    keep = {k: store.manifest.get(k) for k in ("mode", "model", "hook", "sae", "pooling", "span", "settings", "input")}
    return json_hash(keep)


def _take_rows(arrays: dict[str, np.ndarray], local: np.ndarray, width: int, mode: str) -> sp.csr_matrix:
    """Rows ``local`` of one shard as float32 CSR, gathering only their entries from the (mapped) arrays."""
    if mode in DENSE_MODES:
        return sp.csr_matrix(np.asarray(arrays["dense"][local], np.float32))
    indptr = np.asarray(arrays["indptr"], np.int64)
    lo, hi = indptr[local], indptr[local + 1]
    counts = hi - lo
    out_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    gather = np.repeat(lo - out_ptr[:-1], counts) + np.arange(out_ptr[-1], dtype=np.int64)
    return sp.csr_matrix((np.asarray(arrays["values"][gather], np.float32),
                          np.asarray(arrays["indices"][gather], np.int32), out_ptr), shape=(len(local), width))


def _as_csr(arrays: dict[str, np.ndarray], width: int, mode: str) -> sp.csr_matrix:
    if mode in DENSE_MODES:
        return sp.csr_matrix(arrays["dense"].astype(np.float32))
    rows = arrays["lengths"].shape[0]
    return sp.csr_matrix(
        (arrays["values"].astype(np.float32), arrays["indices"].astype(np.int32), np.array(arrays["indptr"])),
        shape=(rows, width),
    )


def open_store(path: str | Path, *, verify: bool = True, allow_incomplete: bool = False,
               expect: dict[str, Any] | None = None) -> Store:
    """Open a store folder; shards are checksum-verified as they are read unless ``verify=False``.

    ``expect``: manifest entries the caller requires, e.g. ``{"model": identity.to_dict(), "pooling": "mean"}``;
    any difference raises :class:`ArtifactMismatch` naming it.
    """
    path = Path(path)
    if not (path / MANIFEST).exists():
        raise MonaError(f"{path} is not an embedding store (no {MANIFEST}); create one with `mona embed`")
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    check_format(manifest.get("store_format"), STORE_FORMAT, "store", path)
    if expect:
        diff = first_difference({k: manifest.get(k) for k in expect}, dict(expect))
        if diff:
            raise ArtifactMismatch(f"store {path} does not match what was asked for ({diff})")
    store = Store(path, manifest, verify)
    if not allow_incomplete:
        store._require_complete()
    return store


def finalize(path: str | Path) -> Store:
    """Check every shard of a store against its marker and write the final manifest (idempotent).

    Raises :class:`MonaError` naming the missing or corrupted shards; the result is byte-identical whether the
    shards were written by one process or by several ``shard=(i, n)`` parts.
    """
    path = Path(path)
    store = open_store(path, allow_incomplete=True)
    manifest = store.manifest
    records, missing, bad = [], [], []
    for k in range(manifest["n_shards"]):
        record = read_marker(path, k)
        if record is None:
            missing.append(k)
            continue
        problem = verify_shard(path, record)
        if problem:
            bad.append(k)
            log.warning("shard %d of %s: %s", k, path, problem)
            continue
        records.append(record)
    if missing or bad:
        raise MonaError(
            f"store {path} cannot be finalized: shards {_ranges(missing + bad)} are "
            f"{'missing' if not bad else 'missing or corrupted'}; rerun `mona embed` with the same arguments"
        )
    rows = sum(int(r["rows"]) for r in records)
    if rows != store.n:
        raise MonaError(f"store {path}: shards hold {rows} rows, the manifest expects {store.n}")
    final = dict(manifest, complete=True, shards=records)
    if final != manifest:
        atomic_write_json(path / MANIFEST, final)
    return Store(path, final)


def _ranges(ks: list[int]) -> str:
    ks = sorted(ks)
    text = ", ".join(str(k) for k in ks[:8])
    return text + (f" (+{len(ks) - 8} more)" if len(ks) > 8 else "")
