"""Artifact I/O shared by every stage: atomic writes, hashing, canonical JSON, format-version checks, cache home.

Writers never leave a half-written artifact under its final name: data goes to a temporary file (or folder) in
the same folder, is fsync'ed, and is renamed into place with :func:`os.replace`; if the writer fails, the old
file (if any) is untouched and the temporary is removed.

Hashes are sha256 hex digests; ``short=16`` keeps the first 16 hex digits (what manifests record).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mona.errors import ArtifactMismatch

SHORT = 16
"""Hex digits kept by short digests (weights hashes, fingerprints)."""


def mona_home() -> Path:
    """Cache root for converted models, demo data and feature labels (``$MONA_HOME``, default ~/.cache/mona)."""
    return Path(os.environ.get("MONA_HOME", Path.home() / ".cache" / "mona")).expanduser()


def mona_version() -> str:
    import mona

    return str(getattr(mona, "__version__", "unknown"))


# --------------------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------------------


def temp_path(path: Path) -> Path:
    """A temporary sibling of ``path`` for this process, keeping its suffix (``np.save`` and friends need it)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")


def remove(path: Path) -> None:
    """Delete a file, link or folder if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def fsync_path(path: Path) -> None:
    """Flush a file, or every file of a folder, to disk."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())


def atomic_write(path: str | Path, writer: Callable[[Path], Any]) -> Path:
    """Write ``path`` through ``writer(tmp)``, which must create ``tmp`` (a file, or a folder of files).

    ``tmp`` lies in the same folder and ends in ``path``'s suffix, so format writers that dispatch on it
    (``np.save``, ``pq.write_table``, ``faiss.write_index``, ``save_file``) work. Once ``writer`` returns, ``tmp``
    is fsync'ed and replaces ``path`` (an existing folder is removed first). If ``writer`` raises, ``path`` keeps
    its old content and ``tmp`` is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    remove(tmp)
    try:
        writer(tmp)
        if not tmp.exists():
            raise FileNotFoundError(f"writer for {path} did not create {tmp.name}")
        fsync_path(tmp)
        if tmp.is_dir():
            remove(path)
        os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as canonical JSON (:func:`dump_json`) atomically."""
    return atomic_write_text(path, dump_json(obj, indent=indent))


def atomic_write_lines(path: str | Path, rows: Iterable[Any]) -> Path:
    """Write one compact JSON value per line (jsonl) atomically; key order of each row is kept."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False, default=json_default) + "\n")

    return atomic_write(path, write)


def create_exclusive(path: str | Path, text: str) -> bool:
    """Write ``path`` only if it does not exist yet (atomic across processes); True if this call created it."""
    path = Path(path)
    tmp = temp_path(path)
    tmp.write_text(text, encoding="utf-8")
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------------------------


def _digest(digest: Any, short: int | bool | None) -> str:
    text = digest.hexdigest()
    if short is True:
        short = SHORT
    return text[:short] if short else text


def _update_file(digest: Any, path: Path) -> None:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)


def sha256_file(path: str | Path, short: int | bool | None = None) -> str:
    """sha256 of a file's bytes; ``short=True`` (or a digit count) keeps only the first 16 (or n) hex digits."""
    digest = hashlib.sha256()
    _update_file(digest, Path(path))
    return _digest(digest, short)


def hash_weight_files(folder: str | Path, pattern: str = "*.safetensors", short: int | bool | None = True) -> str:
    """sha256 over the bytes of a folder's weight files (``pattern``, in name order); 16 hex digits by default."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob(pattern)):
        _update_file(digest, path)
    return _digest(digest, short)


def json_hash(obj: Any, short: int | bool | None = True) -> str:
    """sha256 of an object's canonical JSON (:func:`dump_json`): a key for derived artifacts and caches."""
    return _digest(hashlib.sha256(dump_json(obj).encode("utf-8")), short)


def state_hash(state: Any, short: int | bool | None = True) -> str:
    """sha256 of a module's ``state_dict()`` (or of a name → tensor dict): names in order, values as float32 bytes.

    Independent of device and of the floating dtype the tensors are held in, so an SAE hashes the same whether
    it was loaded from disk or built in memory.
    """
    import torch

    tensors = state.state_dict() if hasattr(state, "state_dict") else state
    digest = hashlib.sha256()
    for name, tensor in sorted(tensors.items()):
        digest.update(name.encode())
        t = torch.as_tensor(tensor).detach().to("cpu")
        if t.is_floating_point():
            t = t.to(torch.float32)
        digest.update(t.contiguous().numpy().tobytes())
    return _digest(digest, short)


# --------------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------------


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars and arrays, paths, dataclasses and sets."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dump_json(obj: Any, indent: int | None = 2, sort_keys: bool = True) -> str:
    """Canonical JSON for artifacts: sorted keys, fixed indentation, UTF-8 text, trailing newline."""
    return json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=False, default=json_default) + "\n"


# --------------------------------------------------------------------------------------------------------
# Format versions
# --------------------------------------------------------------------------------------------------------


def check_format(found: Any, expected: Any, what: str, path: str | Path) -> None:
    """Raise :class:`ArtifactMismatch` (one line naming the file and both versions) unless ``found == expected``."""
    if found != expected:
        raise ArtifactMismatch(
            f"{what} {path} has format {found if found is not None else '(none)'}, this mona reads format {expected}; "
            "recreate it with this version"
        )


def config_from_dict(cls: type, data: dict[str, Any], what: str, error: type[Exception] = ArtifactMismatch) -> Any:
    """An instance of the config dataclass ``cls`` from a dict read back from JSON/YAML; unknown keys raise
    ``error`` naming them and the known ones (``what`` names the config in the message)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise error(f"unknown {what} key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
    return cls(**data)

