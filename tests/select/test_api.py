"""select() end to end on in-memory stores and texts: planted targets, determinism, errors, artifacts, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from mona.data import Sample
from mona.errors import MonaError
from mona.select import ArrayStore, SelectConfig, load_selection, select

N, F, TOPIC = 400, 256, 20
CLUSTER = np.arange(0, N, 10)  # 40 planted target-like rows spread through the pool
MANIFEST = {
    "model": {"name": "m", "weights_hash": "aa"},
    "hook": "blocks.1.hook_resid_post",
    "sae": {"name": "s", "weights_hash": "bb"},
    "pooling": "mean",
}


def _codes(n: int, topic: np.ndarray, rng: np.random.Generator) -> sp.csr_matrix:
    rows = np.zeros((n, F), np.float32)
    for i in range(n):
        if topic[i]:
            feats = np.concatenate([rng.choice(TOPIC, 12, replace=False), rng.choice(np.arange(TOPIC, F), 8)])
        else:
            feats = rng.choice(np.arange(TOPIC, F), 20, replace=False)
        rows[i, feats] = rng.uniform(0.5, 1.5, len(feats))
    return sp.csr_matrix(rows)


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(0)
    is_topic = np.zeros(N, bool)
    is_topic[CLUSTER] = True
    ids = [f"p{i}" for i in range(N)]
    pool = ArrayStore(ids, _codes(N, is_topic, rng), manifest={**MANIFEST, "mode": "sae"})
    target = ArrayStore(
        [f"t{i}" for i in range(15)], _codes(15, np.ones(15, bool), rng), manifest={**MANIFEST, "mode": "sae"}
    )
    # dense: a large constant direction shared by all + a topic direction for the cluster
    common, topic_dir = rng.normal(size=64) * 10, rng.normal(size=64)
    dense = common + rng.normal(size=(N, 64)) + 2.0 * is_topic[:, None] * topic_dir
    tdense = common + rng.normal(size=(15, 64)) + 2.0 * topic_dir
    dpool = ArrayStore(ids, dense_matrix=dense.astype(np.float32), manifest={**MANIFEST, "mode": "dense"})
    dtarget = ArrayStore(
        [f"t{i}" for i in range(15)], dense_matrix=tdense.astype(np.float32), manifest={**MANIFEST, "mode": "dense"}
    )
    math = "solve equation integer sum divide multiply fraction percent remainder".split()
    other = "poem river castle recipe garden travel violin painting weather history novel".split()

    def text(words, k, r):
        return " ".join(r.choice(words, k))

    samples = [
        Sample(
            id=ids[i],
            messages=[
                {"role": "user", "content": text(math if is_topic[i] else other, 6, rng)},
                {"role": "assistant", "content": text(other, 4 + i % 7, rng)},
            ],
            record={"id": ids[i], "instruction": f"q{i}", "domain": "math" if is_topic[i] else "other"},
        )
        for i in range(N)
    ]
    targets = [
        Sample(
            id=f"t{i}",
            messages=[{"role": "user", "content": text(math, 8, rng)}, {"role": "assistant", "content": "ok"}],
        )
        for i in range(15)
    ]
    return dict(
        pool=pool, target=target, dpool=dpool, dtarget=dtarget, samples=samples, targets=targets, is_topic=is_topic
    )


def precision(sel, is_topic) -> float:
    return float(is_topic[sel.rows].mean())


@pytest.mark.parametrize("similarity", ["jaccard", "cosine"])
@pytest.mark.parametrize("aggregate", ["prototype", "max"])
def test_mona_recovers_planted_cluster(world, similarity, aggregate):
    sel = select(world["pool"], target=world["target"], n=40, similarity=similarity, aggregate=aggregate)
    assert precision(sel, world["is_topic"]) >= 0.9
    assert len(sel.features[0]) == 10 and all(f["feature"] < TOPIC for f in sel.features[0][:3])
    assert (np.diff(sel.scores) <= 0).all()
    if aggregate == "max":
        assert all(m.startswith("t") for m in sel.matches)


def test_binary_profile_and_mmr(world):
    sel = select(world["pool"], target=world["target"], n=40, binarize=True)
    assert precision(sel, world["is_topic"]) >= 0.9
    sel = select(world["pool"], target=world["target"], n=40, method="mmr", mmr_lambda=0.9)
    assert precision(sel, world["is_topic"]) >= 0.8


def test_dense_and_text_baselines_recover_planted_cluster(world):
    sel = select(world["dpool"], target=world["dtarget"], n=40, method="dense")
    assert precision(sel, world["is_topic"]) >= 0.9
    for method in ("tfidf", "bm25"):
        for aggregate in ("prototype", "max"):
            sel = select(
                None,
                n=40,
                method=method,
                aggregate=aggregate,
                pool_samples=world["samples"],
                target_samples=world["targets"],
            )
            assert precision(sel, world["is_topic"]) >= 0.9, (method, aggregate)


def test_dense_standardize_ignores_a_massive_noisy_dimension():
    """One dimension with 100x the spread of the rest (a format shared by the targets and half the pool, not the
    topic) decides raw cosines."""
    rng = np.random.default_rng(1)
    is_topic = np.zeros(N, bool)
    is_topic[CLUSTER] = True
    topic_dir = rng.normal(size=64)
    dense = rng.normal(size=(N, 64)) + 1.5 * is_topic[:, None] * topic_dir
    dense[:, 0] = 150.0 * (rng.random(N) < 0.5)
    tdense = rng.normal(size=(15, 64)) + 1.5 * topic_dir
    tdense[:, 0] = 150.0
    ids = [f"p{i}" for i in range(N)]
    pool = ArrayStore(ids, dense_matrix=dense.astype(np.float32), manifest={**MANIFEST, "mode": "dense"})
    target = ArrayStore([f"t{i}" for i in range(15)], dense_matrix=tdense.astype(np.float32),
                        manifest={**MANIFEST, "mode": "dense"})
    raw = select(pool, target=target, n=40, method="dense", standardize=False)
    std = select(pool, target=target, n=40, method="dense")
    assert precision(raw, is_topic) < 0.5
    assert precision(std, is_topic) >= 0.9
    assert std.config.options.standardize and not raw.config.options.standardize


def test_feature_weights_discount_format_features(world):
    """Four strong 'format' features fire in every target and in 70% of the pool: they drown the topic.
    Dropping features active in most of the pool removes them; IDF weighting and contrast discount them."""
    rng = np.random.default_rng(3)
    fmt = np.arange(F - 4, F)

    def with_format(store, share):
        X = store.codes().toarray()
        on = rng.random(X.shape[0]) < share
        X[np.ix_(on, fmt)] = 3.0
        return ArrayStore(list(store.ids), sp.csr_matrix(X), manifest=store.manifest)

    pool, target = with_format(world["pool"], 0.7), with_format(world["target"], 1.0)
    plain = select(pool, target=target, n=40, method="mona", preset="paper")
    dropped = select(pool, target=target, n=40, method="mona", preset="paper", max_feature_share=0.5, top_features=20)
    cos = select(pool, target=target, n=40, method="mona", preset="paper", similarity="cosine")
    idf = select(pool, target=target, n=40, method="mona", preset="paper", similarity="cosine", feature_weights="idf")
    default = select(pool, target=target, n=40, method="mona")  # the robust preset discounts them by itself
    assert precision(default, world["is_topic"]) >= 0.95
    assert precision(plain, world["is_topic"]) < 0.8
    assert precision(dropped, world["is_topic"]) >= 0.95
    assert precision(cos, world["is_topic"]) < 0.8
    assert precision(idf, world["is_topic"]) >= 0.95
    for aggregate in ("prototype", "max"):  # scoring against target minus pool mean discounts them too
        con = select(pool, target=target, n=40, method="mona", similarity="cosine", contrast=True, aggregate=aggregate)
        assert precision(con, world["is_topic"]) >= 0.9, aggregate
    with pytest.raises(MonaError, match="contrast"):
        SelectConfig.build(contrast=True, similarity="jaccard")
    assert not {f["feature"] for feats in dropped.features for f in feats} & set(fmt.tolist())
    with pytest.raises(MonaError, match="max_feature_share"):
        SelectConfig.build(max_feature_share=0.0)
    with pytest.raises(MonaError, match="feature_weights"):
        SelectConfig.build(feature_weights="tf")


@pytest.mark.slow
def test_sbert_baseline_reads_sentence_stores(world, tmp_path):
    from mona.embed import EmbedConfig, embed

    pool = world["samples"][:100]  # rows 0, 10, ..., 90 are the planted ones
    cfg = EmbedConfig(mode="sentence")
    pool_store = embed(pool, sae=None, config=cfg, out_dir=tmp_path / "pool", progress=False)
    target = embed(world["targets"][:5], sae=None, config=cfg, out_dir=tmp_path / "target", progress=False)
    sel = select(pool_store, target=target, n=10, method="sbert", pool_samples=pool)
    assert precision(sel, world["is_topic"]) >= 0.9
    with pytest.raises(MonaError, match="mode sentence"):
        select(world["pool"], target=world["target"], n=5, method="sbert")


def test_longest_and_random(world):
    sel = select(world["pool"], n=5, method="longest", pool_samples=world["samples"])
    lens = np.array([len(s.response) for s in world["samples"]])
    assert sel.rows.tolist() == sorted(range(N), key=lambda i: (-lens[i], i))[:5]
    a = select(world["pool"], ratio=0.1, method="random", seed=3)
    b = select(world["pool"], ratio=0.1, method="random", seed=3)
    c = select(world["pool"], ratio=0.1, method="random", seed=4)
    assert len(a) == 40 and a.ids == b.ids and a.ids != c.ids


@pytest.mark.parametrize("method", ["mona", "greedy-coverage", "simscale", "kcenter", "mmr", "random"])
def test_deterministic_for_a_seed(world, method):
    own = {"simscale": dict(simscale_order="random", sim_threshold=0.2)}.get(method, {})
    kw = dict(n=30, method=method, seed=7, **own)
    a = select(world["pool"], target=world["target"], **kw)
    b = select(world["pool"], target=world["target"], **kw)
    assert a.ids == b.ids and np.array_equal(a.scores, b.scores) and a.features == b.features


def test_diversity_methods_on_store(world):
    sel = select(world["pool"], n=20, method="greedy-coverage")
    assert (np.diff(sel.scores[:5]) <= 0).all() and sel.scores[0] == 20
    assert abs(sum(f["share"] for f in sel.features[0]) - 10 / 20) < 1e-9  # 10 of 20 new features listed
    sel = select(world["pool"], n=20, method="simscale", sim_threshold=0.3)
    assert len(sel) == 20 and sel.features[0]
    sel = select(world["dpool"], n=10, method="kcenter")
    assert len(set(sel.ids)) == 10


def test_several_target_sets(world):
    rng = np.random.default_rng(1)
    other_topic = np.zeros(N, bool)
    other_topic[5::10] = True
    t2 = ArrayStore(
        [f"u{i}" for i in range(10)], _codes(10, np.zeros(10, bool), rng), manifest={**MANIFEST, "mode": "sae"}
    )
    sel = select(world["pool"], target=[world["target"], t2], n=20, targets="quota")
    assert sel.targets == [0, 1] * 10
    assert world["is_topic"][sel.rows[np.array(sel.targets) == 0]].all()
    merged = select(world["pool"], target=[world["target"], t2], n=20)
    assert merged.targets is None
    sel = select(world["pool"], target=[world["target"], t2], n=20, targets="quota", quotas=(3, 1))
    assert sel.targets.count(0) == 15


def _other_sae_target(world):
    return ArrayStore(world["target"].ids, world["target"].codes(),
                      manifest={**MANIFEST, "mode": "sae", "sae": {"name": "s", "weights_hash": "cc"}})


BAD_SELECTIONS = {
    "budget over the pool": (lambda w: dict(pool=w["pool"], target=w["target"], n=N + 1), "larger than the pool"),
    "no target": (lambda w: dict(pool=w["pool"], n=5), "needs a target"),
    "empty target": (
        lambda w: dict(pool=w["pool"], n=5,
                       target=ArrayStore([], sp.csr_matrix((0, F), dtype=np.float32), manifest={**MANIFEST})),
        "empty",
    ),
    "no target texts": (lambda w: dict(pool=None, n=5, method="tfidf", pool_samples=w["samples"]),
                        "needs target samples"),
    "target from another SAE": (lambda w: dict(pool=w["pool"], target=_other_sae_target(w), n=5), "differ in sae"),
    "store of the wrong mode": (lambda w: dict(pool=w["dpool"], target=w["dtarget"], n=5, method="mona"),
                                "mode sae"),
    "samples not the store's rows": (lambda w: dict(pool=w["pool"], n=5, method="random",
                                                    pool_samples=w["samples"][:-1]), "rows but"),
    "no pool at all": (lambda w: dict(pool=None, n=5, method="random"), "no pool"),
    "option of another method": (lambda w: dict(pool=w["pool"], n=5, method="random", similarity="cosine"),
                                 "random's options: none"),
}


@pytest.mark.parametrize("case", list(BAD_SELECTIONS))
def test_bad_inputs_are_one_line_errors(world, case):
    make, match = BAD_SELECTIONS[case]
    kwargs = make(world)
    with pytest.raises(MonaError, match=match) as info:
        select(kwargs.pop("pool"), **kwargs)
    assert "\n" not in str(info.value)


def test_save_load_round_trip(world, tmp_path):
    import pyarrow.parquet as pq

    sel = select(world["pool"], target=world["target"], n=25, aggregate="max", pool_samples=world["samples"])
    sel.save(tmp_path / "sel")
    rows = [json.loads(x) for x in (tmp_path / "sel" / "selection.jsonl").read_text().splitlines()]
    assert [r["rank"] for r in rows] == list(range(25))
    assert rows[0]["instruction"] == world["samples"][sel.rows[0]].record["instruction"]
    assert {"id", "row", "rank", "score", "method", "features", "match", "domain"} <= set(rows[0])
    table = pq.read_table(tmp_path / "sel" / "selection.parquet").to_pylist()
    assert [r["id"] for r in table] == sel.ids and table[0]["features"] == rows[0]["features"]
    meta = json.loads((tmp_path / "sel" / "selection.json").read_text())
    assert meta["counts"]["selected"] == 25 and meta["config"]["options"]["aggregate"] == "max"
    assert meta["pool"]["manifest"]["sae"]["weights_hash"] == "bb"
    back = load_selection(tmp_path / "sel")
    assert back.ids == sel.ids and np.allclose(back.scores, sel.scores) and back.rows.tolist() == sel.rows.tolist()
    assert back.features == sel.features and back.matches == sel.matches and back.config == sel.config
    assert back.records[0]["domain"] == sel.records[0]["domain"]


def test_config_json_round_trip(tmp_path):
    cfg = SelectConfig.build(method="nait", n=5, nait_layers=(1, 2), quotas=(1.0, 2.0))
    cfg.save(tmp_path / "c.json")
    assert SelectConfig.load(tmp_path / "c.json") == cfg
    with pytest.raises(MonaError, match="unknown select setting"):
        SelectConfig.from_dict({"methd": "mona"})


def test_nait_on_array_store():
    rng = np.random.default_rng(0)
    L, d = 2, 8
    axes = np.eye(d)[:L]
    first = rng.normal(size=(20, L, d))
    tgt = np.stack([first, first + rng.uniform(1, 2, (20, 1, 1)) * axes], 2)
    pool = rng.normal(size=(50, L, 2, d))
    pool[7, :, 1] += 5 * axes
    t = ArrayStore([f"t{i}" for i in range(20)], layers_array=tgt.astype(np.float32))
    p = ArrayStore([f"p{i}" for i in range(50)], layers_array=pool.astype(np.float32))
    sel = select(p, target=t, n=3, method="nait")
    assert sel.ids[0] == "p7" and sel.features is None
    assert len(sel.info["method_info"]["target_0"]["explained_variance"]) == L
    sel = select(p, target=t, n=3, method="nait", nait_layers=(1,), nait_candidate="drift")
    assert len(sel) == 3


def run_cli(argv: list[str]) -> int:
    import argparse

    from mona.cli.select import register

    parser = argparse.ArgumentParser(prog="mona")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_text_method(world, tmp_path, capsys):
    def dump(samples, path):
        path.write_text("".join(json.dumps({**s.record, "id": s.id, "messages": s.messages}) + "\n" for s in samples))

    dump(world["samples"], tmp_path / "pool.jsonl")
    dump(world["targets"], tmp_path / "t.jsonl")
    argv = ["select", "--pool-samples", str(tmp_path / "pool.jsonl"), "--out", str(tmp_path / "out")]
    assert run_cli([*argv, "--target-samples", str(tmp_path / "t.jsonl"), "--method", "tfidf", "-n", "40"]) == 0
    assert "tfidf: selected 40 of 400" in capsys.readouterr().out
    back = load_selection(tmp_path / "out")
    assert precision(back, world["is_topic"]) >= 0.9 and back.records[0]["domain"] == "math"
    with pytest.raises(MonaError, match="larger than the pool"):
        run_cli([*argv, "--method", "random", "-n", "100000"])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("select:\n  method: longest\n  ratio: 0.5\n")
    assert run_cli([*argv, "--config", str(cfg), "-n", "3"]) == 0
    back = load_selection(tmp_path / "out")
    assert back.method == "longest" and len(back) == 3 and back.config.ratio is None


def _split_feature_world(seed: int = 5):
    """Target samples use topic features 0-9; the pool's topic rows use features 10-19, whose decoder directions
    are near-copies of 0-9 (a feature split in two). Codes share no topic feature with the target."""
    rng = np.random.default_rng(seed)
    n, d, width = 200, 32, 60
    W = rng.normal(size=(width, d)).astype(np.float32)
    W[10:20] = W[:10] + 0.05 * rng.normal(size=(10, d))
    topic = np.arange(n) % 10 == 0

    def rows(m, topic_rows, first):
        X = np.zeros((m, width), np.float32)
        for i in range(m):
            noise = rng.choice(np.arange(20, width), 4 if topic_rows[i] else 10, replace=False)
            X[i, noise] = rng.uniform(0.5, 1.5, len(noise))
            if topic_rows[i]:
                feats = rng.choice(np.arange(first, first + 10), 5, replace=False)
                X[i, feats] = rng.uniform(1.5, 2.5, 5)
        return sp.csr_matrix(X)

    manifest = {**MANIFEST, "mode": "sae"}
    pool = ArrayStore([f"p{i}" for i in range(n)], rows(n, topic, 10), manifest=manifest)
    target = ArrayStore([f"t{i}" for i in range(12)], rows(12, np.ones(12, bool), 0), manifest=manifest)
    return pool, target, W, topic


def _decoded_cosine(P: np.ndarray, T: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Brute force: standardised decoded pool rows vs the mean of the unit decoded target rows."""
    Y, Ty = P @ W, T @ W
    mean, sd = Y.mean(0), Y.std(0)
    Z, Tz = (Y - mean) / sd, (Ty - mean) / sd
    t = (Tz / np.linalg.norm(Tz, axis=1, keepdims=True)).mean(0)
    return Z @ t / (np.linalg.norm(Z, axis=1) * np.linalg.norm(t))


def test_decoder_similarity_matches_split_features():
    pool, target, W, topic = _split_feature_world()
    n = int(topic.sum())
    cos = select(pool, target=target, n=n, similarity="cosine", preset="paper")  # unweighted codes
    dec = select(pool, target=target, n=n, similarity="decoder", sae=W, preset="paper")
    assert precision(cos, topic) < 0.5
    assert precision(dec, topic) >= 0.9
    brute = _decoded_cosine(pool.codes().toarray(), target.codes().toarray(), W)
    np.testing.assert_allclose(dec.scores, brute[dec.rows], rtol=1e-4, atol=1e-5)
    # the recorded features of a topic pick are its split topic features
    assert {f["feature"] for f in dec.features[0][:2]} <= set(range(10, 20))
    # max over target samples, and IDF weights applied before decoding
    best = select(pool, target=target, n=n, similarity="decoder", aggregate="max", sae=W)
    assert precision(best, topic) >= 0.9 and all(m.startswith("t") for m in best.matches)
    idf = select(pool, target=target, n=n, similarity="decoder", feature_weights="idf", sae=W)
    assert precision(idf, topic) >= 0.9
    mmr = select(pool, target=target, n=n, method="mmr", similarity="decoder", sae=W)
    assert len(mmr) == n
    with pytest.raises(MonaError, match="names none"):
        select(ArrayStore(list(pool.ids), pool.codes()), target=target, n=n, similarity="decoder")
    with pytest.raises(MonaError, match="features"):
        select(pool, target=target, n=n, similarity="decoder", sae=W[:50])
    with pytest.raises(MonaError, match="contrast"):
        SelectConfig.build(similarity="decoder", contrast=True)
