"""Train an SAE on one hook of a model through sae-lens's own training runner.

:func:`train` builds a ``LanguageModelSAERunnerConfig`` from a :class:`SAETrainConfig`, hands the runner the
already-loaded model and the corpus as an in-memory ``datasets.Dataset`` (no hub, no wandb), and adds three
things the runner lacks for short CPU runs, through the one seam it offers
(``run_trainer_with_interruption_handling``, which receives the trainer before ``fit``):

* the decoder bias starts at the mean activation (``init_b_dec="mean"``): on Gemma 3 270M most of the
  residual energy is one constant direction, and a zero-initialised TopK SAE spends its features on it and
  collapses;
* a progress bar updated every step with loss, L0, explained variance and alive features (sae-lens's own
  updates every 100 steps, minutes apart on a CPU), and a ``training_log.jsonl`` of the same numbers;
* ``resume``: the newest complete sae-lens checkpoint in ``<out>/checkpoints`` is passed as
  ``resume_from_checkpoint`` (sae-lens restores weights, optimiser, scheduler and data position).

Output folder: ``cfg.json`` + ``sae_weights.safetensors`` (sae-lens format, ``SAE.load_from_disk`` reads it),
``training_config.json`` (this run's :class:`SAETrainConfig`), ``runner_cfg.json`` (sae-lens's),
``sparsity.safetensors``, ``training_log.jsonl`` and ``eval_metrics.json`` (held-out evaluation).
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mona.io import atomic_write, atomic_write_json
from mona.models import LoadedModel, check_hook, load_model
from sae_training.config import SAETrainConfig

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
TRAINING_CONFIG_FILE = "training_config.json"
TRAINING_LOG_FILE = "training_log.jsonl"
EVAL_FILE = "eval_metrics.json"
_CHECKPOINT_COMPLETE = "runner_cfg.json"  # sae-lens writes this last in a checkpoint folder


@dataclass
class TrainResult:
    """Where the SAE went and how training went."""

    sae_dir: Path
    tokens: int
    seconds: float
    tokens_per_second: float
    eval_metrics: dict[str, Any] | None
    sae: Any = None
    """The trained sae-lens SAE in memory (float32, before any float16 conversion of the saved file)."""


# --------------------------------------------------------------------------------------------------------
# sae-lens configuration
# --------------------------------------------------------------------------------------------------------


def sae_config(config: SAETrainConfig, d_in: int) -> Any:
    """The sae-lens training-SAE config for the chosen architecture."""
    from sae_lens import (
        BatchTopKTrainingSAEConfig,
        JumpReLUTrainingSAEConfig,
        StandardTrainingSAEConfig,
        TopKTrainingSAEConfig,
    )

    common: dict[str, Any] = dict(
        d_in=d_in,
        d_sae=config.d_sae,
        dtype=config.dtype,
        device=config.device,
        normalize_activations=config.normalize_activations,
        decoder_init_norm=config.decoder_init_norm,
    )
    if config.architecture == "topk":
        return TopKTrainingSAEConfig(k=config.k, aux_loss_coefficient=config.aux_loss_coefficient, **common)
    if config.architecture == "batchtopk":
        return BatchTopKTrainingSAEConfig(k=float(config.k), aux_loss_coefficient=config.aux_loss_coefficient, **common)
    if config.architecture == "standard":
        return StandardTrainingSAEConfig(l1_coefficient=config.l1_coefficient, **common)
    return JumpReLUTrainingSAEConfig(l0_coefficient=config.l0_coefficient, **common)


def runner_config(config: SAETrainConfig, loaded: LoadedModel, *, dataset_label: str,
                  resume_from: Path | None = None) -> Any:
    """The ``LanguageModelSAERunnerConfig`` for a run: offline (no wandb), checkpoints under the output folder."""
    from sae_lens import LanguageModelSAERunnerConfig, LoggingConfig

    out = config.out_dir
    kwargs: dict[str, Any] = dict(
        sae=sae_config(config, loaded.d_model),
        model_name=loaded.identity.name,
        model_class_name=type(loaded.model).__name__,
        hook_name=config.hook,
        dataset_path=dataset_label,
        is_dataset_tokenized=False,
        streaming=False,
        context_size=config.context_size,
        prepend_bos=config.prepend_bos,
        exclude_special_tokens=config.exclude_special_tokens,
        training_tokens=config.training_tokens,
        train_batch_size_tokens=config.train_batch_size_tokens,
        store_batch_size_prompts=config.store_batch_size_prompts,
        n_batches_in_buffer=config.n_batches_in_buffer,
        lr=config.lr,
        lr_scheduler_name=config.lr_scheduler_name,
        lr_warm_up_steps=config.lr_warm_up_steps,
        lr_decay_steps=config.lr_decay_steps,
        dead_feature_window=config.resolved_dead_feature_window,
        feature_sampling_window=config.resolved_feature_sampling_window,
        device=config.device,
        dtype=config.dtype,
        seed=config.seed,
        n_checkpoints=config.n_checkpoints,
        checkpoint_path=str(out / CHECKPOINT_DIR),
        output_path=str(out),
        resume_from_checkpoint=str(resume_from) if resume_from else None,
        logger=LoggingConfig(log_to_wandb=False),
        verbose=False,
        model_from_pretrained_kwargs={},
        **config.extra,
    )
    cfg = LanguageModelSAERunnerConfig(**kwargs)
    cfg.checkpoint_path = str(out / CHECKPOINT_DIR)  # sae-lens appends a random id; resume needs a fixed place
    return cfg


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete sae-lens checkpoint (folders named by trained-token count), if any."""
    root = out_dir / CHECKPOINT_DIR
    if not root.is_dir():
        return None
    done = [p for p in root.iterdir() if p.is_dir() and p.name.isdigit() and (p / _CHECKPOINT_COMPLETE).exists()]
    return max(done, key=lambda p: int(p.name)) if done else None


# --------------------------------------------------------------------------------------------------------
# The runner, with mean b_dec init, a live progress bar and a training log
# --------------------------------------------------------------------------------------------------------


def _runner_class() -> type:
    from sae_lens import LanguageModelSAETrainingRunner

    class MonaTrainingRunner(LanguageModelSAETrainingRunner):
        """sae-lens's runner; hooks into the trainer just before ``fit`` (see module docstring)."""

        mona_config: SAETrainConfig
        resumed: bool

        def run_trainer_with_interruption_handling(self, trainer: Any) -> Any:
            cfg = self.mona_config
            if self.resumed:
                # sae-lens recomputes checkpoint thresholds from zero, and its saved step count lags the saved
                # sample count by one step (it checkpoints before incrementing)
                done = trainer.n_training_samples
                trainer.checkpoint_thresholds = [t for t in trainer.checkpoint_thresholds if t >= done]
                trainer.n_training_steps = trainer.n_training_samples // trainer.cfg.train_batch_size_samples
            else:
                _init_statistics(trainer, cfg)
            _attach_progress(trainer, cfg)
            return super().run_trainer_with_interruption_handling(trainer)

    return MonaTrainingRunner


@torch.no_grad()
def _init_statistics(trainer: Any, cfg: SAETrainConfig) -> None:
    """Measure the input normalisation and set b_dec to the mean input, from the first batches.

    Both are set before ``fit``, so sae-lens keeps them (and checkpoints them) instead of estimating the
    normalisation from its default of 1,000 batches. The batches are then trained on as usual.
    """
    norm = trainer.sae.cfg.normalize_activations
    if norm == "none" and cfg.init_b_dec != "mean":
        return
    batch = trainer.cfg.train_batch_size_samples
    n_batches = max(4, -(-cfg.whitening_tokens // batch)) if norm == "covariance_whitening" else 4
    batches = [next(trainer.data_provider) for _ in range(n_batches)]
    acts = torch.cat(batches).to(trainer.sae.device, torch.float32)
    scaler = trainer.activation_scaler
    if norm == "expected_average_only_in":
        scaler.scaling_factor = (acts.shape[1] ** 0.5) / acts.norm(dim=-1).mean().item()
    elif norm == "covariance_whitening":
        scaler.estimate_whitening(d_in=acts.shape[1], data_provider=iter(batches),
                                  n_batches_for_norm_estimate=n_batches)
        log.info("whitening estimated on %d activations", acts.shape[0])
    acts = scaler.scale(acts).float()
    if cfg.init_b_dec == "mean":
        mean = acts.mean(0)
        trainer.sae.b_dec.data.copy_(mean.to(trainer.sae.b_dec.dtype))
        centred = (acts - mean).pow(2).sum(-1).mean().item()
        total = acts.pow(2).sum(-1).mean().item()
        log.info("b_dec initialised to the mean of %d activations (the mean carries %.0f%% of their energy)",
                 acts.shape[0], 100 * (1 - centred / max(total, 1e-12)))
    trainer.data_provider = itertools.chain(iter(batches), trainer.data_provider)


def _attach_progress(trainer: Any, cfg: SAETrainConfig) -> None:
    """Replace sae-lens's every-100-steps progress update with a per-step one, plus log lines and a jsonl log."""
    log_path = cfg.out_dir / TRAINING_LOG_FILE
    state = {"t0": time.time(), "n0": trainer.n_training_samples, "configured": False}
    d_sae = trainer.sae.cfg.d_sae

    @torch.no_grad()
    def update(step_output: Any, pbar: Any, update_interval: int = 1) -> None:  # noqa: ARG001
        if not state["configured"]:
            pbar.unit, pbar.unit_scale, pbar.desc = "tok", True, "SAE"
            pbar.disable = not cfg.progress or pbar.disable
            state["configured"] = True
        pbar.update(trainer.n_training_samples - pbar.n)
        step = trainer.n_training_steps
        total_steps = trainer.cfg.total_training_steps
        log_step = step % cfg.log_every == 0 or step >= total_steps
        if not (log_step or cfg.progress):
            return
        acts = step_output.feature_acts
        l0 = acts.bool().float().sum(-1).to_dense().mean().item()
        alive = d_sae - int(trainer.dead_neurons.sum().item())
        sae_in, sae_out = step_output.sae_in.float(), step_output.sae_out.float()
        resid = (sae_out - sae_in).pow(2).sum(-1).mean()
        var = (sae_in - sae_in.mean(0)).pow(2).sum(-1).mean()
        ev = (1 - resid / var).item()
        loss = step_output.loss.item()
        pbar.set_postfix_str(f"loss {loss:.3g} | L0 {l0:.1f} | EV {ev:.3f} | alive {alive}/{d_sae}", refresh=False)
        if log_step:
            elapsed = time.time() - state["t0"]
            rate = (trainer.n_training_samples - state["n0"]) / max(elapsed, 1e-9)
            record = {"step": step, "tokens": trainer.n_training_samples, "loss": loss, "l0": l0,
                      "explained_variance": ev, "alive": alive,
                      "lr": trainer.optimizer.param_groups[0]["lr"], "tokens_per_s": rate}
            record.update({k: float(_item(v)) for k, v in step_output.losses.items()})
            with open(log_path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            log.info("step %d/%d tokens %d loss %.4g L0 %.1f EV %.3f alive %d/%d (%.0f tok/s)", step, total_steps,
                     trainer.n_training_samples, loss, l0, ev, alive, d_sae, rate)

    trainer._update_pbar = update


def _item(value: Any) -> float:
    value = value() if callable(value) else value
    return value.item() if isinstance(value, torch.Tensor) else value


# --------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------


def train(config: SAETrainConfig, *, resume: bool = False, loaded: LoadedModel | None = None,
          texts: list[str] | None = None, evaluate_after: bool = True) -> TrainResult:
    """Train an SAE as configured; return where it was saved.

    ``loaded``: a model already in memory (else ``load_model(config.model)``). ``texts``: the corpus as a list
    of strings (else read from ``config.corpus``). With ``resume=True`` training continues from the newest
    checkpoint in ``<output_dir>/checkpoints`` (a fresh start if there is none).
    """
    import datasets

    from sae_training.corpus import load_corpus, split_corpus

    torch.manual_seed(config.seed)
    out = config.out_dir
    loaded = loaded or load_model(config.model, device=config.device)
    check_hook(loaded, config.hook)
    resume_from = latest_checkpoint(out) if resume else None
    if resume and resume_from is None:
        log.warning("no checkpoint in %s; starting from scratch", out / CHECKPOINT_DIR)
    if resume_from is None:
        for stale in (out / CHECKPOINT_DIR, out / TRAINING_LOG_FILE):
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / TRAINING_CONFIG_FILE)

    all_texts = texts if texts is not None else load_corpus(
        config.corpus, loaded.tokenizer, text_field=config.text_field, limit=config.corpus_size, seed=config.seed
    )
    train_texts, held_out = split_corpus(all_texts, config.eval_fraction, config.seed)
    atomic_write_json(out / "held_out.json", held_out, indent=None)
    log.info("corpus: %d texts for training, %d held out", len(train_texts), len(held_out))

    label = config.corpus if texts is None else "in-memory texts"
    cfg = runner_config(config, loaded, dataset_label=label, resume_from=resume_from)
    runner_cls = _runner_class()
    runner = runner_cls(cfg, override_dataset=datasets.Dataset.from_dict({"text": train_texts}),
                        override_model=loaded.model)
    runner.mona_config = config
    runner.resumed = resume_from is not None
    runner.sae.cfg.metadata.model_identity = loaded.identity.to_dict()
    if resume_from is not None:
        log.info("resuming from %s", resume_from)
    start_tokens = int(resume_from.name) if resume_from is not None else 0
    started = time.time()
    sae = runner.run()
    seconds = time.time() - started
    if config.save_dtype == "float16":
        _save_half(sae, out)
    rate = (config.training_tokens - start_tokens) / max(seconds, 1e-9)
    log.info("trained %s in %.0f s (%.0f tok/s); saved to %s", config.name, seconds, rate, out)

    metrics = None
    if evaluate_after and held_out:
        from sae_training.evaluate import EvalConfig, evaluate

        metrics = evaluate(out, texts=held_out, loaded=loaded,
                           config=EvalConfig(tokens=config.eval_tokens, context_size=config.context_size))
    return TrainResult(out, config.training_tokens, seconds, rate, metrics, sae)


def _save_half(sae: Any, out: Path) -> None:
    """Rewrite the saved weights as float16; cfg.json keeps ``float32``, so loading converts back."""
    from safetensors.torch import load_file, save_file

    path = out / "sae_weights.safetensors"
    weights = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in load_file(path).items()}
    atomic_write(path, lambda tmp: save_file(weights, tmp))
    log.info("weights stored as float16 (%.1f MB)", path.stat().st_size / 1e6)

