"""Does the subset help? A proxy fine-tune that compares selections by held-out target loss.

For each selection folder, a small causal LM (``smollm2-135m`` by default) is fine-tuned with LoRA (peft) on the
selection's samples, with the loss on the response tokens only, and the mean per-token loss on held-out target
samples is measured before and after — next to random subsets of the same size from the same pool (several
seeds), the base model, and an in-domain reference tuned on other target samples. See docs/tune.md.

    from mona.tune import TuneConfig, tune
    result = tune(["runs/sel-mona", "runs/sel-bm25"], "math-report.jsonl", tune_split="math-tune.jsonl",
                  config=TuneConfig(max_samples=80), out_dir="runs/tune-math")
    print(result.table())
"""

from mona.tune.api import RUNS_DIR, TUNE_JSON, TUNE_PNG, TuneResult, load_tune, tune
from mona.tune.config import TuneConfig
from mona.tune.summary import format_table, plot_png, summarize

__all__ = ["RUNS_DIR", "TUNE_JSON", "TUNE_PNG", "TuneConfig", "TuneResult", "format_table", "load_tune",
           "plot_png", "summarize", "tune"]
