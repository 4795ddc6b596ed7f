"""Reciprocal-rank fusion of ``mona``'s prototype scores with its best-target-sample scores (what
``aggregate="fused"``, the default, does) and with dense, lexical or sentence-embedding signals, on both
selection-quality benchmarks: does fusing make the SAE selection more robust across targets?

Run: ``python benchmarks/fusion_quality.py [--split tune]`` (features and sentence embeddings come from the same
cache as ``selection_quality.py``; ~4 min on 2 cores when cached). Writes ``results/fusion_<split>.md``.

Every pool sample's score against each target sample alone comes from :func:`selection_quality.per_sample_scores`
(``mona``'s robust setting, dense residual, tfidf, bm25, all-MiniLM-L6-v2): prototype methods (``mona`` here is
its prototype) average them over the target set, ``/max`` methods take the best target sample. Fusion ranks the
pool by each signal and scores a sample by ``Σ 1 / (60 + rank)`` (reciprocal-rank fusion, ties share the best
rank); precision is that of the top 5 %.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parent))

import selection_quality as sq  # noqa: E402

FUSIONS = (("mona", "mona/max"), ("mona", "sbert/max"), ("mona", "mona/max", "sbert/max"), ("mona", "dense"),
           ("mona", "sbert"), ("mona", "sbert/max", "dense"), ("mona", "tfidf/max"), ("mona", "mona/max", "tfidf/max"))


def rrf(scores: dict[str, np.ndarray], names: tuple[str, ...], k: int = 60) -> np.ndarray:
    return sum(1.0 / (k + rankdata(-scores[m], method="min")) for m in names)


def run(split: str) -> dict[str, dict[str, float]]:
    from mona.models import load_model
    from mona.saes import load_sae

    loaded = load_model("gemma-3-270m")
    sae = load_sae("default", model=loaded)
    manifest = {"model": loaded.identity.name, "hook": sae.hook, "sae": sae.identity.to_dict()}
    out: dict[str, dict[str, float]] = {}
    for bench in ("demo", "transfer"):
        pool, targets, hits_of, prefix = sq.load_benchmark(bench, split)
        domains = {s.id: s.record["domain"] for s in pool}
        pool_tc = sq.extract(pool, loaded, sae, max_tokens=256, name=f"{prefix}pool")
        target_tc = {k: sq.extract(v, loaded, sae, max_tokens=256, name=f"{prefix}target-{k}-{split}")
                     for k, v in targets.items()}
        S = sq.per_sample_scores(pool, targets, pool_tc, target_tc, sae, manifest)
        n = int(round(0.05 * len(pool)))
        for name in targets:
            scores = {"mona": S["mona (default)"][name].mean(1), "mona/max": S["mona (default)"][name].max(1),
                      "dense": S["dense"][name].mean(1),
                      "sbert": S["sbert"][name].mean(1), "sbert/max": S["sbert"][name].max(1),
                      "bm25": S["bm25"][name].mean(1), "bm25/max": S["bm25"][name].max(1),
                      "tfidf": S["tfidf"][name].mean(1), "tfidf/max": S["tfidf"][name].max(1)}
            rows = dict(scores)
            for names in FUSIONS:
                rows["rrf " + " + ".join(names)] = rrf(scores, names)
            for method, v in rows.items():
                out.setdefault(method, {})[f"{bench}:{name}"] = sq.top_precision(v, n, pool_tc.ids, domains,
                                                                                hits_of[name])
    return out


def table(out: dict[str, dict[str, float]], split: str) -> str:
    cols = list(next(iter(out.values())))
    base = [m for m in ("dense", "sbert", "sbert/max", "bm25", "bm25/max", "tfidf", "tfidf/max") if m in out]
    best = {c: max(out[m][c] for m in base) for c in cols}
    lines = [f"Precision of the top 5 % on the `{split}` halves of both benchmarks; `worst gap` = the lowest "
             f"(precision − best of {', '.join(base)}) over the targets.", "",
             "| method | " + " | ".join(cols) + " | mean | worst gap |", "|---|" + "---:|" * (len(cols) + 2)]
    for m, d in out.items():
        v = [d[c] for c in cols]
        gap = min(d[c] - best[c] for c in cols)
        lines.append(f"| {m} | " + " | ".join(f"{x:.2f}" for x in v) + f" | {np.mean(v):.3f} | {gap:+.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("tune", "report"), default="tune")
    args = ap.parse_args(argv)
    text = table(run(args.split), args.split)
    path = Path(__file__).resolve().parent / "results" / f"fusion_{args.split}.md"
    path.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
