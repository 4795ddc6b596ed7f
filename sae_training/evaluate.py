"""Evaluate an SAE on held-out text with sae-lens's evals.

Metrics (``eval_metrics.json`` beside the SAE, and a printed table from the CLI):

* ``explained_variance``: 1 − E‖x − x̂‖² / Var(x) over held-out tokens (special tokens excluded);
* ``l0``: mean number of active features per token;
* ``alive_features`` / ``dead_features``: features that fire at least once / never over the eval tokens;
* ``ce_loss_increase``: next-token loss with the reconstruction spliced in at the hook minus the clean loss
  (sae-lens ``ce_loss_with_sae − ce_loss_without_sae``); ``ce_loss_score`` is the share of the zero-ablation
  loss increase the SAE recovers (1 is perfect).

Held-out text: ``texts`` if given, else ``held_out.json`` in the SAE folder, else the split rebuilt from its
``training_config.json`` (same corpus, seed and ``eval_fraction`` give the same texts).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from mona.errors import DataError
from mona.io import atomic_write_json
from mona.models import LoadedModel, load_model

log = logging.getLogger(__name__)

EVAL_FILE = "eval_metrics.json"


@dataclass
class EvalConfig:
    """How much held-out text to read."""

    tokens: int = 16384
    """Tokens for explained variance, L0 and alive features."""
    ce_fraction: float = 0.25
    """Share of ``tokens`` for the next-token-loss comparison (three full-model passes per batch)."""
    context_size: int = 128
    """Tokens per context."""
    batch_size_prompts: int = 8
    """Contexts per forward pass."""

    def __post_init__(self) -> None:
        from sae_training.config import ConfigError

        if self.tokens <= 0 or self.context_size <= 0 or self.batch_size_prompts <= 0:
            raise ConfigError("eval tokens, context_size and batch_size_prompts must be positive")
        if not 0.0 <= self.ce_fraction <= 1.0:
            raise ConfigError(f"ce_fraction must be in [0, 1], got {self.ce_fraction}")


def held_out_texts(sae_dir: Path, loaded: LoadedModel) -> list[str]:
    """The held-out texts recorded (or reproducible) for an SAE trained by ``mona-sae train``."""
    path = sae_dir / "held_out.json"
    if path.exists():
        return json.loads(path.read_text())
    cfg_path = sae_dir / "training_config.json"
    if not cfg_path.exists():
        raise DataError(f"{sae_dir}: no held_out.json or training_config.json; pass --corpus with held-out text")
    from sae_training.config import SAETrainConfig
    from sae_training.corpus import load_corpus, split_corpus

    cfg = SAETrainConfig.from_dict(json.loads(cfg_path.read_text()))
    texts = load_corpus(cfg.corpus, loaded.tokenizer, text_field=cfg.text_field, limit=cfg.corpus_size, seed=cfg.seed)
    _, held = split_corpus(texts, cfg.eval_fraction, cfg.seed)
    if not held:
        raise DataError(f"{sae_dir}: its training run held out no text (eval_fraction 0); pass --corpus")
    return held


def _store(loaded: LoadedModel, texts: list[str], hook: str, d_in: int, config: EvalConfig, exclude: list[int]) -> Any:
    import datasets
    from sae_lens.training.activations_store import ActivationsStore

    return ActivationsStore(
        model=loaded.model,
        dataset=datasets.Dataset.from_dict({"text": texts}),
        streaming=False,
        hook_name=hook,
        hook_head_index=None,
        context_size=config.context_size,
        d_in=d_in,
        n_batches_in_buffer=2,
        total_training_tokens=config.tokens,
        store_batch_size_prompts=config.batch_size_prompts,
        train_batch_size_tokens=config.context_size * config.batch_size_prompts,
        prepend_bos=True,
        normalize_activations="none",
        device=torch.device("cpu"),
        dtype="float32",
        exclude_special_tokens=torch.tensor(exclude, dtype=torch.long),
    )


def evaluate(sae_dir: str | Path, *, texts: list[str] | None = None, loaded: LoadedModel | None = None,
             config: EvalConfig | None = None, write: bool = True) -> dict[str, Any]:
    """Evaluate the SAE in ``sae_dir`` on held-out text; write ``eval_metrics.json`` there; return the metrics."""
    from sae_lens.evals import EvalConfig as SaeLensEvalConfig
    from sae_lens.evals import run_evals
    from sae_lens.training.activation_scaler import ActivationScaler
    from sae_lens.util import get_special_token_ids

    from mona.saes import load_sae, sae_metadata

    config = config or EvalConfig()
    sae_dir = Path(sae_dir)
    meta = sae_metadata(sae_dir)
    if loaded is None:
        loaded = load_model(meta.get("model_name") or "gemma-3-270m")
    sae = load_sae(sae_dir, model=loaded).sae
    hook = sae.cfg.metadata.hook_name
    texts = texts if texts is not None else held_out_texts(sae_dir, loaded)
    n_tokens = sum(len(t) for t in loaded.tokenizer(texts, add_special_tokens=False)["input_ids"])
    per_batch = config.context_size * config.batch_size_prompts
    n_batches = max(1, min(math.ceil(config.tokens / per_batch), n_tokens // per_batch))
    n_ce = max(1, round(n_batches * config.ce_fraction)) if config.ce_fraction > 0 else 0
    if n_tokens < per_batch:
        log.warning("only %d held-out tokens; the eval repeats them to fill one batch", n_tokens)
    exclude = get_special_token_ids(loaded.tokenizer)
    scaler = ActivationScaler()
    sae.eval()

    with torch.no_grad():
        quality, features = run_evals(
            sae, _store(loaded, texts, hook, sae.cfg.d_in, config, exclude), loaded.model, scaler,
            SaeLensEvalConfig(
                batch_size_prompts=config.batch_size_prompts, n_eval_reconstruction_batches=0,
                n_eval_sparsity_variance_batches=n_batches, compute_l2_norms=True, compute_sparsity_metrics=True,
                compute_variance_metrics=True, compute_featurewise_density_statistics=True,
            ),
            exclude_special_tokens=exclude,
        )
        ce: dict[str, Any] = {}
        if n_ce:
            ce, _ = run_evals(
                sae, _store(loaded, texts, hook, sae.cfg.d_in, config, exclude), loaded.model, scaler,
                SaeLensEvalConfig(batch_size_prompts=config.batch_size_prompts, n_eval_reconstruction_batches=n_ce,
                                  compute_ce_loss=True, n_eval_sparsity_variance_batches=0),
                exclude_special_tokens=exclude,
            )

    metrics = _metrics(sae_dir, loaded, sae, hook, quality, features, ce, n_batches * per_batch, n_ce * per_batch)
    metrics["eval_config"] = asdict(config)
    if write:
        atomic_write_json(sae_dir / EVAL_FILE, metrics)
    return metrics


def _metrics(sae_dir: Path, loaded: LoadedModel, sae: Any, hook: str, quality: dict, features: dict, ce: dict,
             tokens: int, ce_tokens: int) -> dict[str, Any]:
    """The headline metrics from sae-lens's eval results (and the next-token-loss part when it ran)."""
    alive = int((torch.tensor(features["feature_density"]) > 0).sum().item())
    metrics: dict[str, Any] = {
        "sae": str(sae_dir),
        "model": loaded.identity.name,
        "hook": hook,
        "d_sae": int(sae.cfg.d_sae),
        "tokens_evaluated": int(tokens),
        "explained_variance": quality["reconstruction_quality"]["explained_variance"],
        "mse": quality["reconstruction_quality"]["mse"],
        "l0": quality["sparsity"]["l0"],
        "alive_features": alive,
        "dead_features": int(sae.cfg.d_sae) - alive,
        "alive_fraction": alive / int(sae.cfg.d_sae),
        "l2_ratio": quality["shrinkage"]["l2_ratio"],
    }
    perf = ce.get("model_performance_preservation", {})
    if perf:
        metrics.update({
            "ce_tokens_evaluated": int(ce_tokens),
            "ce_loss_without_sae": perf["ce_loss_without_sae"],
            "ce_loss_with_sae": perf["ce_loss_with_sae"],
            "ce_loss_with_ablation": perf["ce_loss_with_ablation"],
            "ce_loss_increase": perf["ce_loss_with_sae"] - perf["ce_loss_without_sae"],
            "ce_loss_score": perf["ce_loss_score"],
        })
    return metrics


def format_table(metrics: dict[str, Any]) -> str:
    """Two-column text table of the headline metrics."""
    rows = [
        ("SAE", metrics["sae"]),
        ("model / hook", f"{metrics['model']} / {metrics['hook']}"),
        ("tokens evaluated", f"{metrics['tokens_evaluated']:,}"),
        ("explained variance", f"{metrics['explained_variance']:.4f}"),
        ("mean L0", f"{metrics['l0']:.2f}"),
        ("alive features",
         f"{metrics['alive_features']:,} / {metrics['d_sae']:,} ({100 * metrics['alive_fraction']:.1f}%)"),
        ("dead features", f"{metrics['dead_features']:,}"),
    ]
    if "ce_loss_increase" in metrics:
        rows += [
            ("CE loss clean", f"{metrics['ce_loss_without_sae']:.4f}"),
            ("CE loss with SAE", f"{metrics['ce_loss_with_sae']:.4f}"),
            ("CE loss increase", f"{metrics['ce_loss_increase']:+.4f}"),
            ("CE loss recovered", f"{metrics['ce_loss_score']:.4f}"),
        ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
