"""``mona embed``: embed a pool or target file into a sharded, resumable store."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, get_args

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    from mona.embed import DType, Mode, Pooling, Span, Storage

    p = subparsers.add_parser(
        "embed",
        help="embed samples (SAE codes, dense residuals or per-layer activations) into a store",
        description="Embed a pool or target file into a store of per-sample vectors. Rerunning the same command "
        "resumes an interrupted run (only missing shards are computed) or reuses a finished store.",
    )
    p.add_argument("input", nargs="?", help="samples: .jsonl/.json/.parquet file (alpaca, chat, prompt/response, text)")
    p.add_argument("--out", "-o", required=True, type=Path, help="store folder")
    p.add_argument("--model", default="gemma-3-270m", help="model name or local HF folder (default: %(default)s)")
    p.add_argument("--sae", default="default", help="SAE: 'default', a sae-lens folder, registry:<release>/<id>")
    p.add_argument("--config", type=Path, help="YAML/JSON file with EmbedConfig fields (flags override it)")
    p.add_argument("--mode", choices=get_args(Mode), help="sae (default), dense, or layers (NAIT)")
    p.add_argument("--hook", help="hook name (default: the SAE's hook)")
    p.add_argument("--pooling", choices=get_args(Pooling), help="token pooling (default: mean)")
    p.add_argument("--span", choices=get_args(Span), help="tokens pooled (default: all)")
    p.add_argument("--threshold", type=float, help="activity threshold for binary pooling (default: 0)")
    p.add_argument("--max-tokens", type=int, help="truncate samples to this many tokens (default: 512)")
    p.add_argument("--batch-tokens", type=int, help="padded tokens per forward batch (default: 4096)")
    p.add_argument("--shard-size", type=int, help="samples per shard (default: 1024)")
    p.add_argument("--dtype", choices=get_args(DType), help="stored value type (default: float16)")
    p.add_argument("--storage", choices=get_args(Storage), help="shard file format (default: safetensors)")
    p.add_argument("--format", default="auto", help="input format: auto, alpaca, chat, prompt_response, text")
    p.add_argument("--shard", help="compute only part I of N, as I/N (0-based); the last part to finish finalizes")
    p.add_argument("--finalize", action="store_true", help="only verify all parts' shards and finish the store")
    p.add_argument("--index", action="store_true", help="also build the FAISS index beside the store")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _config(args: argparse.Namespace) -> Any:
    from mona.embed import EmbedConfig

    data: dict[str, Any] = {}
    if args.config:
        from mona.cli import read_config_section

        data.update(read_config_section(args.config, "embed"))
    for name in ("mode", "hook", "pooling", "span", "threshold", "max_tokens", "batch_tokens", "shard_size", "dtype",
                 "storage"):
        value = getattr(args, name)
        if value is not None:
            data[name] = value
    return EmbedConfig.from_dict(data)


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    from mona.errors import MonaError

    if text is None:
        return None
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise MonaError(f"--shard must look like I/N (e.g. 0/4); got {text!r}") from None
    return i, n


def run(args: argparse.Namespace) -> int:
    from mona.embed import embed
    from mona.errors import MonaError
    from mona.store import finalize, open_store

    if args.finalize:
        store = finalize(args.out)
    else:
        if not args.input:
            raise MonaError("an input file is needed (or --finalize to finish a store computed in parts)")
        config = _config(args)
        sae = None if config.mode != "sae" else args.sae
        store = embed(args.input, model=args.model, sae=sae, config=config, out_dir=args.out,
                      shard=_parse_shard(args.shard), format=args.format, progress=not args.quiet)
    if not store.complete:
        print(f"part done: {args.out} (finish the other parts, then `mona embed --finalize --out {args.out}`)")
        return 0
    if args.index:
        from mona.index import build_index

        build_index(open_store(args.out), progress=not args.quiet)
    _print_summary(store)
    return 0


def _print_summary(store: Any) -> None:
    m = store.manifest
    size = sum(p.stat().st_size for p in (store.path / "shards").rglob("*") if p.is_file() and p.suffix != ".done")
    rows = [
        ("store", str(store.path)),
        ("samples", f"{store.n}"),
        ("mode", m["mode"] + (f" / {m['pooling']} / {m['span']}" if m["mode"] != "layers" else f" / {m['span']}")),
        ("model", f"{m['model']['name']} ({m['model']['weights_hash']})"),
        ("hook", m["hook"] or f"{len(m['hooks'])} layers"),
    ]
    if m["sae"]:
        rows.append(("sae", f"{m['sae']['name']} d_sae={m['sae']['d_sae']} ({m['sae']['weights_hash']})"))
    if m["mode"] == "sae":
        nnz = sum(int(r.get("nnz", 0)) for r in m["shards"])
        rows.append(("active features", f"{nnz / max(store.n, 1):.1f} per sample of {store.n_features}"))
    rows.append(("on disk", f"{size / 1e6:.2f} MB ({size / max(store.n, 1):.0f} B/sample)"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
