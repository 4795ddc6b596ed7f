"""One proxy fine-tune: LoRA on a subset's response tokens, then the mean per-token loss on evaluation samples."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from mona.tune.batches import Encoded, collate, eval_batches, training_batches
from mona.tune.config import TuneConfig
from mona.tune.model import CausalLM, add_lora, response_loss

log = logging.getLogger(__name__)


def train_lora(lm: CausalLM, items: Sequence[Encoded], config: TuneConfig, seed: int, *, progress: bool = True,
               desc: str = "tune") -> tuple[Any, dict[str, Any]]:
    """Fine-tune a copy of ``lm.model`` with LoRA on ``items``; returns the tuned model and training statistics
    (per-step loss, tokens, seconds). Deterministic on CPU for a given ``seed``: it sets the adapters'
    initialisation, the dropout draws and the batch order."""
    model = add_lora(copy.deepcopy(lm.model), config, seed)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    batches = [b for epoch in range(config.epochs) for b in training_batches(items, config.batch_size, seed + epoch)]
    total = len(batches)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / total)
    pad = lm.tokenizer.pad_token_id
    losses: list[float] = []
    tokens = 0
    start = time.time()
    bar = tqdm(batches, desc=desc, unit="step", disable=not progress, leave=False)
    for batch in bar:
        ids, mask, labels = (t.to(lm.device) for t in collate(batch, pad))
        loss_sum, count = response_loss(model, ids, mask, labels)
        loss = loss_sum / count
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        tokens += int(mask.sum())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    seconds = time.time() - start
    log.info("%s: %d steps, %d tokens in %.0f s (%.0f tokens/s), loss %.3f -> %.3f", desc, total, tokens, seconds,
             tokens / max(seconds, 1e-9), losses[0], losses[-1])
    return model, {"steps": total, "step_losses": losses, "tokens": tokens, "seconds": round(seconds, 2)}


@torch.inference_mode()
def evaluate(model: Any, lm: CausalLM, items: Sequence[Encoded], config: TuneConfig, *, progress: bool = True,
             desc: str = "eval") -> dict[str, Any]:
    """Mean per-token loss over the response tokens of ``items`` (every token weighs the same), with counts."""
    model.eval()
    total, count = 0.0, 0
    pad = lm.tokenizer.pad_token_id
    for batch in tqdm(eval_batches(items, 2 * config.batch_size), desc=desc, unit="batch", disable=not progress,
                      leave=False):
        ids, mask, labels = (t.to(lm.device) for t in collate(batch, pad))
        loss_sum, n = response_loss(model, ids, mask, labels)
        total += float(loss_sum)
        count += n
    return {"loss": total / count, "tokens": count, "samples": len(items)}
