"""The proxy fine-tune's settings: one dataclass, saved in ``tune.json`` and turned into ``mona tune`` flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from mona.errors import MonaError

Device = Literal["auto", "cpu", "cuda"]
DType = Literal["float32", "bfloat16"]

TRAINING_FIELDS = (
    "model", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "learning_rate", "epochs", "max_tokens",
    "batch_size", "seed", "dtype",
)
"""The fields a run's losses depend on; a finished run is reused only when they are unchanged."""


@dataclass
class TuneConfig:
    """How each subset is fine-tuned with LoRA and how the held-out loss is measured."""

    model: str = "smollm2-135m"
    """Causal LM to tune: `smollm2-135m` or `gemma-3-270m` (offline, converted once under MONA_HOME), or a local
    Hugging Face folder. The plain HF model is tuned, not the TransformerLens wrapper."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA input during training."""
    target_modules: tuple[str, ...] = ("all-linear",)
    """Modules that get LoRA adapters: `all-linear` (every linear layer but the output head) or module names
    such as q_proj,v_proj."""
    learning_rate: float = 5e-4
    """AdamW peak learning rate (decays linearly to zero over the run)."""
    epochs: int = 1
    """Passes over each subset (1 or 2)."""
    max_tokens: int = 256
    """Tokens per sample (longer samples are cut, as embedding cuts them); at most 256."""
    batch_size: int = 4
    """Samples per optimiser step."""
    seed: int = 0
    """Seed of the LoRA initialisation, dropout, data order, and of the first random subset."""
    max_samples: int = 80
    """Largest subset tuned on: a selection's best-ranked samples up to this many."""
    random_seeds: int = 3
    """Random subsets of the same size drawn from the pool (seeds seed, seed+1, ...); 0 for none."""
    eval_samples: int | None = None
    """Evaluate on at most this many samples of each evaluation file (a seeded draw); none = all."""
    device: Device = "auto"
    """Where to run: `auto` (cuda when available, else cpu), `cpu` or `cuda`."""
    dtype: DType = "float32"
    """Weights and activations: float32 (deterministic on CPU) or bfloat16."""
    threads: int | None = None
    """CPU threads for torch (none = torch's default); 1 can be much faster on a machine shared with other jobs."""

    def __post_init__(self) -> None:
        self.target_modules = tuple(str(m) for m in self.target_modules)
        _positive(self, "lora_r", "lora_alpha", "batch_size", "max_samples", "max_tokens")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise MonaError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not 0.0 < self.learning_rate < 1.0:
            raise MonaError(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        if self.epochs not in (1, 2):
            raise MonaError(f"epochs must be 1 or 2 (a proxy fine-tune, not a full one), got {self.epochs}")
        if self.max_tokens > 256:
            raise MonaError(f"max_tokens must be at most 256, got {self.max_tokens}")
        if self.max_tokens < 8:
            raise MonaError(f"max_tokens must be at least 8, got {self.max_tokens}")
        if self.random_seeds < 0:
            raise MonaError(f"random_seeds must be >= 0, got {self.random_seeds}")
        if self.threads is not None and self.threads < 1:
            raise MonaError(f"threads must be >= 1 or none, got {self.threads}")
        if self.eval_samples is not None and self.eval_samples < 1:
            raise MonaError(f"eval_samples must be >= 1 or none, got {self.eval_samples}")
        if not self.target_modules or any(not m.strip() for m in self.target_modules):
            raise MonaError("target_modules must name at least one module (or all-linear)")
        if "all-linear" in self.target_modules and len(self.target_modules) > 1:
            raise MonaError("target_modules: all-linear cannot be combined with module names")
        if self.device not in ("auto", "cpu", "cuda"):
            raise MonaError(f"device must be auto, cpu or cuda; got {self.device!r}")
        if self.dtype not in ("float32", "bfloat16"):
            raise MonaError(f"dtype must be float32 or bfloat16; got {self.dtype!r}")
        if not str(self.model).strip():
            raise MonaError("model must be a model name or a local Hugging Face folder")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    def training_key(self) -> dict[str, Any]:
        """The settings a run's result depends on (see :data:`TRAINING_FIELDS`)."""
        d = self.to_dict()
        return {k: d[k] for k in TRAINING_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuneConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise MonaError(f"unknown TuneConfig key(s) {unknown}; known keys: {', '.join(sorted(names))}")
        return cls(**data)


def _positive(config: TuneConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise MonaError(f"{name} must be a positive integer, got {value!r}")
