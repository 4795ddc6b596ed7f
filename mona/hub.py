"""The local Hugging Face hub cache: finding models and registry SAEs there without a network.

huggingface_hub lays a repository out as::

    $HF_HUB_CACHE/models--<org>--<name>/refs/main                   commit hash the branch points to
    $HF_HUB_CACHE/models--<org>--<name>/snapshots/<commit>/<path>   symlinks into blobs/
    $HF_HUB_CACHE/models--<org>--<name>/blobs/<sha256>              file contents (LFS files: named by sha256)

``HF_HUB_CACHE`` defaults to ``$HF_HOME/hub`` and ``HF_HOME`` to ``~/.cache/huggingface``. With
``HF_HUB_OFFLINE=1`` transformers, TransformerLens and sae-lens answer every lookup from there. This module asks
huggingface_hub itself (``snapshot_download(local_files_only=True)``, ``try_to_load_from_cache``), so mona finds
exactly the files those libraries will read, and can say what is missing before anything is loaded.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from mona.io import hash_weight_files

WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.pth")
"""Weight files of a model snapshot, by preference (transformers reads safetensors when there are any)."""
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model")
"""Any one of these makes a tokenizer transformers can load."""
_SHA256 = re.compile(r"[0-9a-f]{64}")


def hub_offline() -> bool:
    """Whether huggingface_hub was told not to use the network (``HF_HUB_OFFLINE=1`` or ``TRANSFORMERS_OFFLINE=1``)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir() -> Path:
    """The hub cache huggingface_hub reads (``$HF_HUB_CACHE``, by default ``$HF_HOME/hub``)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_snapshot(repo_id: str, revision: str = "main") -> Path | None:
    """The snapshot folder of ``repo_id`` at ``revision`` in the local hub cache, or None. Never uses the network.

    Only ``config.json`` is asked for: a snapshot fetched in part (``hf download <repo> --exclude 'original/*'``)
    is complete for mona when it holds what :func:`missing_model_files` looks for, whatever else the repo has.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, HFValidationError

    try:
        folder = snapshot_download(repo_id, revision=revision, local_files_only=True, allow_patterns=["config.json"])
        return Path(folder)
    except (EntryNotFoundError, HFValidationError, FileNotFoundError, ValueError):
        return None


def weight_files(folder: Path) -> list[Path]:
    """The model weight files of a snapshot folder (the first of :data:`WEIGHT_PATTERNS` that matches)."""
    for pattern in WEIGHT_PATTERNS:
        found = sorted(folder.glob(pattern))
        if found:
            return found
    return []


def missing_model_files(folder: Path | None) -> list[str]:
    """What a model snapshot lacks to be loaded: ``config.json``, weights, a tokenizer (HF-format configs only)."""
    if folder is None:
        return ["config.json", "weights (*.safetensors)", "tokenizer"]
    missing = []
    config = folder / "config.json"
    if not config.exists():
        missing.append("config.json")
    index = next(iter(sorted(folder.glob("*.index.json"))), None)
    if index is not None:
        try:
            shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
        except (OSError, json.JSONDecodeError):
            shards = {"(unreadable index)"}
        missing += sorted(s for s in shards if not (folder / s).exists())
    elif not weight_files(folder):
        missing.append("weights (*.safetensors)")
    # TransformerLens's own checkpoints (config without "architectures") take their tokenizer from another repo.
    hf_format = True
    if config.exists():
        try:
            hf_format = "architectures" in json.loads(config.read_text())
        except (OSError, json.JSONDecodeError):
            pass
    if hf_format and not any((folder / name).exists() for name in TOKENIZER_FILES):
        missing.append("tokenizer")
    return missing


def snapshot_weights_hash(folder: Path) -> str:
    """A content hash of a snapshot's weight files without reading them: the hub names each LFS blob by the sha256
    of its bytes, so the sorted (file, blob) pairs identify the weights. Falls back to hashing the bytes when the
    cache holds copies instead of symlinks. First 16 hex digits, like :func:`mona.io.hash_weight_files`."""
    files = weight_files(folder)
    blobs = [path.resolve().name for path in files]
    if not files or not all(_SHA256.fullmatch(blob) for blob in blobs):
        pattern = next((p for p in WEIGHT_PATTERNS if any(folder.glob(p))), WEIGHT_PATTERNS[0])
        return hash_weight_files(folder, pattern=pattern)
    digest = hashlib.sha256()
    for path, blob in zip(files, blobs):
        digest.update(f"{path.name}:{blob}\n".encode())
    return digest.hexdigest()[:16]


def download_hint(repo_id: str, include: str | None = None) -> str:
    """How to get ``repo_id`` into the cache, as one clause of an error message."""
    pattern = f" --include '{include}'" if include else ""
    return (
        f"on a machine with hub access run `hf download {repo_id}{pattern}` (`huggingface-cli download` in older "
        "huggingface_hub) and copy that machine's Hugging Face cache here, or point HF_HOME at a cache that has it"
    )


def is_offline_error(exc: BaseException) -> bool:
    """Whether an exception from huggingface_hub / transformers / sae-lens means "not cached and no network"."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError)):
            return True
        if type(exc).__name__ in ("ConnectError", "ConnectTimeout", "ConnectionError"):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
