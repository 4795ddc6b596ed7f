"""The SAE training configuration: one dataclass, loaded from YAML in ``configs/sae/`` or built in code.

Every field has a docstring and a default; :meth:`SAETrainConfig.__post_init__` validates them with one-line
messages. The config is written as ``training_config.json`` beside the SAE it produced, so a run can be
repeated from its output folder alone.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from mona.errors import MonaError
from mona.models import hook_layer

Architecture = Literal["topk", "standard", "jumprelu", "batchtopk"]
ARCHITECTURES: tuple[str, ...] = typing.get_args(Architecture)


class ConfigError(MonaError):
    """A training or evaluation config is invalid; the message names the field."""


@dataclass
class SAETrainConfig:
    """How to train one SAE on one hook of one model, through sae-lens's training runner."""

    name: str = "sae"
    """Short name of the run; the default output folder is ``runs/sae/<name>``."""

    # --- model and hook ------------------------------------------------------------------------------
    model: str = "gemma-3-270m"
    """Any name :func:`mona.models.load_model` accepts (offline model, local HF folder, TransformerLens name)."""
    hook: str = "blocks.6.hook_resid_post"
    """TransformerLens hook whose activations the SAE reconstructs."""

    # --- corpus --------------------------------------------------------------------------------------
    corpus: str = "mona:sae-corpus"
    """Training text: a ``.jsonl``/``.json``/``.parquet``/``.txt`` file, a folder written by
    ``datasets.Dataset.save_to_disk``, or ``mona:sae-corpus`` (plain English mixed with instruction samples,
    built offline by :func:`mona.demo.build_sae_corpus`). Records with a ``text`` field are used as is;
    instruction records (alpaca / chat / prompt-response) are rendered as the model reads them
    (:func:`mona.data.render`)."""
    corpus_size: int | None = None
    """For ``mona:sae-corpus``: how many texts to build (None: the builder's default). For files: read at most
    this many records."""
    text_field: str = "text"
    """Field holding plain text in corpus records."""
    eval_fraction: float = 0.05
    """Share of corpus texts held out (never trained on) for the evaluation after training."""
    eval_tokens: int = 16384
    """Tokens of held-out text the post-training evaluation reads (explained variance, L0, alive features);
    the next-token-loss part reads a quarter of it (it runs the whole model three times)."""

    # --- SAE -----------------------------------------------------------------------------------------
    architecture: Architecture = "topk"
    """sae-lens training architecture."""
    d_sae: int = 8192
    """Number of features (dictionary width)."""
    k: int = 32
    """Active features per token for ``topk`` / ``batchtopk`` (``batchtopk``: the mean over a batch)."""
    l1_coefficient: float = 5.0
    """Sparsity penalty of ``standard`` SAEs (sae-lens ``l1_coefficient``)."""
    l0_coefficient: float = 1.0
    """Sparsity penalty of ``jumprelu`` SAEs (sae-lens ``l0_coefficient``)."""
    aux_loss_coefficient: float = 1.0
    """TopK auxiliary loss that trains dead features on the residual error (``topk`` / ``batchtopk``)."""
    init_b_dec: Literal["mean", "zeros"] = "mean"
    """Initial decoder bias. ``mean``: the mean activation of the first batches. On Gemma 3 270M about 90% of
    the residual energy at layer 6 is one constant direction, and with ``zeros`` most features die."""
    normalize_activations: Literal["none", "expected_average_only_in", "covariance_whitening"] = (
        "expected_average_only_in"
    )
    """sae-lens input normalisation, folded into the weights at the end, so the saved SAE reads raw activations.
    ``expected_average_only_in`` scales inputs to mean norm sqrt(d_in) (the factor is measured on the same
    batches as the ``b_dec`` mean); Gemma's residual norms are in the thousands and, unscaled, the default
    initialisation needs far more steps than a CPU run has. ``covariance_whitening`` trains on PCA-whitened
    inputs (zero mean, identity covariance; statistics from the first ``whitening_tokens``). On Gemma 3 270M a
    handful of residual directions carry almost all the variance; a plain reconstruction loss spends the
    dictionary on them, whitening makes every direction count and gives topical features (docs/sae.md)."""
    whitening_tokens: int = 65536
    """Activations used to estimate the whitening mean and covariance (``covariance_whitening`` only); they are
    then trained on as usual."""
    decoder_init_norm: float | None = 0.1
    """Initial norm of decoder rows (sae-lens heuristic init); None keeps unit norm."""

    # --- training ------------------------------------------------------------------------------------
    training_tokens: int = 300_000
    """Activation vectors (tokens, special tokens excluded) the SAE trains on."""
    train_batch_size_tokens: int = 1024
    """Tokens per optimiser step."""
    context_size: int = 128
    """Tokens per model context; texts are concatenated with a BOS separator and cut to this length."""
    store_batch_size_prompts: int = 16
    """Contexts per model forward pass."""
    buffer_tokens: int = 16384
    """Activations held in sae-lens's shuffling buffer, in tokens (half is kept back for mixing; memory:
    buffer_tokens × d_in floats). At least one training batch."""
    lr: float = 3e-3
    """Adam learning rate. Short runs need it high: on Gemma 3 270M layer 6, 5e-4 reached explained variance
    0.39 after 60 steps of 1024 tokens, 2e-3 to 5e-3 reached 0.8 or more."""
    lr_scheduler_name: Literal["constant", "cosineannealing", "cosineannealingwarmrestarts"] = "cosineannealing"
    """Learning-rate schedule after warm-up."""
    lr_warm_up_steps: int = 10
    """Linear warm-up steps."""
    lr_decay_steps: int = 0
    """Linear decay steps at the end (0: none)."""
    dead_feature_window: int | None = None
    """Steps without firing after which a feature counts as dead (and gets the TopK auxiliary loss). None:
    a fifth of the run, capped at 1000 steps. sae-lens's default (1000 steps) is longer than a short CPU
    run, which then never revives dead features."""
    feature_sampling_window: int | None = None
    """Steps per window of feature-frequency statistics. None: a quarter of the run, capped at 2000."""
    exclude_special_tokens: bool = True
    """Drop BOS/EOS/PAD activations from training (their residual norm on Gemma is ~15x the others)."""
    prepend_bos: bool = True
    """Start every context with BOS, as the model was trained."""
    seed: int = 42
    """Seed for SAE initialisation and corpus shuffling."""
    device: str = "cpu"
    """Device for the model and the SAE."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Training dtype of the SAE and the activations."""
    save_dtype: Literal["float32", "float16"] = "float32"
    """Dtype of the saved weights (``float16`` halves the folder; loading converts back to the cfg dtype)."""

    # --- outputs -------------------------------------------------------------------------------------
    output_dir: str | None = None
    """Where the SAE folder goes (default ``runs/sae/<name>``)."""
    n_checkpoints: int = 4
    """Checkpoints during training (in ``<output_dir>/checkpoints``), used by ``--resume``; 0 disables."""
    progress: bool = True
    """Show a progress bar with loss, L0 and alive features."""
    log_every: int = 25
    """Steps between progress lines in the log (and records in ``training_log.jsonl``)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for sae-lens's ``LanguageModelSAERunnerConfig`` (advanced; not validated here)."""

    def __post_init__(self) -> None:
        # YAML 1.1 reads "1e-3" as a string; accept numbers written that way
        for name in ("lr", "l1_coefficient", "l0_coefficient", "aux_loss_coefficient", "eval_fraction",
                     "decoder_init_norm"):
            value = getattr(self, name)
            if isinstance(value, str):
                try:
                    setattr(self, name, float(value))
                except ValueError:
                    raise ConfigError(f"{name} must be a number, got {value!r}") from None
        if not self.name or "/" in self.name:
            raise ConfigError(f"name {self.name!r} must be non-empty and contain no '/'")
        try:
            hook_layer(self.hook)
        except MonaError as exc:
            raise ConfigError(str(exc)) from None
        _choice(self, "architecture", ARCHITECTURES)
        _choice(self, "init_b_dec", ("mean", "zeros"))
        _choice(self, "normalize_activations", ("none", "expected_average_only_in", "covariance_whitening"))
        _choice(self, "lr_scheduler_name", ("constant", "cosineannealing", "cosineannealingwarmrestarts"))
        _choice(self, "dtype", ("float32", "bfloat16", "float16"))
        _choice(self, "save_dtype", ("float32", "float16"))
        for name in ("d_sae", "k", "training_tokens", "train_batch_size_tokens", "context_size",
                     "store_batch_size_prompts", "buffer_tokens", "eval_tokens", "log_every", "whitening_tokens"):
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("lr_warm_up_steps", "lr_decay_steps", "n_checkpoints"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.k >= self.d_sae:
            raise ConfigError(f"k ({self.k}) must be smaller than d_sae ({self.d_sae})")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ConfigError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.training_tokens < self.train_batch_size_tokens:
            raise ConfigError(
                f"training_tokens ({self.training_tokens}) is less than one batch ({self.train_batch_size_tokens})"
            )
        if self.buffer_tokens < self.train_batch_size_tokens:
            raise ConfigError(
                f"buffer_tokens ({self.buffer_tokens}) must be at least train_batch_size_tokens "
                f"({self.train_batch_size_tokens})"
            )
        steps = self.total_steps
        if self.dead_feature_window is not None and self.dead_feature_window >= steps:
            raise ConfigError(
                f"dead_feature_window ({self.dead_feature_window} steps) must be shorter than the run ({steps} steps); "
                f"otherwise dead features are never revived"
            )
        for name in ("dead_feature_window", "feature_sampling_window"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive or null, got {value}")
        if not isinstance(self.extra, dict):
            raise ConfigError("extra must be a mapping of sae-lens runner options")

    # --- derived -------------------------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        return self.training_tokens // self.train_batch_size_tokens

    @property
    def n_batches_in_buffer(self) -> int:
        """sae-lens sizes its mixing buffer as ``n_batches_in_buffer × context_size`` tokens."""
        return -(-self.buffer_tokens // self.context_size)

    @property
    def resolved_dead_feature_window(self) -> int:
        return self.dead_feature_window or max(1, min(1000, self.total_steps // 5))

    @property
    def resolved_feature_sampling_window(self) -> int:
        return self.feature_sampling_window or max(1, min(2000, self.total_steps // 4))

    @property
    def out_dir(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path("runs") / "sae" / self.name

    # --- (de)serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SAETrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> SAETrainConfig:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: no such config file")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
        return cls.from_dict({**data, **(overrides or {})})


def _choice(config: Any, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _scalar(raw: str) -> Any:
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return yaml.safe_load(raw) if raw != "" else ""


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["--d_sae", "4096", "--hook", "blocks.3.hook_resid_post"]`` → typed overrides (YAML scalar parsing).

    Also accepts ``key=value`` items and dashes in keys (``--d-sae``).
    """
    out: dict[str, Any] = {}
    known = {f.name for f in fields(SAETrainConfig)}
    i = 0
    while i < len(pairs):
        item = pairs[i]
        if not item.startswith("--") and "=" not in item:
            raise ConfigError(f"cannot parse override {item!r}; expected --key value or key=value")
        key = item.lstrip("-")
        if "=" in key:
            key, raw = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(pairs):
                raise ConfigError(f"override {item} has no value")
            raw = pairs[i + 1]
            i += 2
        key = key.replace("-", "_")
        if key not in known:
            raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(sorted(known))}")
        out[key] = _scalar(raw)
        if key in ("name", "model", "hook", "corpus", "output_dir", "text_field", "device") and out[key] is not None:
            out[key] = str(raw)
    return out
