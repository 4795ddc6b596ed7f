"""Selection quality on the offline demo pool: does each method's 5% pick the target's domain?

For every demo target (math, code, science, reasoning) and every method, select 5% of the demo pool toward the
target and report precision: the share of picked samples whose ``domain`` label is the target's
(``mona.demo.TARGET_DOMAINS``). Random's precision is the domain's base rate; 1.0 is perfect.

Targets are split into a ``tune`` half and a ``report`` half: variants are explored on ``--split tune`` and
the table in BENCHMARKS.md is ``--split report``, so no setting is chosen on the numbers it is reported with.

Diversity methods (greedy-coverage, simscale in both visit orders, kcenter) are scored by SAE feature coverage
(features active in at least one pick, as a share of those active in the pool) and the entropy of the picks'
domain labels.

    .venv/bin/python benchmarks/selection_quality.py --split report          # the BENCHMARKS.md table
    .venv/bin/python benchmarks/selection_quality.py --split tune --variants all
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_features import extract  # noqa: E402

from mona.data import load_samples  # noqa: E402
from mona.demo import TARGET_DOMAINS, build_demo_pool, build_demo_targets  # noqa: E402
from mona.models import hook_layer  # noqa: E402
from mona.select import select  # noqa: E402
from mona.select.config import SelectConfig  # noqa: E402
from mona.select.inputs import ArrayStore  # noqa: E402
from mona.select.methods.mona import fuse_ranks  # noqa: E402

log = logging.getLogger("selection_quality")
RESULTS = Path(__file__).resolve().parent / "results"


def precision(selection, pool_domains: dict[str, str], hits: set[str]) -> float:
    ids = selection.ids
    return float(np.mean([pool_domains[i] in hits for i in ids]))


def entropy(labels: list[str]) -> float:
    counts = np.array(list(Counter(labels).values()), float)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def log_odds_scores(P: sp.csr_matrix, T: sp.csr_matrix, prior: float = 1.0, positive_only: bool = False) -> np.ndarray:
    """Contrastive score: Σ_k b_k·w_k with w_k = log-odds of feature k being active in the target vs the pool.

    ``b`` is the binary activity of a pool sample, ``w_k = logit(p_target,k) − logit(p_pool,k)`` with add-``prior``
    smoothing — a Bernoulli naive-Bayes classifier "target vs pool" on SAE features (or words).
    """
    Pb, Tb = (P > 0).astype(np.float32).tocsr(), (T > 0).astype(np.float32).tocsr()
    df_p = np.asarray(Pb.sum(axis=0)).ravel()
    df_t = np.asarray(Tb.sum(axis=0)).ravel()
    pt = (df_t + prior) / (Tb.shape[0] + 2 * prior)
    pp = (df_p + prior) / (Pb.shape[0] + 2 * prior)
    w = np.log(pt / (1 - pt)) - np.log(pp / (1 - pp))
    if positive_only:
        w = np.maximum(w, 0)
    return np.asarray(Pb @ w).ravel()


def top_precision(scores: np.ndarray, n: int, ids: list[str], pool_domains: dict[str, str], hits: set[str]) -> float:
    order = np.lexsort((np.arange(len(scores)), -scores))[:n]
    return float(np.mean([pool_domains[ids[i]] in hits for i in order]))


def sae_variants(which: str) -> list[dict]:
    base = [
        {"pooling": "mean", "span": "all", "similarity": "jaccard", "aggregate": "prototype"},
        {"pooling": "mean", "span": "all", "similarity": "cosine", "aggregate": "prototype"},
        {"pooling": "binary", "span": "all", "similarity": "jaccard", "aggregate": "prototype"},
        {"pooling": "binary", "span": "all", "similarity": "cosine", "aggregate": "prototype"},
        {"pooling": "max", "span": "all", "similarity": "jaccard", "aggregate": "prototype"},
    ]
    idf, share = {"feature_weights": "idf"}, {"max_feature_share": 0.5}
    weights = (idf, share, {**idf, **share})
    weighted = [{**base[0], **w} for w in weights[:2]] + [
        {**base[1], **w, **c} for c in ({}, {"contrast": True}) for w in ({}, *weights) if w or c
    ]
    decoder = [{**base[1], "similarity": "decoder", **w} for w in ({}, idf, {**idf, **share})]
    decoder.append({**base[3], "similarity": "decoder", **idf})
    # the prototype and max rankings fused by reciprocal rank (``aggregate="fused"``)
    fused = [{**base[1], **idf, **share, "contrast": True, "aggregate": "fused"},
             {**base[1], **idf, **share, "aggregate": "fused"},
             {**base[1], "similarity": "decoder", **idf, **share, "aggregate": "fused"}]
    # without the features most target samples share (mostly the target's format)
    fused += [{**base[1], **idf, **share, "contrast": True, "aggregate": agg, "max_target_share": ts}
              for agg, ts in (("fused", 0.5), ("fused", 0.8), ("prototype", 0.5))]
    if which == "quick":
        return base + weighted + decoder + fused
    more = []
    for v in base:
        more.append({**v, "aggregate": "max"})
        more.append({**v, "span": "response"})
        more.append({**v, "span": "prompt"})
    for share in (0.2, 0.8):
        more.append({**base[1], "max_feature_share": share})
        more.append({**base[1], "feature_weights": "idf", "max_feature_share": share})
    more.append({**base[1], "aggregate": "max", "feature_weights": "idf", "max_feature_share": 0.5, "contrast": True})
    more.append({**base[3], "feature_weights": "idf", "max_feature_share": 0.5, "contrast": True})
    decoder.append({**base[1], "similarity": "decoder", "aggregate": "max", **idf})
    decoder.append({**base[1], "similarity": "decoder", "span": "prompt", **idf})
    for keep in (1024, 768, 512):  # what a smaller store (fewer pooled features per sample) would cost
        decoder.append({**base[1], "similarity": "decoder", **idf, "max_feature_share": 0.5, "keep": keep})
    return base + weighted + decoder + fused + more


def _default_setting() -> dict:
    from mona.select.methods.mona import CodeOptions

    o = CodeOptions()
    return {"pooling": "mean", "span": "all", "similarity": o.similarity, "aggregate": o.aggregate,
            "feature_weights": o.feature_weights, "max_feature_share": o.max_feature_share, "contrast": o.contrast}


CHOSEN = _default_setting()
"""``mona``'s default setting (the ``robust`` preset, chosen on the tune halves of both benchmarks, BENCHMARKS.md)
on mean-pooled codes; ``--bootstrap`` measures its spread, and the tables mark its row ``(default)``."""


def per_sample_scores(pool, targets, pool_tc, target_tc, sae, manifest) -> dict[str, dict[str, np.ndarray]]:
    """method -> target -> (n_pool, m) score of every pool sample against each target sample alone, scaled so
    that the mean over a set of target samples ranks the pool exactly as that set's prototype does (every
    prototype score here is linear in the target samples: mean of unit vectors for mona/decoder, tfidf and
    sbert, mean of standardised vectors for dense, term shares for bm25); ``/max`` methods take the best target
    sample instead."""
    from mona.select.matrices import PoolMatrices
    from mona.select.methods import get_method
    from mona.select.methods.base import Context
    from mona.select.methods.dense import score_dense
    from mona.select.methods.mona import score_codes

    cfg = SelectConfig.build(method="mona", n=1, similarity=CHOSEN["similarity"], top_features=0,
                             aggregate="prototype", contrast=CHOSEN["contrast"],
                             feature_weights=CHOSEN["feature_weights"], max_feature_share=CHOSEN["max_feature_share"])
    P = pool_tc.pooled(CHOSEN["pooling"], CHOSEN["span"])
    pm = PoolMatrices(ArrayStore(pool_tc.ids, codes_matrix=P, manifest=manifest), cfg.options, sae=sae)
    dm = PoolMatrices(ArrayStore(pool_tc.ids, dense_matrix=pool_tc.dense, manifest={**manifest, "mode": "dense"}),
                      SelectConfig.build(method="dense", n=1).options)
    text = {m: (get_method(m), Context(None, pool, SelectConfig.build(method=m, n=1), 1)) for m in ("tfidf", "bm25")}
    sentence_pool, sentence_targets = sentence_stores(pool, targets)
    X_sbert = sentence_pool.dense()
    out: dict[str, dict[str, np.ndarray]] = {k: {} for k in ("mona (default)", "dense", "tfidf", "bm25", "sbert")}
    for name, tc in target_tc.items():
        T = tc.pooled(CHOSEN["pooling"], CHOSEN["span"])
        rows = [ArrayStore([tc.ids[j]], codes_matrix=T[j], manifest=manifest) for j in range(T.shape[0])]
        out["mona (default)"][name] = np.stack([score_codes(pm, [r], 0, 0).scores for r in rows], axis=1)
        cols = []
        for j in range(len(tc.ids)):
            one = ArrayStore([tc.ids[j]], dense_matrix=tc.dense[j : j + 1], manifest={**manifest, "mode": "dense"})
            scale = float(np.linalg.norm(dm.normalize(np.asarray(tc.dense[j : j + 1], np.float32))))
            cols.append(score_dense(dm, [one], 0).scores * scale)
        out["dense"][name] = np.stack(cols, axis=1)
        for m, (method, ctx) in text.items():
            out[m][name] = np.stack([method.score(ctx, [t], 0).scores for t in targets[name]], axis=1)
        out["sbert"][name] = X_sbert @ sentence_targets[name].dense().T
    # the same per-target-sample scores, best target sample instead of the mean (what ``aggregate="max"`` does)
    for m in ("tfidf", "bm25", "sbert"):
        out[f"{m}/max"] = out[m]
    return out


def sentence_stores(pool, targets) -> tuple:
    """Stores of all-MiniLM-L6-v2 embeddings (``mona embed --mode sentence``) of the pool and of each target set,
    cached under MONA_HOME like the other benchmark features."""
    from mona.data import fingerprint
    from mona.embed import EmbedConfig, embed
    from mona.io import mona_home

    def store(samples):
        out = mona_home() / "bench" / f"sentence-{fingerprint(samples)}"
        return embed(samples, sae=None, config=EmbedConfig(mode="sentence"), out_dir=out, progress=False)

    return store(pool), {name: store(t) for name, t in targets.items()}


def aggregate(method: str, M: np.ndarray) -> np.ndarray:
    """A method's pool scores from its (pool, target samples) per-sample scores: the best target sample (``/max``),
    the mean (prototype), or both rankings fused (mona's default, ``aggregate="fused"``)."""
    if method == "mona (default)" and CHOSEN["aggregate"] == "fused":
        return fuse_ranks(M.mean(axis=1), M.max(axis=1))
    return M.max(axis=1) if method.endswith("/max") else M.mean(axis=1)


def bootstrap(S: dict[str, dict[str, np.ndarray]], n: int, ids: list[str], pool_domains: dict[str, str],
              hits_of: dict[str, set[str]], reps: int, seed: int = 0) -> dict:
    """Precision when the target set is resampled (with replacement) ``reps`` times, every method on the same
    resamples: how much of a gap between two methods is which target samples happened to be drawn."""
    rng = np.random.default_rng(seed)
    out: dict = {"reps": reps, "full": {}, "mean": {}, "p05": {}, "p95": {}, "sae_wins": {}}
    for name in next(iter(S.values())):
        hits = hits_of[name]
        m = next(iter(S.values()))[name].shape[1]
        draws = [np.arange(m)] + [rng.integers(0, m, m) for _ in range(reps)]
        prec = {}
        for meth in S:
            prec[meth] = np.array([top_precision(aggregate(meth, S[meth][name][:, d]), n, ids, pool_domains, hits)
                                   for d in draws])
        sae = prec["mona (default)"][1:]
        for meth, v in prec.items():
            out["full"].setdefault(meth, {})[name] = round(float(v[0]), 3)
            out["mean"].setdefault(meth, {})[name] = round(float(v[1:].mean()), 3)
            out["p05"].setdefault(meth, {})[name] = round(float(np.percentile(v[1:], 5)), 3)
            out["p95"].setdefault(meth, {})[name] = round(float(np.percentile(v[1:], 95)), 3)
            wins = float(np.mean((sae > v[1:]) + 0.5 * (sae == v[1:])))
            out["sae_wins"].setdefault(meth, {})[name] = round(wins, 3)
    return out


def variant_name(v: dict) -> str:
    name = f"mona {v['pooling']}/{v['similarity']}"
    if v["aggregate"] != "prototype":
        name += f"/{v['aggregate']}"
    if v["span"] != "all":
        name += f" span={v['span']}"
    if v.get("feature_weights", "none") != "none":
        name += f" w={v['feature_weights']}"
    if v.get("max_feature_share", 1.0) < 1.0:
        name += f" share<={v['max_feature_share']}"
    if v.get("contrast"):
        name += " contrast"
    if v.get("max_target_share", 1.0) < 1.0:
        name += f" target<={v['max_target_share']}"
    if v.get("keep"):
        name += f" keep<={v['keep']}"
    return name


def keep_largest(X: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row's ``k`` largest entries (ties at the cut kept), the rest dropped: a store holding at most ``k``
    pooled features per sample."""
    X = sp.csr_matrix(X, copy=True)
    for i in range(X.shape[0]):
        v = X.data[X.indptr[i] : X.indptr[i + 1]]
        if len(v) > k:
            v[v < np.partition(v, -k)[-k]] = 0
    X.eliminate_zeros()
    return X


def load_benchmark(benchmark: str, split: str, pool_n: int | None = None) -> tuple[list, dict, dict, str]:
    """(pool samples, target name -> samples, target name -> pool domains that count as hits, feature-cache
    prefix) of the ``demo`` benchmark (:func:`mona.demo.build_demo_pool`) or the ``transfer`` one
    (:mod:`mona.demo.transfer`: in-domain pool samples only in other sources and formats than the target's,
    distractors in the target's format)."""
    if benchmark == "transfer":
        from mona.demo.transfer import build_transfer_pool, build_transfer_targets

        pool = load_samples(build_transfer_pool(n=pool_n or 2000))
        targets = {k: load_samples(p) for k, p in build_transfer_targets(split=split).items()}
        return pool, targets, {k: {k} for k in targets}, "transfer-"
    pool = load_samples(build_demo_pool(n=pool_n or 4000))
    targets = {k: load_samples(p) for k, p in build_demo_targets(split=split).items()}
    return pool, targets, {k: TARGET_DOMAINS[k] for k in targets}, ""


def run(args: argparse.Namespace) -> dict:
    from mona.models import load_model
    from mona.saes import load_sae

    pool, targets, hits_of, prefix = load_benchmark(args.benchmark, args.split, args.pool_n)
    pool_domains = {s.id: s.record["domain"] for s in pool}
    if args.targets:
        targets = {k: v for k, v in targets.items() if k in args.targets.split(",")}
    loaded = load_model(args.model)
    sae = load_sae(args.sae, model=loaded)
    t0 = time.time()
    pool_tc = extract(pool, loaded, sae, max_tokens=args.max_tokens, name=f"{prefix}pool")
    target_tc = {
        k: extract(v, loaded, sae, max_tokens=args.max_tokens, name=f"{prefix}target-{k}-{args.split}")
        for k, v in targets.items()
    }
    log.info("features ready in %.0f s", time.time() - t0)
    manifest = {"model": loaded.identity.name, "hook": sae.hook, "sae": sae.identity.to_dict()}
    n = int(round(0.05 * len(pool)))
    results: dict[str, dict[str, float]] = {}

    def record(method: str, target: str, value: float) -> None:
        results.setdefault(method, {})[target] = round(value, 3)

    for v in sae_variants(args.variants):
        P = pool_tc.pooled(v["pooling"], v["span"])
        if v.get("keep"):
            P = keep_largest(P, v["keep"])
        for name, tc in target_tc.items():
            T = tc.pooled(v["pooling"], v["span"])
            if v.get("keep"):
                T = keep_largest(T, v["keep"])
            cfg = SelectConfig.build(method="mona", n=n, similarity=v["similarity"], aggregate=v["aggregate"],
                                     top_features=0, feature_weights=v.get("feature_weights", "none"),
                                     max_feature_share=v.get("max_feature_share", 1.0),
                                     contrast=v.get("contrast", False),
                                     max_target_share=v.get("max_target_share", 1.0))
            sel = select(
                ArrayStore(pool_tc.ids, codes_matrix=P, manifest=manifest),
                target=ArrayStore(tc.ids, codes_matrix=T, manifest=manifest),
                config=cfg,
                pool_samples=pool,
                sae=sae,
            )
            record(variant_name(v), name, precision(sel, pool_domains, hits_of[name]))

    if args.variants == "all":
        from sklearn.feature_extraction.text import CountVectorizer

        for span in ("all", "response"):
            Xp = pool_tc.pooled("binary", span)
            for name, tc in target_tc.items():
                sc = log_odds_scores(Xp, tc.pooled("binary", span))
                label = "explore: SAE log-odds" + ("" if span == "all" else f" span={span}")
                record(label, name, top_precision(sc, n, pool_tc.ids, pool_domains, hits_of[name]))
        vec = CountVectorizer(min_df=2, binary=True).fit([s.plain for s in pool])
        Wp = vec.transform([s.plain for s in pool]).tocsr()
        for name in target_tc:
            Wt = vec.transform([s.plain for s in targets[name]]).tocsr()
            sc = log_odds_scores(Wp, Wt)
            record(
                "explore: word log-odds", name, top_precision(sc, n, pool_tc.ids, pool_domains, hits_of[name])
            )

    for name, tc in target_tc.items():
        hits = hits_of[name]
        dense_pool = ArrayStore(pool_tc.ids, dense_matrix=pool_tc.dense, manifest={**manifest, "mode": "dense"})
        dense_t = ArrayStore(tc.ids, dense_matrix=tc.dense, manifest={**manifest, "mode": "dense"})
        sel = select(dense_pool, target=dense_t, config=SelectConfig.build(method="dense", n=n), pool_samples=pool)
        record("dense (centred mean residual)", name, precision(sel, pool_domains, hits))
        # cost-matched: the layers up to the SAE's hook (a cache may hold deeper ones from a run at another hook)
        depth = hook_layer(sae.hook) + 1
        lay_manifest = {**manifest, "mode": "layers"}
        lay_pool = ArrayStore(pool_tc.ids, layers_array=pool_tc.layers[:, :depth].astype(np.float32),
                              manifest=lay_manifest)
        lay_t = ArrayStore(tc.ids, layers_array=tc.layers[:, :depth].astype(np.float32), manifest=lay_manifest)
        sel = select(lay_pool, target=lay_t, config=SelectConfig.build(method="nait", n=n), pool_samples=pool)
        record(f"nait (layers 0-{depth - 1})", name, precision(sel, pool_domains, hits))
        sentence_pool, sentence_targets = sentence_stores(pool, {name: targets[name]})
        for method in ("tfidf", "bm25", "sbert"):
            for agg in ("prototype", "max"):
                cfg = SelectConfig.build(method=method, n=n, aggregate=agg)
                if method == "sbert":
                    sel = select(sentence_pool, target=sentence_targets[name], config=cfg, pool_samples=pool)
                else:
                    sel = select(None, config=cfg, pool_samples=pool, target_samples=targets[name])
                record(f"{method}" + ("" if agg == "prototype" else "/max"), name, precision(sel, pool_domains, hits))
        for method in ("random", "longest"):
            sel = select(None, config=SelectConfig.build(method=method, n=n, seed=0), pool_samples=pool)
            record(method, name, precision(sel, pool_domains, hits))

    boot = None
    if args.bootstrap:
        S = per_sample_scores(pool, targets, pool_tc, target_tc, sae, manifest)
        boot = bootstrap(S, n, pool_tc.ids, pool_domains, hits_of, args.bootstrap)

    diversity = {}
    X = pool_tc.pooled("mean", "all")
    pool_store = ArrayStore(pool_tc.ids, codes_matrix=X, manifest=manifest)
    active_pool = int((np.asarray((X > 0).sum(axis=0)).ravel() > 0).sum())
    runs = {m: {"method": m} for m in ("random", "longest", "greedy-coverage", "simscale", "kcenter")}
    runs["simscale (random order)"] = {"method": "simscale", "simscale_order": "random"}
    for label, kw in runs.items():
        sel = select(pool_store, config=SelectConfig.build(n=n, seed=0, top_features=0, **kw), pool_samples=pool)
        rows = list(sel.rows)
        covered = int((np.asarray((X[rows] > 0).sum(axis=0)).ravel() > 0).sum())
        diversity[label] = {
            "picked": len(rows),
            "feature_coverage": round(covered / max(active_pool, 1), 3),
            "domain_entropy_bits": round(entropy([pool_domains[pool_tc.ids[r]] for r in rows]), 3),
        }
    base_rates = {k: round(float(np.mean([pool_domains[s.id] in hits_of[k] for s in pool])), 3) for k in targets}
    return {
        "benchmark": args.benchmark,
        "split": args.split,
        "pool": len(pool),
        "n": n,
        "targets": {k: len(v) for k, v in targets.items()},
        "base_rates": base_rates,
        "precision": results,
        "bootstrap": boot,
        "diversity": diversity,
        "model": loaded.identity.to_dict(),
        "sae": sae.identity.to_dict(),
        "max_tokens": args.max_tokens,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "date": time.strftime("%Y-%m-%d"),
    }


def to_markdown(res: dict) -> str:
    names = list(res["targets"])
    lines = [
        f"Precision of a 5% selection (n={res['n']} of {res['pool']}) at picking the target's domain, "
        f"targets' `{res['split']}` half ({', '.join(f'{k} {v}' for k, v in res['targets'].items())} samples).",
        "",
        "| method | " + " | ".join(names) + " | mean |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    lines.append(
        "| base rate (random's expectation) | "
        + " | ".join(f"{res['base_rates'][k]:.2f}" for k in names)
        + f" | {np.mean(list(res['base_rates'].values())):.2f} |"
    )
    for method, per in res["precision"].items():
        vals = [per.get(k, float("nan")) for k in names]
        lines.append(f"| {method} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {np.mean(vals):.2f} |")
    boot = res.get("bootstrap")
    if boot:
        lines += [
            "",
            f"Target sets resampled with replacement {boot['reps']} times (every method on the same resamples): "
            "mean precision [5th, 95th percentile]; `SAE wins` = share of resamples where mona's default "
            "setting picks more target-domain samples than the method (ties count half). `full` = the whole "
            "target set, as in the table above.",
            "",
            "| method | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for meth in boot["mean"]:
            cells = [f"{boot['mean'][meth][k]:.2f} [{boot['p05'][meth][k]:.2f}, {boot['p95'][meth][k]:.2f}] "
                     f"(full {boot['full'][meth][k]:.2f})" for k in names]
            lines.append(f"| {meth} | " + " | ".join(cells) + " |")
        for meth in boot["sae_wins"]:
            if meth != "mona (default)":
                lines.append(f"| SAE wins vs {meth} | " + " | ".join(f"{boot['sae_wins'][meth][k]:.0%}"
                                                                   for k in names) + " |")
    lines += [
        "",
        "Diversity (5% of the pool): SAE feature coverage and domain entropy of the picks.",
        "",
        "| method | feature coverage | domain entropy (bits) |",
        "|---|---:|---:|",
    ]
    for method, d in res["diversity"].items():
        lines.append(f"| {method} | {d['feature_coverage']:.3f} | {d['domain_entropy_bits']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--benchmark", choices=("demo", "transfer"), default="demo",
                   help="demo pool and targets, or the transfer pool (target-domain samples only in other formats)")
    p.add_argument("--split", choices=("tune", "report", "all"), default="report")
    p.add_argument("--variants", choices=("quick", "all"), default="quick")
    p.add_argument("--pool-n", type=int, default=None, help="pool size (default: 4000 demo, 2000 transfer)")
    p.add_argument("--targets", default="", help="comma-separated subset of targets")
    p.add_argument("--model", default="gemma-3-270m")
    p.add_argument("--sae", default="default")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--bootstrap", type=int, default=0,
                   help="also resample each target set this many times (mona's default vs the baselines)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    res = run(args)
    RESULTS.mkdir(exist_ok=True)
    stem = f"selection_quality_{args.split}_{args.variants}"
    if args.benchmark != "demo":
        stem = f"{args.benchmark}_quality_{args.split}_{args.variants}"
    if args.sae != "default":  # another SAE's results sit beside the default's
        stem += f"_{Path(args.sae).name}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=1))
    md = to_markdown(res)
    (RESULTS / f"{stem}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
