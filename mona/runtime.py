"""Where and in what precision the language model (and the SAE) run: one small setting every model stage takes.

:class:`Runtime` is what ``mona embed``, ``mona labels``, ``mona stats``, ``mona report --label-samples`` and
``mona sae train/eval`` read from ``--device``, ``--model-dtype``, ``--sae-dtype``, ``--attention`` and
``--gpu-batch-tokens``, and what :func:`mona.models.load_model` and :func:`mona.embed.embed` take in Python.

* ``device``: ``auto`` (the GPU when there is one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``. Asking for a
  GPU that is not there is a one-line error before anything is loaded.
* ``model_dtype``: ``float32`` (default), ``bfloat16`` or ``float16``. The model is loaded straight into it. On a
  CPU with AVX-512 BF16 or AMX, bfloat16 runs about twice as fast as float32 (BENCHMARKS.md); float16 is refused
  on the CPU (slow or unsupported for several kernels there) with a hint to use bfloat16.
* ``sae_dtype``: the SAE's precision. ``auto`` (default) follows a bfloat16 model (the 8k-wide encode is then
  ~2.7x faster on the CPU, with the same active sets as a float32 encode of the same residuals: BENCHMARKS.md) and
  is float32 otherwise (float16 residuals are encoded in float32: no overflow in the pre-activations). Pooled codes
  are accumulated in float32 whatever either dtype is.

Both dtypes change the codes, so they are part of a store's identity (``manifest["model"]["dtype"]``,
``manifest["sae"]["dtype"]``): a store embedded in bfloat16 is never silently reused for a float32 request.
The device is recorded in ``manifest["runtime"]`` for information only (the same dtype on another device gives
the same codes up to rounding).
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch

from mona.errors import MonaError

log = logging.getLogger(__name__)

DType = Literal["float32", "bfloat16", "float16"]
SAEDType = Literal["auto", "float32", "bfloat16", "float16"]
Attention = Literal["sdpa", "eager"]

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
GPU_MEMORY_SHARE = 0.4
"""Share of the free GPU memory a forward batch may take when its size is derived from free memory."""
MAX_GPU_BATCH_TOKENS = 1 << 18


@dataclass
class Runtime:
    """Device and precision of the language model and the SAE."""

    device: str = "auto"
    """Where the model and the SAE run: auto (the GPU when there is one), cpu, cuda or cuda:N."""
    model_dtype: DType = "float32"
    """Precision the language model is loaded and run in (part of a store's identity). On CPU, bfloat16 is about
    2x faster than float32 where the CPU has AVX-512 BF16/AMX; float16 needs a GPU."""
    sae_dtype: SAEDType = "auto"
    """Precision of the SAE encode (part of a store's identity): auto = bfloat16 with a bfloat16 model, else
    float32; pooling is float32 whatever this is."""
    attention: Attention = "sdpa"
    """sdpa: fused scaled-dot-product attention whenever no hook reads the attention pattern (same residuals up
    to rounding, faster); eager: TransformerLens's own attention everywhere."""
    gpu_batch_tokens: int | None = None
    """Padded tokens per forward batch on a GPU; none: sized from free GPU memory (the CPU uses the stage's
    --batch-tokens)."""

    def __post_init__(self) -> None:
        self.device = str(self.device).strip().lower()
        if not _DEVICE.match(self.device):
            raise MonaError(f"device must be auto, cpu, cuda or cuda:N; got {self.device!r}")
        for name, allowed in (("model_dtype", get_args(DType)), ("sae_dtype", get_args(SAEDType))):
            if getattr(self, name) not in allowed:
                raise MonaError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        if self.attention not in get_args(Attention):
            raise MonaError(f"attention must be sdpa or eager; got {self.attention!r}")
        if self.gpu_batch_tokens is not None and int(self.gpu_batch_tokens) < 1:
            raise MonaError(f"gpu_batch_tokens must be >= 1; got {self.gpu_batch_tokens}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def resolved(self) -> Runtime:
        """A copy with a concrete device, after checking the device exists and can run both dtypes.

        Raises :class:`MonaError` (one line) for a GPU that is not there and for float16 on the CPU.
        """
        device = resolve_device(self.device)
        sae_dtype = self.effective_sae_dtype
        if device.type == "cpu":
            for name in ("model_dtype", "sae_dtype"):
                if getattr(self, name) == "float16":
                    flag = name.replace("_", "-")
                    raise MonaError(f"{name} float16 is not supported on the CPU (slow or missing kernels); use "
                                    f"--{flag} bfloat16 (fast on CPUs with AVX-512 BF16/AMX) or float32")
        elif "bfloat16" in (self.model_dtype, sae_dtype) and not torch.cuda.is_bf16_supported():
            raise MonaError(f"{device} does not support bfloat16; use float16 or float32")
        return Runtime(str(device), self.model_dtype, sae_dtype, self.attention, self.gpu_batch_tokens)

    @property
    def effective_sae_dtype(self) -> DType:
        """``sae_dtype`` with ``auto`` resolved: bfloat16 for a bfloat16 model, float32 otherwise."""
        if self.sae_dtype != "auto":
            return self.sae_dtype  # type: ignore[return-value]
        return "bfloat16" if self.model_dtype == "bfloat16" else "float32"

    @property
    def torch_model_dtype(self) -> torch.dtype:
        return getattr(torch, self.model_dtype)

    @property
    def torch_sae_dtype(self) -> torch.dtype:
        return getattr(torch, self.effective_sae_dtype)


def resolve_device(device: str) -> torch.device:
    """``auto``/``cpu``/``cuda``/``cuda:N`` as a ``torch.device``; a one-line error for a GPU that is not there."""
    text = str(device).strip().lower()
    if not _DEVICE.match(text):
        raise MonaError(f"device must be auto, cpu, cuda or cuda:N; got {device!r}")
    if text == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise MonaError(f"device {text} was asked for but no CUDA GPU is available here; use --device cpu or auto")
    index = int(text.split(":")[1]) if ":" in text else 0
    if index >= torch.cuda.device_count():
        raise MonaError(f"device {text} does not exist: {torch.cuda.device_count()} CUDA GPU(s) here "
                        f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    return torch.device(f"cuda:{index}")


def make_runtime(runtime: Runtime | None = None, *, device: str | None = None, dtype: str | None = None) -> Runtime:
    """The :class:`Runtime` a caller means: ``runtime``, with ``device=``/``dtype=`` keywords taking precedence."""
    rt = runtime or Runtime()
    if device is None and dtype is None:
        return rt
    return Runtime(device if device is not None else rt.device, dtype if dtype is not None else rt.model_dtype,
                   rt.sae_dtype, rt.attention, rt.gpu_batch_tokens)


def model_device(model: Any) -> torch.device:
    """Device of a model's first parameter (CPU for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def model_dtype_name(model: Any) -> str:
    """``float32``/``bfloat16``/``float16``: the floating dtype of a model's weights."""
    for p in model.parameters():
        if p.is_floating_point():
            return str(p.dtype).removeprefix("torch.")
    return "float32"


def gpu_batch_tokens(cfg: Any, dtype: str, max_tokens: int, n_hooks: int = 1, extra_bytes_per_token: int = 0,
                     free_bytes: int | None = None) -> int:
    """Padded tokens per forward batch that fit in ``GPU_MEMORY_SHARE`` of the free GPU memory.

    Per token, a forward to the hook layer holds about a dozen residual-width tensors, the MLP's hidden
    activations and the query/key/value heads in ``dtype``, plus a float32 copy of each hooked residual;
    ``extra_bytes_per_token`` is what the caller adds (the SAE's dense codes). At least ``max_tokens``.
    """
    if free_bytes is None:
        free_bytes, _ = torch.cuda.mem_get_info()
    d_model, d_mlp = int(cfg.d_model), int(getattr(cfg, "d_mlp", None) or 4 * cfg.d_model)
    heads = int(getattr(cfg, "n_heads", 1)) * int(getattr(cfg, "d_head", cfg.d_model))
    per_token = (_BYTES[dtype] * (12 * d_model + 3 * d_mlp + 3 * heads) + 4 * d_model * (n_hooks + 2)
                 + int(extra_bytes_per_token))
    tokens = int(free_bytes * GPU_MEMORY_SHARE) // per_token
    return max(int(max_tokens), min(tokens, MAX_GPU_BATCH_TOKENS))


def loaded_with(model: Any, runtime: Runtime | None) -> tuple[Any, Runtime]:
    """The loaded model and the runtime it runs with: ``model`` loaded with ``runtime``, or a ``LoadedModel`` as it
    is (its own runtime, else its parameters' device and dtype), refused when ``runtime`` contradicts it."""
    if isinstance(model, (str, Path)):
        from mona.models import load_model

        loaded = load_model(str(model), runtime=runtime or Runtime())
        return loaded, loaded.runtime or Runtime()
    own = Runtime(device=str(model_device(model.model)), model_dtype=model_dtype_name(model.model))  # type: ignore[arg-type]
    have = getattr(model, "runtime", None) or own
    if runtime is not None:
        want = runtime.resolved()
        for name, a, b in (("device", str(model_device(model.model)), want.device),
                           ("model_dtype", model_dtype_name(model.model), want.model_dtype)):
            if a != b:
                raise MonaError(f"the model passed runs with {name} {a}, but {b} was asked for; load it with "
                                f"mona.models.load_model(..., runtime=...) or pass its name")
        have = want
    return model, have


def forward_batch_tokens(loaded: Any, cpu_batch_tokens: int, max_tokens: int, n_hooks: int = 1,
                         extra_bytes_per_token: int = 0) -> int:
    """Padded tokens per forward batch: the stage's own setting on the CPU; on a GPU the runtime's
    ``gpu_batch_tokens``, else what fits in the free GPU memory (:func:`gpu_batch_tokens`)."""
    device = model_device(loaded.model)
    if device.type != "cuda":
        return int(cpu_batch_tokens)
    rt = getattr(loaded, "runtime", None)
    if rt is not None and rt.gpu_batch_tokens:
        return int(rt.gpu_batch_tokens)
    with torch.cuda.device(device):
        free, _ = torch.cuda.mem_get_info()
    tokens = gpu_batch_tokens(loaded.model.cfg, model_dtype_name(loaded.model), max_tokens, n_hooks,
                              extra_bytes_per_token, free)
    log.info("forward batches of %d padded tokens on %s (from %.1f GB free)", tokens, device, free / 1e9)
    return tokens
