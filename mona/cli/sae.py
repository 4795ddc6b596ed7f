"""``mona sae train`` / ``mona sae eval``: the ``mona-sae`` commands, with the same flags.

The commands live in :mod:`sae_training.cli` (the training package may import mona, never the reverse); this
module only mounts them under ``mona sae``, importing ``sae_training`` when the parser is built.
"""

from __future__ import annotations

from typing import Any


def register(subparsers: Any) -> None:
    from sae_training.cli import register as register_sae

    p = subparsers.add_parser(
        "sae", help="train and evaluate SAEs (the same commands and flags as mona-sae)",
        description="Train an SAE with sae-lens (train) or measure one on held-out text (eval).",
    )
    register_sae(p.add_subparsers(dest="sae_command", required=True, metavar="{train,eval}"))
