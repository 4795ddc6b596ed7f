"""Selection-stage benchmark on synthetic pooled SAE embeddings, printed as a BENCHMARKS.md snippet.

Run: ``python benchmarks/bench_select.py [--pool 1000000] [--coverage-pool 100000] [--out benchmarks/bench_select.md]``
Scale: ``python benchmarks/bench_select.py --scale 1000000 10000000 [--tasks index prototype max ...]`` writes a
store of each size to ``--store-dir`` (shard by shard) and runs each task in a child process (seconds, peak RSS).

Synthetic data with realistic sparsity: F = 16,384 features, about 100–300 distinct non-zeros per row
(mean ~200), feature ids drawn from a Zipf(1) law over a random permutation of the features (a few features fire
in almost every sample, most are rare, as in real pooled codes), values log-normal. The target set (500 rows)
draws from a Zipf law over a different permutation, so its prototype differs from the pool's mean.

Measured (each ``--repeats`` times, min and median wall time; the machine may be shared):

1. ``mona`` on ``--pool`` rows: weighted Jaccard of every row to the target prototype, top 5 % (``select()``
   end to end: scoring, stable top-n, top-10 contributing features of every pick); the same with cosine and with
   ``binarize=True`` (binary activation states against the target's feature-frequency profile); scoring alone.
2. ``greedy-coverage`` of 5 % of ``--coverage-pool`` rows (lazy greedy), ``simscale`` (5 %, threshold 0.5),
   ``kcenter`` and ``mmr`` (500 picks) on the same rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

F = 16_384


def synthetic_codes(n: int, seed: int, perm_seed: int, chunk: int = 50_000) -> sp.csr_matrix:
    """(n, F) float32 CSR, canonical (sorted, no duplicates), 150–450 Zipf(1) draws per row (about 100–300 distinct)."""
    rng = np.random.default_rng(seed)
    perm = np.random.default_rng(perm_seed).permutation(F)
    p = 1.0 / np.arange(1, F + 1)
    cdf = np.cumsum(p / p.sum())
    blocks = []
    for a in range(0, n, chunk):
        rows = min(chunk, n - a)
        counts = rng.integers(150, 451, size=rows)  # 150–450 Zipf draws: ~100–300 distinct features (mean ~200)
        idx = perm[np.minimum(np.searchsorted(cdf, rng.random(int(counts.sum()))), F - 1)].astype(np.int32)
        vals = rng.lognormal(-2.0, 1.0, idx.size).astype(np.float32)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        m = sp.csr_matrix((vals, idx, indptr), shape=(rows, F))
        m.sum_duplicates()
        blocks.append(m)
    return sp.vstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]


def timed(fn, repeats: int) -> tuple[float, float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times), out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()[0]
    py = platform.python_version()
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GB RAM, load average {load:.1f} at start, Python {py}"


def bench_target_scoring(args: argparse.Namespace, report) -> object:
    from mona.select import ArrayStore, SelectConfig, select
    from mona.select.similarity import jaccard_to_vector

    # ---- 1. target scoring on a large pool ----
    t = time.perf_counter()
    X = synthetic_codes(args.pool, seed=0, perm_seed=0)
    T = synthetic_codes(500, seed=1, perm_seed=1)
    nnz_row = X.nnz / X.shape[0]
    print(
        f"generated {X.shape[0]:,} x {F:,} ({X.nnz:,} non-zeros, {nnz_row:.0f}/row) in {time.perf_counter() - t:.1f} s",
        flush=True,
    )
    ids = [f"s{i}" for i in range(X.shape[0])]
    pool = ArrayStore(ids, X, manifest={"mode": "sae"})
    target = ArrayStore([f"t{i}" for i in range(T.shape[0])], T, manifest={"mode": "sae"})
    size = f"{X.shape[0]:,} rows, {nnz_row:.0f} nnz/row"
    proto = np.asarray(T.mean(axis=0), dtype=np.float32).ravel()
    tmin, tmed, _ = timed(lambda: jaccard_to_vector(X, proto), args.repeats)
    report("weighted Jaccard scores only (all rows)", size, tmin, tmed)
    for label, kw in (
        ("mona select 5 % (Jaccard, prototype)", {}),
        ("mona select 5 % (cosine, prototype)", {"similarity": "cosine"}),
        ("mona select 5 % (binarize: frequency profile)", {"binarize": True}),
    ):
        cfg = SelectConfig.build(method="mona", ratio=0.05, **kw)
        tmin, tmed, sel = timed(lambda cfg=cfg: select(pool, target=target, config=cfg), args.repeats)
        report(label, size, tmin, tmed, f"{len(sel):,} picks + top-10 features each")
    return target


# --------------------------------------------------------------------------------------------------------
# Scale: a store on disk, each task in its own process (seconds and peak RSS per task)
# --------------------------------------------------------------------------------------------------------

SCALE_TASKS = ("index", "prototype", "fused", "max", "max-exact", "max-ivf", "dedup", "dedup-pairs", "kcenter",
               "simscale", "mmr")


def plant_duplicates(X: sp.csr_matrix, share: float, seed: int) -> sp.csr_matrix:
    """``X`` with a ``share`` of its rows replaced by near-copies of random earlier rows (each value times
    U(0.97, 1.03): cosine ~0.999 to the original), as repeated prompts and templates leave in real pools."""
    if share <= 0:
        return X
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    dst = np.sort(rng.choice(np.arange(1, n), int(share * n), replace=False))
    originals = np.setdiff1d(np.arange(n), dst)  # copies are of rows that stay themselves (row 0 always does)
    src = originals[(rng.random(len(dst)) * np.searchsorted(originals, dst)).astype(np.int64)]  # an earlier one
    take = np.arange(n)
    take[dst] = src  # row dst becomes a near-copy of row src
    out = X[take].copy()
    noise = np.ones(n, bool)
    noise[dst] = False
    scale = rng.uniform(0.97, 1.03, out.nnz).astype(np.float32)
    scale[np.repeat(noise, np.diff(out.indptr))] = 1.0
    out.data *= scale
    return out


def write_store(path: Path, n: int, seed: int = 0, shard: int = 100_000, duplicates: float = 0.0) -> Path:
    """A finished ``sae`` store of ``n`` synthetic rows, written shard by shard (never one array in memory):
    uint16 feature ids and float16 values, as ``mona embed`` writes pooled codes; ``duplicates``: that share of
    each shard's rows are near-copies of earlier rows of the shard (:func:`plant_duplicates`)."""
    import json

    from mona.io import atomic_write_lines
    from mona.store import STORE_FORMAT, finalize, write_shard

    path.mkdir(parents=True, exist_ok=False)
    manifest = {"store_format": STORE_FORMAT, "mode": "sae", "model": {"name": "synthetic"}, "hook": "synthetic",
                "hooks": [], "sae": None, "pooling": "mean", "span": "all", "settings": {"storage": "safetensors"},
                "input": {"fingerprint": f"synthetic-{n}-{seed}", "n_samples": n}, "n_features": F,
                "n_shards": -(-n // shard), "complete": False, "shards": []}
    (path / "manifest.json").write_text(json.dumps(manifest))
    atomic_write_lines(path / "ids.jsonl", (f"s{i}" for i in range(n)))
    for k, a in enumerate(range(0, n, shard)):
        X = plant_duplicates(synthetic_codes(min(shard, n - a), seed=seed * 100_003 + k, perm_seed=0), duplicates, k)
        arrays = {"indptr": X.indptr.astype(np.int64), "indices": X.indices.astype(np.uint16),
                  "values": X.data.astype(np.float16), "lengths": np.full(X.shape[0], 64, np.int32)}
        write_shard(path, k, arrays, "safetensors")
        print(f"  wrote shard {k} ({a + X.shape[0]:,} of {n:,} rows)", flush=True)
    finalize(path)
    return path


def run_task(task: str, store: str, target: str, ratio: float, dedup: float = 0.9) -> dict:
    """One scale task in this process; returns seconds, peak RSS and what the selection recorded."""
    import resource

    from mona.index import build_index
    from mona.select import ArrayStore, select
    from mona.store import open_store

    pool = open_store(store)
    T = synthetic_codes(1000, seed=1, perm_seed=1)
    tgt = ArrayStore([f"t{i}" for i in range(T.shape[0])], T, manifest={"mode": "sae"})
    t0 = time.perf_counter()
    info: dict = {}
    if task == "index":
        idx = build_index(pool, progress=False)
        info = idx.info
    elif task == "dedup-pairs":  # the pairwise rule: every pair above 0.9 from range searches, then resolved
        from mona.select.dedup import keep_first
        from mona.select.matrices import PoolMatrices
        from mona.select.neighbours import near_pairs, pool_space

        i, j, info = near_pairs(pool_space(PoolMatrices(pool), True), dedup, "ivf")
        kept = int(keep_first(len(pool.ids), i, j).sum())
        info = {"dedup": {"kept": kept, "dropped": len(pool.ids) - kept, "pairs": int(len(i)), "index": info}}
    else:
        kw = {
            "prototype": dict(method="mona", ratio=ratio, target=tgt, aggregate="prototype"),
            "fused": dict(method="mona", ratio=ratio, target=tgt),  # the default: prototype and max, fused
            "max": dict(method="mona", ratio=ratio, similarity="cosine", aggregate="max", target=tgt),
            "max-exact": dict(method="mona", ratio=ratio, similarity="cosine", aggregate="max", target=tgt,
                              index="exact"),
            "max-ivf": dict(method="mona", ratio=ratio, similarity="cosine", aggregate="max", target=tgt,
                            index="ivf"),
            "dedup": dict(method="random", n=1, dedup=dedup),
            "kcenter": dict(method="kcenter", ratio=ratio),
            "simscale": dict(method="simscale", ratio=ratio),
            "mmr": dict(method="mmr", ratio=ratio, target=tgt),
        }[task]
        sel = select(pool, **kw)
        info = {k: sel.info.get(k) for k in ("index", "dedup", "counts", "timing") if sel.info.get(k) is not None}
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"task": task, "seconds": round(seconds, 2), "rss_gb": round(rss, 2), "info": info}


def bench_scale(args: argparse.Namespace) -> list[dict]:
    """Write (or reuse) a store of ``--scale`` rows under ``--store-dir`` and run each task in a child process."""
    import json
    import subprocess

    out: list[dict] = []
    for n in args.scale:
        path = Path(args.store_dir) / (f"bench-store-{n}" + (f"-dup{args.duplicates:g}" if args.duplicates else ""))
        if not (path / "manifest.json").exists():
            t = time.perf_counter()
            write_store(path, n, duplicates=args.duplicates)
            print(f"store of {n:,} rows written in {time.perf_counter() - t:.0f} s", flush=True)
        for task in args.tasks:
            cmd = [sys.executable, __file__, "--task", task, "--store", str(path), "--ratio", str(args.ratio),
                   "--dedup", str(args.dedup)]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.task_timeout)
            if proc.returncode != 0:
                print(proc.stderr[-2000:], flush=True)
                out.append({"task": task, "rows": n, "error": proc.stderr.strip().splitlines()[-1:]})
                continue
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            res["rows"] = n
            out.append(res)
            print(json.dumps(res, default=str), flush=True)
        if not args.keep_store:
            import shutil

            shutil.rmtree(path)
    return out


def scale_table(results: list[dict]) -> str:
    lines = ["| task | rows | seconds | peak RSS (GB) | path / notes |", "| --- | ---: | ---: | ---: | --- |"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['task']} | {r['rows']:,} | | | failed: {r['error']} |")
            continue
        i = r["info"]
        idx = i.get("index") or (i.get("dedup") or {}).get("index") or (i if r["task"] == "index" else {})
        note = f"{idx.get('path', idx.get('kind', 'streamed'))}"
        if idx.get("recall") is not None:
            note += f", recall {idx['recall']}"
        if idx.get("built") is not None and r["task"] != "index":
            note += ", index built" if idx["built"] else ", index loaded"
        if i.get("dedup"):
            note += f", dropped {i['dedup']['dropped']:,}"
        if i.get("counts"):
            note += f", {i['counts']['selected']:,} picks"
        lines.append(f"| {r['task']} | {r['rows']:,} | {r['seconds']:.1f} | {r['rss_gb']:.2f} | {note} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=1_000_000)
    ap.add_argument("--coverage-pool", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "bench_select.md")
    ap.add_argument("--scale", type=int, nargs="*", default=None,
                    help="instead: write stores of these sizes to --store-dir and run the scale tasks on each")
    ap.add_argument("--tasks", nargs="*", default=list(SCALE_TASKS), choices=SCALE_TASKS)
    ap.add_argument("--ratio", type=float, default=0.05)
    ap.add_argument("--dedup", type=float, default=0.9, help="cosine threshold of the dedup tasks")
    ap.add_argument("--duplicates", type=float, default=0.0,
                    help="--scale stores: this share of rows are planted near-copies of earlier rows")
    ap.add_argument("--store-dir", default="/tmp")
    ap.add_argument("--keep-store", action="store_true")
    ap.add_argument("--task-timeout", type=int, default=3600)
    ap.add_argument("--task", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--store", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.task:
        import json

        print(json.dumps(run_task(args.task, args.store, "", args.ratio, args.dedup), default=str))
        return 0
    if args.scale:
        print(machine(), flush=True)
        text = scale_table(bench_scale(args))
        print("\n" + text)
        return 0

    from mona.select import ArrayStore, SelectConfig, select

    header = machine()
    print(header, flush=True)
    rows: list[tuple[str, str, float, float, str]] = []

    def report(task: str, size: str, tmin: float, tmed: float, note: str = "") -> None:
        rows.append((task, size, tmin, tmed, note))
        print(f"{task:<48} {size:<22} min {tmin:8.2f} s  median {tmed:8.2f} s  {note}", flush=True)

    target = bench_target_scoring(args, report)

    # ---- 2. diversity methods ----
    Xc = synthetic_codes(args.coverage_pool, seed=2, perm_seed=0)
    cpool = ArrayStore([f"c{i}" for i in range(Xc.shape[0])], Xc, manifest={"mode": "sae"})
    size = f"{Xc.shape[0]:,} rows, {Xc.nnz / Xc.shape[0]:.0f} nnz/row"
    for label, kw, reps in (
        ("greedy-coverage 5 % (incremental)", {"method": "greedy-coverage", "ratio": 0.05}, args.repeats),
        (
            "greedy-coverage 5 % (lazy heap)",
            {"method": "greedy-coverage", "ratio": 0.05, "coverage_algorithm": "lazy"},
            1,
        ),
        ("simscale 5 % (Jaccard of active sets > 0.5)", {"method": "simscale", "ratio": 0.05}, 1),
        ("kcenter 500 picks (cosine, sparse mat-vec)", {"method": "kcenter", "n": 500}, 1),
        ("mmr 500 picks (λ=0.7, 5,000 candidates)", {"method": "mmr", "n": 500}, 1),
    ):
        cfg = SelectConfig.build(**kw)
        tgt = target if kw["method"] == "mmr" else None
        tmin, tmed, sel = timed(lambda cfg=cfg, tgt=tgt: select(cpool, target=tgt, config=cfg), reps)
        note = f"{len(sel):,} picks"
        mi = sel.info.get("method_info", {})
        if "rounds" in mi:
            note += f", {mi['rounds']} coverage rounds"
        if "evaluations" in mi:
            note += f", {mi['evaluations']:,} gain evaluations"
        report(label, size, tmin, tmed, note)

    date = dt.date.today().isoformat()
    cmd = "python benchmarks/bench_select.py" + (" " + " ".join(argv) if argv else "")
    lines = [
        "## Selection (`mona.select`)",
        "",
        f"Command: `{cmd}` — {date} — {header}.",
        "",
        f"Synthetic pooled SAE codes: {F:,} features, ~100–300 (mean ~200) Zipf-distributed non-zeros per row, "
        "log-normal values; target = 500 rows from another Zipf permutation. Wall time of `select()` end to end "
        f"unless noted; min and median of {args.repeats} runs (1 run for lazy coverage, simscale, kcenter, mmr).",
        "",
        "| task | data | min (s) | median (s) | notes |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    lines += [f"| {a} | {b} | {c:.2f} | {d:.2f} | {e} |" for a, b, c, d, e in rows]
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(f"\nwrote {args.out}\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
