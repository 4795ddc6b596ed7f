"""Does the subset help downstream? Held-out target loss after a LoRA proxy fine-tune on each method's 5%.

For each demo target (math, code, science, reasoning): select 5% of the demo pool (``build_demo_pool(n=2000)``)
toward the target's ``tune`` half with mona's default setting (``SelectConfig.build(method="mona")``) and with the
best baseline for that target on the tune half of the selection-quality benchmark (``BEST_BASELINE``); then
``mona.tune.tune`` fine-tunes a small model on each selection's best-ranked samples (``--max-samples``), on random
subsets of the same size (``--random-seeds``) and on the target's tune half itself (the in-domain reference), and
measures the loss per response token before ("none": the base model) and after tuning on

* ``held-out``: the target's ``report`` half (same source as the target), and
* ``cross-source``: same-domain samples from other sources than the target's, drawn from a second demo pool
  (``build_demo_pool(n=4000, seed=1)``) and never in the tuning pool (math: MMLU and evals math for a
  gsm_symbolic target; code: codeio and evals code for HumanEval; science: evals science for MMLU subjects;
  reasoning: evals reasoning tasks for BBH).

Share of the reference's gain = (base loss − loss) / (base loss − reference loss). No setting is chosen on the
report half: the fine-tune settings are fixed in advance and the methods come from the tune-half table.

    .venv/bin/python benchmarks/downstream.py                                   # the full run (~1 h, quiet machine)
    .venv/bin/python benchmarks/downstream.py --targets math --random-seeds 2   # reduced
"""

from __future__ import annotations

import argparse
import gc
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mona.data import Sample, load_samples  # noqa: E402
from mona.demo import TARGET_DOMAINS, build_demo_pool, build_demo_targets, load_jsonl  # noqa: E402
from mona.io import atomic_write_json, atomic_write_lines, atomic_write_text, mona_home  # noqa: E402
from mona.select import SelectConfig, load_selection, select  # noqa: E402
from mona.select.inputs import ArrayStore  # noqa: E402
from mona.tune import TuneConfig, tune  # noqa: E402

log = logging.getLogger("downstream")
RESULTS = Path(__file__).resolve().parent / "results"

BEST_BASELINE = {"math": ("dense", {}), "code": ("dense", {}), "science": ("sbert", {"aggregate": "max"}),
                 "reasoning": ("dense", {})}
"""Best baseline per target on the tune half (benchmarks/results/selection_quality_tune_quick.md): dense 1.00 on
math, dense and bm25 1.00 on code (dense taken), sbert/max 0.62 on science, dense 0.51 on reasoning."""


def cross_source(name: str, pool: list[Sample], size: int, seed: int = 1) -> list[dict]:
    """Same-domain records from other sources than the target's, from a second demo pool, none in ``pool``."""
    target_sources = {r["source"] for r in load_jsonl(build_demo_targets(split="report")[name])}
    taken = {s.id for s in pool} | {" ".join(s.prompt.split()).lower() for s in pool}
    out = []
    for r in load_jsonl(build_demo_pool(n=4000, seed=seed)):
        prompt = " ".join(r["messages"][0]["content"].split()).lower()
        if r["domain"] in TARGET_DOMAINS[name] and r["source"] not in target_sources and not (
                r["id"] in taken or prompt in taken):
            out.append(r)
    rng = np.random.default_rng(seed)
    return [out[i] for i in sorted(rng.permutation(len(out))[:size])]


def make_selections(names: list[str], pool: list[Sample], pool_path: Path, out: Path, args) -> None:
    """Each target's two selections (mona default, best baseline), saved once; features cached under MONA_HOME."""
    todo = [n for n in names if not all((out / n / s / "selection.json").exists() for s in ("sel-mona", "sel-base"))]
    if not todo:
        return
    from quality_features import extract
    from selection_quality import sentence_stores

    from mona.models import load_model
    from mona.saes import load_sae

    loaded = load_model("gemma-3-270m")
    sae = load_sae("default", model=loaded)
    pool_tc = extract(pool, loaded, sae, max_tokens=256, name="pool")
    targets = {n: load_samples(build_demo_targets(split="tune")[n]) for n in todo}
    manifest = {"model": loaded.identity.name, "hook": sae.hook, "sae": sae.identity.to_dict()}
    default = SelectConfig.build(method="mona", ratio=args.ratio)
    for name in todo:
        tc = extract(targets[name], loaded, sae, max_tokens=256, name=f"target-{name}-tune")
        sel = select(ArrayStore(pool_tc.ids, codes_matrix=pool_tc.pooled("mean"), manifest=manifest),
                     target=ArrayStore(tc.ids, codes_matrix=tc.pooled("mean"), manifest=manifest),
                     config=default, pool_samples=pool, sae=sae)
        _save(sel, out / name / "sel-mona", pool_path)
        method, options = BEST_BASELINE[name]
        cfg = SelectConfig.build(method=method, ratio=args.ratio, **options)
        if method == "dense":
            dm = {**manifest, "mode": "dense"}
            sel = select(ArrayStore(pool_tc.ids, dense_matrix=pool_tc.dense, manifest=dm),
                         target=ArrayStore(tc.ids, dense_matrix=tc.dense, manifest=dm), config=cfg, pool_samples=pool)
        elif method == "sbert":
            sentence_pool, sentence_targets = sentence_stores(pool, {name: targets[name]})
            sel = select(sentence_pool, target=sentence_targets[name], config=cfg, pool_samples=pool)
        else:
            sel = select(None, config=cfg, pool_samples=pool, target_samples=targets[name])
        _save(sel, out / name / "sel-base", pool_path)
    del loaded, sae, pool_tc
    gc.collect()


def _save(sel, folder: Path, pool_path: Path) -> None:
    sel.info["pool_samples"] = str(pool_path)
    sel.save(folder)


def precision(folder: Path, name: str) -> float:
    sel = load_selection(folder)
    return float(np.mean([(r or {}).get("domain") in TARGET_DOMAINS[name] for r in sel.records]))


def makeup(folder: Path, name: str, pool_path: Path) -> list[dict]:
    """What each tuned subset is made of: share in the target's domain, share from the cross-source evaluation's
    sources (its formats), share from the target's own source, mean response length in characters."""
    import json

    from mona.tune.subsets import read_selection

    by_id = dict(zip([s.id for s in load_samples(pool_path)], load_jsonl(pool_path), strict=True))
    for sel in sorted(folder.glob("sel-*")):  # the ids the tune gave the selection's records
        by_id.update(zip([s.id for s in read_selection(sel).samples], load_selection(sel).records, strict=True))
    cross = {r["source"] for r in load_jsonl(folder / "cross.jsonl")}
    own = {r["source"] for r in load_jsonl(build_demo_targets(split="report")[name])}
    rows = []
    for f in sorted((folder / "tune_runs").glob("*.json")):
        run = json.loads(f.read_text())
        recs = [by_id[i] for i in run.get("ids") or [] if i in by_id]
        if not recs:
            continue
        rows.append({"subset": run["key"], "n": len(recs),
                     "in_domain": float(np.mean([r["domain"] in TARGET_DOMAINS[name] for r in recs])),
                     "cross_sources": float(np.mean([r["source"] in cross for r in recs])),
                     "target_source": float(np.mean([r["source"] in own for r in recs])),
                     "response_chars": float(np.mean([len(r["messages"][-1]["content"]) for r in recs]))})
    return rows


def makeup_table(results: dict) -> str:
    lines = ["| target | subset | n | in target's domain | from the cross-source set's sources | from the target's "
             "source | mean response (chars) |", "|---|---|---:|---:|---:|---:|---:|"]
    for name, res in results.items():
        for m in res.get("makeup", []):
            lines.append(f"| {name} | {m['subset']} | {m['n']} | {m['in_domain']:.2f} | {m['cross_sources']:.2f} | "
                         f"{m['target_source']:.2f} | {m['response_chars']:.0f} |")
    return "\n".join(lines)


def table(results: dict) -> str:
    head = ("| target | subset | n | precision | held-out loss | gain | share of ref. | cross-source loss | gain "
            "| share of ref. |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for name, res in results.items():
        for row in res["rows"]:
            cells = [name, row["label"], str(row["n_train"]), row.get("precision", "")]
            for key in ("eval", "cross"):
                c = row["eval"].get(key)
                if c is None:
                    cells += ["", "", ""]
                    continue
                loss = f"{c['loss']:.3f}" + (f" ± {c['std']:.3f}" if c["std"] is not None else "")
                gain = "" if c["gain"] is None else f"{c['gain']:+.3f}"
                share = "" if c["share"] is None else f"{100 * c['share']:.0f}%"
                cells += [loss, gain, share]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict:
    names = args.targets.split(",")
    pool_path = build_demo_pool(n=args.pool_n)
    pool = load_samples(pool_path)
    out = Path(args.out)
    make_selections(names, pool, pool_path, out, args)
    config = TuneConfig(model=args.model, max_samples=args.max_samples, random_seeds=args.random_seeds,
                        eval_samples=args.eval_samples, threads=args.threads, seed=0)
    results = {}
    for name in names:
        folder = out / name
        cross = folder / "cross.jsonl"
        if not cross.exists():
            atomic_write_lines(cross, cross_source(name, pool, args.eval_samples or 10**6))
        start = time.time()
        res = tune([folder / "sel-mona", folder / "sel-base"], build_demo_targets(split="report")[name],
                   eval_cross=cross, tune_split=build_demo_targets(split="tune")[name], pool_samples=pool_path,
                   config=config, out_dir=folder, progress=not args.quiet)
        labels = {"base": "none (base model)", "sel-mona": "mona (default)",
                  "sel-base": f"{BEST_BASELINE[name][0]}{'/max' if BEST_BASELINE[name][1] else ''} (best baseline)",
                  "random": f"random ({args.random_seeds} seeds)", "reference": "in-domain reference"}
        rows = []
        for row in res.rows:
            row = dict(row, label=labels.get(row["group"], row["group"]))
            if row["group"].startswith("sel-"):
                row["precision"] = f"{precision(folder / row['group'], name):.2f}"
            rows.append(row)
        results[name] = {"rows": rows, "seconds": round(time.time() - start), "eval_sets": res.eval_sets,
                         "makeup": makeup(folder, name, pool_path)}
        log.info("%s done in %.0f s\n%s", name, time.time() - start, res.table())
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", default="math,code,science,reasoning")
    p.add_argument("--pool-n", type=int, default=2000)
    p.add_argument("--ratio", type=float, default=0.05)
    p.add_argument("--max-samples", type=int, default=80, help="largest subset tuned on (5%% of 2000 is 100)")
    p.add_argument("--random-seeds", type=int, default=3)
    p.add_argument("--eval-samples", type=int, default=64, help="samples per evaluation set (seeded draw)")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=str(mona_home() / "bench" / "downstream"))
    p.add_argument("--tag", default="", help="suffix of the results files")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.threads is not None:  # the embedding pass too (on a busy machine 1 thread can beat 2 by far)
        import torch

        torch.set_num_threads(args.threads)
    start = time.time()
    results = run(args)
    meta = {"args": vars(args), "seconds": round(time.time() - start), "python": platform.python_version(),
            "machine": platform.machine(), "results": results}
    stem = RESULTS / f"downstream{'_' + args.tag if args.tag else ''}"
    atomic_write_json(stem.with_suffix(".json"), meta)
    atomic_write_text(stem.with_suffix(".md"), table(results) + "\n\n" + makeup_table(results) + "\n")
    print(table(results))
    print(makeup_table(results))
    print(f"total {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
