"""``mona select``: choose a subset of a pool from its store (and/or its texts), toward targets or for diversity.

Flags come from ``SelectConfig`` (shared by every method) and from each registered method's options dataclass;
an option that the chosen ``--method`` does not have is a one-line error naming the method's options.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mona.cli.args import add_command, add_config, add_config_file, config_from, given, read_config

log = logging.getLogger(__name__)


@dataclass
class SelectArgs:
    """What ``mona select`` reads and writes (the selection itself is configured by ``SelectConfig``)."""

    out: Path = field(metadata={"flags": ("-o",)})
    """Output folder (selection.jsonl, selection.parquet, selection.json)."""
    pool: Path | None = None
    """Pool store folder (from `mona embed`)."""
    pool_samples: Path | None = None
    """The pool's sample file (records are copied to the output; text methods read it)."""
    target: list[Path] = field(default_factory=list)
    """Target store folder; repeat the flag for several target sets."""
    target_samples: list[Path] = field(default_factory=list)
    """Target sample file for tfidf/bm25; repeat the flag for several target sets."""
    sae: str | None = None
    """Decoder similarity: the SAE that made the pool's codes (default: the one the pool store's manifest names)."""
    format: Literal["auto", "alpaca", "chat", "prompt_response", "text"] = "auto"
    """Sample file format."""
    show: int = 10
    """Print this many top picks."""


@functools.cache
def option_fields() -> type:
    """One dataclass with every registered method's options (a name shared by several methods means the same
    thing in each), each documented with the methods that take it; the flags of ``mona select``."""
    from mona.cli.args import field_docs
    from mona.select.methods import REGISTRY

    seen: dict[str, tuple[Any, list[str], dataclasses.Field, str]] = {}
    for method in REGISTRY.values():
        docs = field_docs(method.Options)
        hints = _hints(method.Options)
        for f in dataclasses.fields(method.Options):
            if f.name not in seen:
                seen[f.name] = (hints[f.name], [], f, docs.get(f.name, ""))
            seen[f.name][1].append(method.name)
    specs = []
    for name, (hint, methods, f, doc) in seen.items():
        default = f.default if f.default is not dataclasses.MISSING else None
        text = f"{doc.replace('``', '`')} [{', '.join(methods)}]"
        specs.append((name, hint, dataclasses.field(default=default, metadata={"help": text})))
    return dataclasses.make_dataclass("MethodOptions", specs)


def _hints(cls: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(cls)


def register(subparsers: Any) -> None:
    from mona.select.config import SelectConfig
    from mona.select.methods import REGISTRY

    listing = "; ".join(f"{m.name}: {m.summary}" for m in REGISTRY.values())
    p = add_command(
        subparsers, "select", run,
        help="select samples from a pool store toward target sets or for diversity",
        description="Score or pick pool samples with one method and write selection.jsonl/.parquet/.json. "
        "Each --target (store) or --target-samples (file) is one target set; repeat it for several. "
        f"Methods: {listing}.",
    )
    add_config(p, SelectArgs)
    add_config_file(p, "select")
    add_config(p, SelectConfig, dest="select", exclude=("options",), aliases={"method": ["-m"], "n": ["-n"]},
               title="selection (SelectConfig)")
    add_config(p, option_fields(), dest="options", title="method options (each applies to the methods named)")


def build_config(args: argparse.Namespace) -> Any:
    """The ``SelectConfig`` from ``--config`` (flat or with an ``options:`` mapping), then the flags."""
    from mona.select.config import SelectConfig

    data: dict[str, Any] = {}
    if getattr(args, "config", None) is not None:
        data = {str(k).replace("-", "_"): v for k, v in read_config(args.config, "select").items()}
        data = {**(data.pop("options", None) or {}), **data}
    flags = {**given(args, SelectConfig, "select"), **given(args, option_fields(), "options")}
    if "n" in flags:
        data.pop("ratio", None)
    if "ratio" in flags:
        data.pop("n", None)
    return SelectConfig.build(**{**data, **flags})


def run(args: argparse.Namespace) -> int:
    from mona.data import load_samples
    from mona.select import select

    a = config_from(args, SelectArgs)
    config = build_config(args)
    pool_samples = load_samples(a.pool_samples, a.format) if a.pool_samples else None
    target_samples = [load_samples(f, a.format) for f in a.target_samples]
    selection = select(
        str(a.pool) if a.pool else None,
        target=[str(t) for t in a.target] or None,
        config=config,
        pool_samples=pool_samples,
        target_samples=target_samples or None,
        sae=a.sae,
    )
    if a.pool_samples:  # lets explain/report show the pool's domain mix without being told the file again
        selection.info["pool_samples"] = str(Path(a.pool_samples).resolve())
    out = selection.save(a.out)
    counts, timing = selection.info["counts"], selection.info["timing"]
    print(f"{selection.method}: selected {counts['selected']} of {counts['pool']} in {timing['total_s']:.2f} s "
          f"-> {out}")
    for i in range(min(a.show, len(selection))):
        feats = selection.features[i] if selection.features else []
        top = " ".join(f"{f['feature']}:{f['share']:.2f}" for f in (feats or [])[:3])
        print(f"{i:>4}  {selection.scores[i]:>9.4f}  {selection.ids[i][:40]:<40}  {top}")
    return 0
