"""Per-sample embeddings of a pool or target set, written to a resumable, sharded store.

Three modes:

* ``sae`` (default): every valid token's residual at ``hook`` is encoded by the SAE (one ``encode`` call per
  batch, no grad) and the codes are pooled over the chosen span: ``mean`` (default; the MONA embedding),
  ``max``, ``sum`` or ``binary`` (1 for every feature active anywhere in the span, as in NAS). Stored sparse.
* ``dense``: the same pooling over the raw residual at ``hook``, no SAE (the "dense embeddings" baseline).
* ``layers``: for every layer's ``blocks.{l}.hook_resid_post``, the activation of the first and the last valid
  token of the span (what NAIT's activation drift needs), stored as (n, L, 2, d).
* ``sentence``: an off-the-shelf sentence embedder (all-MiniLM-L6-v2, :mod:`mona.sentence`) on each sample's
  plain text, mean pooled over its tokens and L2-normalised; stored dense like ``dense`` (read with
  ``Store.dense()``). The ``model``/``sae`` arguments and ``hook`` are not used.

Valid tokens exclude BOS, padding and chat-turn special tokens (:class:`mona.activations.ActivationBatch.valid`).
Samples are processed a shard (``shard_size`` samples, in input order) at a time: a shard's pooled rows go to
disk before the next shard starts, so memory stays flat in pool size, and a rerun after a crash computes only
the shards that are not marked done. See :mod:`mona.store` for the layout and guarantees.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from mona.errors import ArtifactMismatch, MonaError
from mona.io import atomic_write_json, atomic_write_lines, create_exclusive, dump_json, mona_version
from mona.pooling import Pooling, Span, first_last, pool_tokens, span_mask
from mona.runtime import Runtime, forward_batch_tokens, loaded_with, make_runtime, model_dtype_name
from mona.saes import LoadedSAE, resolve_sae
from mona.store import (
    IDS,
    LOG_DIR,
    MANIFEST,
    STORE_FORMAT,
    Store,
    check_identity,
    discard_shard,
    finalize,
    open_store,
    read_marker,
    shard_name,
    verify_shard,
    write_shard,
)

log = logging.getLogger(__name__)

Mode = Literal["sae", "dense", "layers", "sentence"]
DType = Literal["float16", "float32"]
Storage = Literal["safetensors", "npy"]

DEFAULT_DENSE_HOOK = "blocks.6.hook_resid_post"
DEFAULT_MAX_TOKENS = 512
SENTENCE_MAX_TOKENS = 256


@dataclass
class EmbedConfig:
    """How samples become vectors; saved as ``embed_config.json`` beside the store."""

    hook: str | None = None
    """TransformerLens hook; ``None`` = the SAE's own hook (mode ``sae``) or blocks.6.hook_resid_post
    (``dense``). Ignored by mode ``layers``, which takes every layer's ``hook_resid_post``, and by ``sentence``."""
    mode: Mode = "sae"
    """``sae``: pooled SAE codes; ``dense``: pooled raw residual; ``layers``: first/last token of every layer;
    ``sentence``: all-MiniLM-L6-v2 sentence embeddings of each sample's plain text (unit norm, no LM or SAE)."""
    pooling: Pooling = "mean"
    """How token vectors become one sample vector (``binary`` needs mode ``sae``; ignored by ``layers``;
    ``sentence`` is always ``mean``, the pooling its model was trained with)."""
    span: Span = "all"
    """Which valid tokens are pooled: the whole sample, only the prompt, or only the response (``sentence``:
    always ``all``, the prompt and response as one text)."""
    threshold: float = 0.0
    """A feature counts as active when its code exceeds this (``binary`` pooling)."""
    max_tokens: int | None = None
    """Samples are truncated to this many tokens (BOS included); truncations are logged. ``None``: 512, or 256
    for ``sentence`` (the length its model was trained on; at most 512)."""
    batch_tokens: int = 4096
    """Padded tokens per forward batch (speed/memory knob; batches never cross shard boundaries)."""
    shard_size: int = 1024
    """Samples per shard: the unit of resumption, of ``shard=(i, n)`` parts and of peak memory."""
    dtype: DType = "float16"
    """Stored value type (pooling itself is computed in float32)."""
    storage: Storage = "safetensors"
    """Shard file format: one ``.safetensors`` file per shard, or a folder of ``.npy`` files."""

    def __post_init__(self) -> None:
        for name, kind in (("mode", Mode), ("pooling", Pooling), ("span", Span), ("dtype", DType),
                           ("storage", Storage)):
            value = getattr(self, name)
            if value not in get_args(kind):
                raise MonaError(f"embed {name} must be one of {', '.join(get_args(kind))}; got {value!r}")
        if self.pooling == "binary" and self.mode != "sae":
            raise MonaError(f"binary pooling needs mode 'sae' (active SAE features); got mode {self.mode!r}")
        if self.mode == "sentence" and (self.pooling, self.span) != ("mean", "all"):
            raise MonaError(f"mode 'sentence' embeds whole texts with mean pooling; got pooling {self.pooling!r}, "
                            f"span {self.span!r}")
        if self.max_tokens is None:
            self.max_tokens = SENTENCE_MAX_TOKENS if self.mode == "sentence" else DEFAULT_MAX_TOKENS
        for name in ("max_tokens", "batch_tokens", "shard_size"):
            if int(getattr(self, name)) < 1:
                raise MonaError(f"embed {name} must be >= 1; got {getattr(self, name)}")
        if self.hook is not None:
            from mona.models import hook_layer

            hook_layer(self.hook)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbedConfig:
        from mona.io import config_from_dict

        return config_from_dict(cls, data, "embed config", MonaError)


# --------------------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------------------


def _load_inputs(samples_or_path: Any, format: str) -> list[Any]:
    from mona.data import Sample, load_samples

    if isinstance(samples_or_path, (list, tuple)) and samples_or_path and isinstance(samples_or_path[0], Sample):
        return list(samples_or_path)
    return load_samples(samples_or_path, format)


def store_request(samples: Sequence[Any], config: EmbedConfig, *, model: dict[str, Any], n_features: int,
                  hooks: Sequence[str] = (), sae: dict[str, Any] | None = None,
                  runtime: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest a new store starts from; its identity keys decide whether an existing store is reused.

    ``model``/``sae`` carry their ``dtype`` (part of the identity: codes differ between precisions); ``runtime``
    (device and dtypes the store was computed with) is informational."""
    from mona.data import fingerprint

    settings = {k: v for k, v in config.to_dict().items() if k not in ("hook", "mode", "pooling", "span",
                                                                      "batch_tokens")}
    return {
        "store_format": STORE_FORMAT,
        "mode": config.mode,
        "model": model,
        "hook": config.hook,
        "hooks": list(hooks),
        "sae": sae,
        "runtime": runtime,
        "pooling": config.pooling if config.mode != "layers" else None,
        "span": config.span,
        "settings": settings,
        "input": {"fingerprint": fingerprint(samples), "n_samples": len(samples)},
        "n_features": n_features,
        "n_shards": math.ceil(len(samples) / config.shard_size),
        "mona_version": mona_version(),
        "complete": False,
        "shards": [],
    }


def embed(
    samples_or_path: Any,
    *,
    model: Any = "gemma-3-270m",
    sae: Any = "default",
    config: EmbedConfig | None = None,
    out_dir: str | Path,
    shard: tuple[int, int] | None = None,
    format: str = "auto",
    progress: bool = True,
    runtime: Runtime | None = None,
) -> Store:
    """Embed samples into the store at ``out_dir`` and return it.

    ``samples_or_path``: a list of :class:`mona.data.Sample` or anything :func:`mona.data.load_samples` reads.
    ``model``: a name/folder for :func:`mona.models.load_model` or a ``LoadedModel``. ``sae``: a spec for
    ``mona.saes.load_sae``, a ``LoadedSAE``, a bare sae-lens ``SAE``, or ``None`` (modes ``dense``/``layers``).
    ``shard=(i, n)``: compute only shards ``k`` with ``k % n == i``; the part that completes the last shard
    finalizes the store (or call :func:`mona.store.finalize`). An existing store made from the same inputs
    and settings is reused (finished shards are never recomputed); one made differently raises
    :class:`ArtifactMismatch`. ``runtime`` (:class:`mona.runtime.Runtime`): device and model/SAE dtypes for a
    model loaded here (a ``LoadedModel`` runs where and as it is; a runtime that contradicts it is an error).
    The dtypes are part of the store's identity: a store made in bfloat16 is not reused for float32.
    """
    config = config or EmbedConfig()
    out_dir = Path(out_dir)
    if runtime is not None:
        runtime = runtime.resolved()  # a missing GPU or an unsupported dtype fails before anything is read
    if shard is not None:
        i, n = shard
        if not (n >= 1 and 0 <= i < n):
            raise MonaError(f"shard must be (i, n) with 0 <= i < n; got {shard}")
    samples = _load_inputs(samples_or_path, format)
    if config.mode == "sentence":
        from mona.sentence import embed_sentences

        return embed_sentences(samples, config=_resolve_hook(config, None), out_dir=out_dir, shard=shard,
                               progress=progress)
    if config.mode == "sae" and sae is None:
        raise MonaError("mode 'sae' needs an SAE (pass sae=..., or use mode 'dense')")

    handle = resolve_sae(sae, model=model, hook=config.hook) if config.mode == "sae" else None
    config = _resolve_hook(config, handle)
    cheap = _reuse_without_model(out_dir, model, samples, config, handle, runtime or Runtime())
    if cheap is not None:
        return cheap
    step = shard_step(model, handle, config, runtime=runtime)
    return write_store(out_dir, step.request(samples), samples, step.config, step.compute, shard=shard,
                       progress=progress)


@dataclass
class ShardStep:
    """How the shards of a store are computed: what the manifest records about the model and SAE, and the
    function that turns one shard's samples into its arrays. :func:`embed` runs it over a part's shards in one
    process; :mod:`mona.distributed` builds one per worker."""

    config: EmbedConfig
    """The settings, hook resolved."""
    model: dict[str, Any]
    sae: dict[str, Any] | None
    hooks: tuple[str, ...]
    n_features: int
    compute: Callable[[Sequence[Any]], tuple[dict[str, np.ndarray], int]]
    """``compute(samples of one shard) -> (shard arrays, tokens read)``."""
    runtime: dict[str, Any] | None = None
    """Device and dtypes the step runs with (recorded in the manifest for information)."""

    def request(self, samples: Sequence[Any]) -> dict[str, Any]:
        """The manifest a store of ``samples`` made by this step starts from."""
        return store_request(samples, self.config, model=self.model, n_features=self.n_features, hooks=self.hooks,
                             sae=self.sae, runtime=self.runtime)


def shard_step(model: Any, sae: Any, config: EmbedConfig, *, device: str | None = None,
               runtime: Runtime | None = None) -> ShardStep:
    """The step of modes ``sae``/``dense``/``layers``: ``model`` is a name/folder (loaded here with ``runtime``,
    ``device=`` overriding its device) or a ``LoadedModel``; ``sae`` anything :func:`mona.saes.resolve_sae` takes
    (``None`` unless mode ``sae``), moved to the model's device and cast to the runtime's SAE dtype."""
    from mona.activations import ActivationConfig, ActivationStats

    loaded, rt = loaded_with(model, make_runtime(runtime, device=device) if runtime or device else None)
    handle = resolve_sae(sae, model=loaded, hook=config.hook, device=rt.device) if config.mode == "sae" else None
    if handle is not None:
        handle = _on(handle, rt, owned=isinstance(sae, (str, Path)))
    config = _resolve_hook(config, handle)
    hooks, n_features = _hooks_and_width(config, loaded, handle)
    batch_tokens = forward_batch_tokens(loaded, config.batch_tokens, config.max_tokens, len(hooks),
                                        8 * n_features if handle is not None else 0)
    act_config = ActivationConfig(hooks=hooks, max_tokens=config.max_tokens, batch_tokens=batch_tokens,
                                  window=max(config.shard_size, 1))
    stats = ActivationStats()

    def compute(part: Sequence[Any]) -> tuple[dict[str, np.ndarray], int]:
        before = stats.tokens
        return _embed_shard(loaded, handle, part, config, act_config, stats), stats.tokens - before

    return ShardStep(config, _model_entry(loaded), _sae_entry(handle, rt), tuple(hooks), n_features, compute,
                     {"device": rt.device, "model_dtype": rt.model_dtype, "sae_dtype": rt.effective_sae_dtype,
                      "attention": rt.attention, "batch_tokens": batch_tokens})


def _on(handle: LoadedSAE, rt: Runtime, owned: bool) -> LoadedSAE:
    """The SAE on the runtime's device in its SAE dtype; an SAE the caller passed as an object is copied rather
    than cast in place (a bfloat16 run must not round the weights of the caller's float32 SAE)."""
    p = handle.sae.W_enc
    if p.device == torch.device(rt.device) and p.dtype == rt.torch_sae_dtype:
        return handle
    if not owned:
        handle = replace(handle, sae=copy.deepcopy(handle.sae))
    handle.sae.to(device=rt.device, dtype=rt.torch_sae_dtype)
    return handle


def _model_entry(loaded: Any) -> dict[str, Any]:
    return {**loaded.identity.to_dict(), "dtype": model_dtype_name(loaded.model)}


def _sae_entry(handle: LoadedSAE | None, rt: Runtime) -> dict[str, Any] | None:
    return None if handle is None else {**handle.identity.to_dict(), "dtype": rt.effective_sae_dtype}


def write_store(out_dir: Path, request: dict[str, Any], samples: Sequence[Any], config: EmbedConfig,
                compute: Callable[[Sequence[Any]], tuple[dict[str, np.ndarray], int]], *,
                shard: tuple[int, int] | None = None, progress: bool = True) -> Store:
    """The resumable shard loop every mode shares: create (or check) the store ``request`` describes, run
    ``compute(samples of shard k) -> (shard arrays, tokens read)`` for this part's unfinished shards, and
    finalize once every shard is done. ``compute`` is never called when nothing is left to do."""
    todo = pending_shards(out_dir, request, samples, config, shard=shard)
    total = sum(min(config.shard_size, len(samples) - k * config.shard_size) for k in todo)
    bar = tqdm(total=total, desc=f"embed {config.mode}", unit="sample", disable=not progress or not todo)
    for k in todo:
        bar.update(run_shard(out_dir, k, samples[k * config.shard_size:(k + 1) * config.shard_size], config, compute))
    bar.close()
    if all(_shard_ok(out_dir, k, config.storage, verify=False) for k in range(request["n_shards"])):
        return finalize(out_dir)
    log.info("store %s: part %s done; finalize once every part has run", out_dir, shard)
    return open_store(out_dir, allow_incomplete=True)


def pending_shards(out_dir: Path, request: dict[str, Any], samples: Sequence[Any], config: EmbedConfig, *,
                   shard: tuple[int, int] | None = None) -> list[int]:
    """Create the store ``request`` describes (or check that the one at ``out_dir`` is the same) and return the
    shards of this part that are not done yet (damaged ones are discarded, to be recomputed)."""
    manifest = _open_or_create(out_dir, request, samples, config)
    mine = [k for k in range(manifest["n_shards"]) if shard is None or k % shard[1] == shard[0]]
    todo = [k for k in mine if not _shard_ok(out_dir, k, config.storage)]
    if len(todo) < len(mine):
        log.info("store %s: %d of %d shards already done, computing %d", out_dir, len(mine) - len(todo),
                 len(mine), len(todo))
    return todo


def run_shard(out_dir: Path, k: int, part: Sequence[Any], config: EmbedConfig,
              compute: Callable[[Sequence[Any]], tuple[dict[str, np.ndarray], int]]) -> int:
    """Compute shard ``k`` from its samples ``part``, write it (file, then marker) and its timing log; return
    its row count."""
    start = time.perf_counter()
    arrays, tokens = compute(part)
    write_shard(out_dir, k, arrays, config.storage)
    _log_timing(out_dir, k, len(part), tokens, time.perf_counter() - start)
    return len(part)


def _resolve_hook(config: EmbedConfig, handle: LoadedSAE | None) -> EmbedConfig:
    if config.mode in ("layers", "sentence"):
        return EmbedConfig.from_dict({**config.to_dict(), "hook": None})
    if config.hook is None:
        hook = handle.hook if handle is not None else DEFAULT_DENSE_HOOK
        return EmbedConfig.from_dict({**config.to_dict(), "hook": hook or DEFAULT_DENSE_HOOK})
    if handle is not None and handle.hook not in (None, config.hook):
        raise ArtifactMismatch(f"the SAE was trained on {handle.hook}, but hook {config.hook} was requested")
    return config


def _hooks_and_width(config: EmbedConfig, loaded: Any, handle: LoadedSAE | None) -> tuple[tuple[str, ...], int]:
    from mona.models import check_hook

    if config.mode == "layers":
        return tuple(f"blocks.{layer}.hook_resid_post" for layer in range(loaded.n_layers)), loaded.d_model
    check_hook(loaded, config.hook)
    if handle is None:
        return (config.hook,), loaded.d_model
    if handle.identity.d_in != loaded.d_model:
        raise ArtifactMismatch(
            f"SAE input width {handle.identity.d_in} != model d_model {loaded.d_model} ({loaded.identity.name})"
        )
    return (config.hook,), handle.d_sae


def _reuse_without_model(
    out_dir: Path, model: Any, samples: Sequence[Any], config: EmbedConfig, handle: LoadedSAE | None, rt: Runtime
) -> Store | None:
    """A complete store made from the same inputs and settings with the model of the same name: reuse it
    without loading the model (the full model identity is checked whenever the model is loaded)."""
    if not isinstance(model, (str, Path)) or not (out_dir / MANIFEST).exists():
        return None
    from mona.data import fingerprint

    try:
        store = open_store(out_dir)
    except MonaError:
        return None
    m = store.manifest
    same = (
        m["model"]["name"] == str(model)
        and m["model"].get("dtype") == rt.model_dtype
        and m["mode"] == config.mode
        and m["hook"] == config.hook
        and m["span"] == config.span
        and (config.mode == "layers" or m["pooling"] == config.pooling)
        and m["input"] == {"fingerprint": fingerprint(samples), "n_samples": len(samples)}
        and all(m["settings"].get(k) == v for k, v in config.to_dict().items() if k in m["settings"])
        and m["sae"] == _sae_entry(handle, rt)
    )
    if same:
        log.info("store %s already holds these embeddings; reusing it", out_dir)
        return store
    return None


def _open_or_create(out_dir: Path, request: dict[str, Any], samples: Sequence[Any], config: EmbedConfig) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MANIFEST
    if not path.exists():
        atomic_write_lines(out_dir / IDS, (s.id for s in samples))
        atomic_write_json(out_dir / "embed_config.json", config.to_dict())
        create_exclusive(path, dump_json(request))
    manifest = json.loads(path.read_text(encoding="utf-8"))
    check_identity(manifest, request, out_dir)
    if manifest.get("complete"):
        log.info("store %s already complete with the same inputs and settings; reusing it", out_dir)
    return manifest


def _shard_ok(root: Path, k: int, storage: str, verify: bool = True) -> bool:
    record = read_marker(root, k)
    if record is None:
        return False
    if not verify:
        return True
    problem = verify_shard(root, record)
    if problem:
        log.warning("shard %d of %s is damaged (%s); recomputing it", k, root, problem)
        discard_shard(root, k, storage)
        return False
    return True


def _log_timing(root: Path, k: int, rows: int, tokens: int, seconds: float) -> None:
    (root / LOG_DIR).mkdir(exist_ok=True)
    record = {"shard": k, "rows": rows, "tokens": tokens, "seconds": round(seconds, 3),
              "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write_json(root / LOG_DIR / f"{shard_name(k)}.json", record, indent=None)


def _stored(x: np.ndarray, dtype: np.dtype, config: EmbedConfig) -> np.ndarray:
    """``x`` in the stored value type; refuses values that float16 cannot hold instead of writing inf."""
    if dtype == np.float16 and x.size:
        peak = float(np.abs(x).max())
        where = "in the per-layer activations" if config.mode == "layers" else f"at {config.hook}"
        if not peak < float(np.finfo(np.float16).max):
            raise MonaError(
                f"{config.mode} values {where} reach {peak:.4g}, beyond float16's range (65504); embed with "
                "dtype='float32' (--dtype float32)"
            )
    return x.astype(dtype)


def _embed_shard(loaded: Any, handle: LoadedSAE | None, samples: Sequence[Any], config: EmbedConfig,
                 act_config: Any, stats: Any) -> dict[str, np.ndarray]:
    """Embed one shard's samples (input order preserved) into the arrays of a shard file."""
    from mona.activations import iter_activations

    n = len(samples)
    dtype = np.dtype(config.dtype)
    lengths = np.zeros(n, dtype=np.int32)
    blocks: list[Any] = []
    order: list[np.ndarray] = []
    for batch in iter_activations(loaded, samples, act_config, progress=False, stats=stats):
        mask = span_mask(batch.valid, batch.prompt, batch.response, config.span)
        lengths[batch.indices] = mask.sum(1).numpy()
        order.append(batch.indices)
        on = next(iter(batch.acts.values())).device  # the model's device: pooling runs there, in float32
        mask = mask.to(on)
        if config.mode == "layers":
            stacked = torch.stack([first_last(batch.acts[h], mask) for h in act_config.hooks], dim=1)
            blocks.append(_stored(stacked.cpu().numpy(), dtype, config))
            continue
        acts = batch.acts[config.hook]
        rows, cols = mask.nonzero(as_tuple=True)
        x = acts[rows, cols]
        if handle is not None:
            x = handle.encode(x).to(on)
        pooled = pool_tokens(x, rows, mask.shape[0], config.pooling, config.threshold).cpu()
        if config.mode == "dense":
            blocks.append(_stored(pooled.numpy(), dtype, config))
        else:
            # Round to the stored type first, so values that underflow to 0 are not kept as explicit zeros.
            blocks.append(sp.csr_matrix(_stored(pooled.numpy(), dtype, config).astype(np.float32)))
    perm = np.argsort(np.concatenate(order), kind="stable")
    if config.mode in ("dense", "layers"):
        key = "dense" if config.mode == "dense" else "layers"
        return {key: np.concatenate(blocks)[perm], "lengths": lengths}
    codes = sp.vstack(blocks, format="csr")[perm]
    codes.sort_indices()
    return {
        "indptr": codes.indptr.astype(np.int64),
        # feature ids fit in uint16 for any SAE up to 65,536 wide: 4 bytes per active feature with float16 values
        "indices": codes.indices.astype(np.uint16 if codes.shape[1] <= 1 << 16 else np.int32),
        "values": codes.data.astype(dtype),
        "lengths": lengths,
    }
