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

SUBCOMMANDS = ("demo", "stats", "embed", "select", "explain")


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
