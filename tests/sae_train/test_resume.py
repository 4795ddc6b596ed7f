"""A training run killed with SIGKILL continues from its last sae-lens checkpoint with ``resume=True``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from sae_training import SAETrainConfig, train
from sae_training.testing import tiny_model, tiny_texts
from sae_training.train import latest_checkpoint

ROOT = Path(__file__).resolve().parents[2]

CONFIG = dict(
    name="tiny", model="tiny", hook="blocks.1.hook_resid_post", d_sae=64, k=4, training_tokens=8192,
    train_batch_size_tokens=256, context_size=32, store_batch_size_prompts=8, buffer_tokens=1024, lr=3e-3,
    lr_warm_up_steps=0, n_checkpoints=3, log_every=1, progress=False,
)

KILLED_RUN = """
import os, signal, sys
import sae_lens.llm_sae_training_runner as runner_module
from sae_training import SAETrainConfig, train
from sae_training.testing import tiny_model, tiny_texts

saves = []
original = runner_module.LanguageModelSAETrainingRunner.save_checkpoint
def save_then_die(self, checkpoint_path):
    original(self, checkpoint_path)
    saves.append(checkpoint_path)
    if len(saves) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
runner_module.LanguageModelSAETrainingRunner.save_checkpoint = save_then_die
config = SAETrainConfig(**{config}, output_dir=sys.argv[1])
train(config, loaded=tiny_model(), texts=tiny_texts(200), evaluate_after=False)
"""


def test_killed_run_resumes_from_checkpoint(tmp_path):
    out = tmp_path / "sae"
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(KILLED_RUN).replace("{config}", repr(CONFIG)))
    proc = subprocess.run([sys.executable, str(script), str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (out / "sae_weights.safetensors").exists()
    checkpoint = latest_checkpoint(out)
    assert checkpoint is not None
    done = int(checkpoint.name)
    assert 0 < done < 8192
    killed_log = [json.loads(x) for x in (out / "training_log.jsonl").read_text().splitlines()]

    config = SAETrainConfig(**CONFIG, output_dir=str(out))
    result = train(config, resume=True, loaded=tiny_model(), texts=tiny_texts(200), evaluate_after=False)
    assert (result.sae_dir / "sae_weights.safetensors").exists()
    records = [json.loads(x) for x in (out / "training_log.jsonl").read_text().splitlines()]
    resumed = records[len(killed_log):]
    assert resumed, "no steps after resuming"
    assert resumed[0]["tokens"] == done + 256  # continues right after the checkpoint, not from zero
    assert resumed[-1]["tokens"] == 8192
    assert resumed[0]["step"] == (done + 256) // 256
    # the loss after resuming is in the range reached before the kill (weights were restored, not re-initialised)
    before = [r["loss"] for r in killed_log if r["tokens"] <= done][-3:]
    assert resumed[0]["loss"] < 2 * max(before)
    # one checkpoint left to write after resuming, not all three again
    assert len([p for p in (out / "checkpoints").iterdir() if p.is_dir()]) == 3


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    config = SAETrainConfig(**{**CONFIG, "n_checkpoints": 0, "training_tokens": 512}, output_dir=str(tmp_path / "s"))
    result = train(config, resume=True, loaded=tiny_model(), texts=tiny_texts(50), evaluate_after=False)
    assert (result.sae_dir / "cfg.json").exists()
