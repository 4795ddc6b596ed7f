"""Selection quality when the target's format is not the pool's: the transfer benchmark, and the ranking of every
setting across both benchmarks that chooses ``mona``'s default.

The transfer pool (:mod:`mona.demo.transfer`) holds each target's domain only in other sources and formats, and
off-domain distractors in the target's own format. This runs ``selection_quality.py --benchmark transfer`` (same
machinery, features cached under ``$MONA_HOME/bench``) and then ranks every method and setting over the targets
of both benchmarks on the same split, from the result files both runs wrote:

    .venv/bin/python benchmarks/selection_quality.py --split tune --variants all      # demo, tune halves
    .venv/bin/python benchmarks/transfer_quality.py --split tune --variants all       # transfer + ranking
    .venv/bin/python benchmarks/transfer_quality.py --rank-only --split tune --variants all

The ranking (``results/robustness_<split>_<variants>.md``): per target, every method's rank by precision (ties
share the mean rank); a setting's mean rank over all targets, its mean precision, and its worst gap to the best
baseline (tfidf, bm25, dense, sbert, prototype or max) on any target. The default is chosen on ``--split tune``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import selection_quality as sq  # noqa: E402

BASELINES = ("tfidf", "tfidf/max", "bm25", "bm25/max", "dense (centred mean residual)", "sbert", "sbert/max")
"""The baselines a setting must not fall far below."""


def rank_table(results: dict[str, dict]) -> tuple[list[str], list[str], np.ndarray]:
    """(methods present in every benchmark, column names ``bench:target``, precision matrix)."""
    cols, per = [], {}
    for bench, res in results.items():
        for method, vals in res["precision"].items():
            for target, v in vals.items():
                per.setdefault(method, {})[f"{bench}:{target}"] = v
        cols += [f"{bench}:{t}" for t in res["targets"]]
    methods = [m for m, d in per.items() if all(c in d for c in cols) and not m.startswith(("random", "longest"))]
    return methods, cols, np.array([[per[m][c] for c in cols] for m in methods])


def robustness(results: dict[str, dict]) -> str:
    from scipy.stats import rankdata

    methods, cols, M = rank_table(results)
    R = np.column_stack([rankdata(-M[:, j]) for j in range(M.shape[1])])
    base = [i for i, m in enumerate(methods) if m in BASELINES]
    best_base = M[base].max(axis=0) if base else np.zeros(M.shape[1])
    split = next(iter(results.values()))["split"]
    lines = [
        f"Every method ranked per target (1 = highest precision; ties share the mean rank) on the `{split}` halves of "
        f"both benchmarks; `worst gap` = the lowest (precision − best baseline's) over the {len(cols)} targets.",
        "",
        "| method | " + " | ".join(cols) + " | mean | mean rank | worst gap |",
        "|---|" + "---:|" * (len(cols) + 3),
    ]
    for i in np.argsort(R.mean(axis=1), kind="stable"):
        cells = " | ".join(f"{v:.2f}" for v in M[i])
        lines.append(f"| {methods[i]} | {cells} | {M[i].mean():.3f} | {R[i].mean():.1f} | "
                     f"{(M[i] - best_base).min():+.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", choices=("tune", "report"), default="tune")
    p.add_argument("--variants", choices=("quick", "all"), default="quick")
    p.add_argument("--rank-only", action="store_true", help="only rank from the result files already written")
    p.add_argument("--bootstrap", type=int, default=0)
    p.add_argument("--max-tokens", type=int, default=256)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    stem = f"transfer_quality_{args.split}_{args.variants}"
    if not args.rank_only:
        run_args = argparse.Namespace(benchmark="transfer", split=args.split, variants=args.variants, pool_n=None,
                                      targets="", model="gemma-3-270m", sae="default", max_tokens=args.max_tokens,
                                      bootstrap=args.bootstrap)
        res = sq.run(run_args)
        sq.RESULTS.mkdir(exist_ok=True)
        (sq.RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=1))
        (sq.RESULTS / f"{stem}.md").write_text(sq.to_markdown(res))
        print(sq.to_markdown(res))
    files = {"demo": sq.RESULTS / f"selection_quality_{args.split}_{args.variants}.json",
             "transfer": sq.RESULTS / f"{stem}.json"}
    missing = [str(f) for f in files.values() if not f.exists()]
    if missing:
        print(f"not ranking: missing {', '.join(missing)}")
        return
    md = robustness({k: json.loads(f.read_text()) for k, f in files.items()})
    (sq.RESULTS / f"robustness_{args.split}_{args.variants}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
