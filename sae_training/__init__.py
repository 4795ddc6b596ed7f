"""SAE training and evaluation on a chosen hook of a model, on top of sae-lens's training runner.

``mona-sae train --config configs/sae/<name>.yaml`` (or :func:`train`) trains; ``mona-sae eval <dir>`` (or
:func:`evaluate`) measures explained variance, L0, alive features and the next-token-loss cost on held-out
text. The SAE folders load with :func:`mona.saes.load_sae` and ``sae_lens.SAE.load_from_disk``.
"""

from sae_training.config import SAETrainConfig
from sae_training.evaluate import EvalConfig, evaluate
from sae_training.train import TrainResult, train

__all__ = ["EvalConfig", "SAETrainConfig", "TrainResult", "evaluate", "train"]
