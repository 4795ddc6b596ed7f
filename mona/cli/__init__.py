"""The ``mona`` command line: one subcommand per pipeline stage, each a thin layer over the library.

Each stage module in this package defines ``register(subparsers)``, which adds its subcommand and sets
``func`` to a callable taking the parsed namespace. Flags are generated from the stage's config dataclass
(:mod:`mona.cli.args`): ``--kebab-case``, the field docstrings as help, ``--config FILE`` for a YAML/JSON file of
the same fields. Errors of the library's own kinds (bad input, unknown model, mismatched artifacts) and usage
errors are printed as one line and exit with status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

SUBCOMMANDS = ("demo", "stats", "embed", "select", "explain", "report", "labels", "features", "diff", "sae", "tune")


def read_config_section(path: Any, section: str) -> dict[str, Any]:
    """Fields of a YAML/JSON config file for one stage: its ``section`` mapping, or the whole file."""
    from mona.cli.args import read_config

    return read_config(Path(path), section)


def build_parser() -> argparse.ArgumentParser:
    from mona.cli.args import Parser

    parser = Parser(prog="mona", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"mona.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from mona.cli.args import run_main

    return run_main(build_parser(), argv, quiet_loggers=("sae_lens", "datasets", "transformers", "httpx"))


if __name__ == "__main__":
    sys.exit(main())
