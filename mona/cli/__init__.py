"""The ``mona`` command line: one subcommand per pipeline stage, each a thin layer over the library.

Each stage module in this package defines ``register(subparsers)``, which adds its subcommand and sets
``func`` to a callable taking the parsed namespace. Errors of the library's own kinds (bad input, unknown
model, mismatched artifacts) are printed as one line and exit with status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path
from typing import Any

SUBCOMMANDS = ("demo", "stats", "embed", "select", "explain")


def read_config_section(path: Any, section: str) -> dict[str, Any]:
    """Fields of a YAML/JSON config file for one stage: its ``section`` mapping, or the whole file."""
    import yaml

    from mona.errors import MonaError

    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MonaError(f"cannot read config {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(loaded, dict):
        raise MonaError(f"config {path}: expected a mapping of field names to values")
    return dict(loaded.get(section, loaded))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mona", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"mona.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from mona.errors import MonaError

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except MonaError as exc:
        print(f"mona {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
