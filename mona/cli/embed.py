"""``mona embed``: embed a pool or target file into a sharded, resumable store."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mona.cli.args import add_command, add_config, add_config_file, config_from, load_config

log = logging.getLogger(__name__)


@dataclass
class EmbedArgs:
    """What ``mona embed`` reads and writes (the embedding itself is configured by ``EmbedConfig``)."""

    out: Path = field(metadata={"flags": ("-o",)})
    """Store folder."""
    input: Path | None = field(default=None, metadata={"positional": True})
    """Samples: .jsonl/.json/.parquet file (alpaca, chat, prompt/response, text)."""
    model: str = "gemma-3-270m"
    """Model name or local HF folder."""
    sae: str = "default"
    """SAE: 'default', a sae-lens folder, registry:<release>/<id> (mode sae only)."""
    format: Literal["auto", "alpaca", "chat", "prompt_response", "text"] = "auto"
    """Input format."""
    shard: str | None = None
    """Compute only part I of N, as I/N (0-based); the last part to finish finalizes the store."""
    finalize: bool = False
    """Only verify all parts' shards and finish the store."""
    index: bool = False
    """Also build the FAISS index beside the store."""
    quiet: bool = False
    """No progress bars."""


def register(subparsers: Any) -> None:
    from mona.distributed import DistributedConfig
    from mona.embed import EmbedConfig
    from mona.runtime import Runtime

    p = add_command(
        subparsers, "embed", run,
        help="embed samples (SAE codes, dense residuals or per-layer activations) into a store",
        description="Embed a pool or target file into a store of per-sample vectors. Rerunning the same command "
        "resumes an interrupted run (only missing shards are computed) or reuses a finished store.",
    )
    add_config(p, EmbedArgs)
    add_config_file(p, "embed")
    add_config(p, EmbedConfig, dest="embed", title="embedding (EmbedConfig)")
    add_config(p, Runtime, dest="runtime", title="device and precision (Runtime)")
    add_config(p, DistributedConfig, dest="dist", title="on Ray workers (DistributedConfig; pip install 'mona[ray]')")


def _config(args: argparse.Namespace) -> Any:
    from mona.embed import EmbedConfig

    return load_config(args, EmbedConfig, dest="embed", section="embed")


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    from mona.errors import MonaError

    if text is None:
        return None
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise MonaError(f"--shard must look like I/N (e.g. 0/4); got {text!r}") from None
    return i, n


def _distributed(args: argparse.Namespace, a: EmbedArgs) -> Any:
    from mona.distributed import DistributedConfig
    from mona.errors import MonaError

    dist = config_from(args, DistributedConfig, dest="dist")
    if dist.ray is not None and a.shard is not None:
        raise MonaError("--shard and --ray exclude each other: on Ray the workers share out the shards")
    if dist.ray is not None and a.input is None and Path(dist.ray).exists():
        raise MonaError(f"--ray took {dist.ray!r} as its address; put the input first or write --ray local")
    return dist


def _runtime(args: argparse.Namespace) -> Any:
    from mona.runtime import Runtime

    return config_from(args, Runtime, dest="runtime")


def run(args: argparse.Namespace) -> int:
    from mona.embed import embed
    from mona.errors import MonaError
    from mona.store import finalize, open_store

    a = config_from(args, EmbedArgs)
    dist = _distributed(args, a)
    if a.finalize:
        store = finalize(a.out)
    else:
        if not a.input:
            raise MonaError("an input file is needed (or --finalize to finish a store computed in parts)")
        config = _config(args)
        sae = None if config.mode != "sae" else a.sae
        if dist.ray is not None:
            from mona.distributed import embed_distributed

            store = embed_distributed(a.input, model=a.model, sae=sae, config=config, out_dir=a.out,
                                      address=dist.ray, workers=dist.ray_workers,
                                      gpus_per_worker=dist.ray_gpus_per_worker,
                                      cpus_per_worker=dist.ray_cpus_per_worker, runtime=_runtime(args),
                                      format=a.format, progress=not a.quiet)
        else:
            store = embed(a.input, model=a.model, sae=sae, config=config, out_dir=a.out,
                          shard=_parse_shard(a.shard), format=a.format, progress=not a.quiet,
                          runtime=_runtime(args))
    if not store.complete:
        print(f"part done: {a.out} (finish the other parts, then `mona embed --finalize --out {a.out}`)")
        return 0
    if a.index:
        from mona.index import build_index

        build_index(open_store(a.out), progress=not a.quiet)
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
