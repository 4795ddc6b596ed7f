"""kcenter on bfloat16 sketches with list slices padded to a few shapes, against unpadded slices, side by side.

Above the hold budget (10M pooled codes) kcenter's greedy holds every row's sketch in bfloat16 and updates each
probed list with one matrix-vector product; oneDNN compiles a kernel per shape, so unpadded slices (every list a
different length) pay that per product. This runs the greedy twice on the same store and index, the sketch path
forced (``hold_bytes=0``), once with :func:`mona.select.neighbours.shape_bucket` and once with it made the
identity, interleaved ``--repeats`` times, and checks that both pick the same rows.

    python benchmarks/bench_kcenter_shapes.py --store /var/tmp/mb/bench-store-1000000 --picks 5000
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, help="a finished sae store (e.g. bench_select.py --keep-store)")
    ap.add_argument("--picks", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from mona.select import neighbours
    from mona.select.matrices import PoolMatrices
    from mona.store import open_store

    space = neighbours.pool_space(PoolMatrices(open_store(args.store)), True)
    real = neighbours.shape_bucket
    times: dict[str, list[float]] = {"padded": [], "unpadded": []}
    rows = {}
    for _ in range(args.repeats):
        for name, bucket in (("padded", real), ("unpadded", lambda size: int(size))):
            neighbours.shape_bucket = bucket
            t = time.perf_counter()
            rows[name], _, info = neighbours.kcenter_ivf(space, args.picks, hold_bytes=0, progress=False)
            times[name].append(time.perf_counter() - t)
            assert info["distances"] == "sketch"
    neighbours.shape_bucket = real
    same = float(np.mean(rows["padded"] == rows["unpadded"]))
    print(f"| kcenter, {args.picks:,} picks of {space.n:,} rows, bfloat16 sketches | padded: "
          f"{min(times['padded']):.1f} s | unpadded: {min(times['unpadded']):.1f} s | "
          f"{min(times['unpadded']) / min(times['padded']):.2f}x | same picks: {same:.3f} |")


if __name__ == "__main__":
    main()
