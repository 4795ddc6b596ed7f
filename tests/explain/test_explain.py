"""Explaining selections: shares that add up to the score, enrichment on a planted feature, coverage, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from mona.explain import ExplainConfig, coverage, enrichment, explain, load_explanation
from mona.select import ArrayStore, select


def planted_pool(n: int = 300, F: int = 80, n_sel: int = 20, planted: int = 7, seed: int = 0):
    """Random sparse codes; ``planted`` is active in rows 0..n_sel-1 and in only 4 other rows."""
    rng = np.random.default_rng(seed)
    X = (rng.random((n, F)) < 0.12) * rng.random((n, F)).astype(np.float32)
    X[:, planted] = 0
    X[:n_sel, planted] = 1.0 + rng.random(n_sel)
    X[rng.choice(np.arange(n_sel, n), 4, replace=False), planted] = 0.5
    return sp.csr_matrix(X.astype(np.float32))


def test_planted_feature_is_top_enriched():
    X = planted_pool()
    table = enrichment(X, np.arange(20))
    assert table["feature"][0] == 7
    assert table["q_value"][0] < 1e-6 and table["log_odds"][0] > 3
    assert table["selected"][0] == 20 and table["pool"][0] == 24
    assert np.all(np.diff(table["p_value"]) >= 0)  # sorted by p-value
    assert np.all((table["q_value"] >= table["p_value"] - 1e-12) & (table["q_value"] <= 1))
    # nothing else survives BH at 5% on pure noise (seeded)
    assert (table["q_value"][1:] < 0.05).sum() == 0


def test_enrichment_matches_fisher_exact():
    from scipy.stats import fisher_exact

    X = planted_pool(n=120, F=30, n_sel=10)
    rows = np.arange(10)
    t = enrichment(X, rows)
    i = int(np.flatnonzero(t["feature"] == 7)[0])
    k, K = int(t["selected"][i]), int(t["pool"][i])
    _, p = fisher_exact([[k, 10 - k], [K - k, 110 - (K - k)]], alternative="greater")
    assert t["p_value"][i] == pytest.approx(p, rel=1e-9)


def test_coverage_random_expectation():
    X = sp.csr_matrix(np.eye(10, dtype=np.float32))  # each row its own feature
    c = coverage(X, np.arange(3))
    assert c["pool_features"] == 10 and c["selected_features"] == 3 and c["coverage"] == pytest.approx(0.3)
    assert c["random_expected_features"] == pytest.approx(3.0)  # each feature covered with prob 3/10
    assert c["mass_coverage"] == pytest.approx(0.3)


def _stores(seed: int = 0):
    rng = np.random.default_rng(seed)
    P = (rng.random((60, 40)) < 0.2) * rng.random((60, 40))
    T = (rng.random((8, 40)) < 0.2) * rng.random((8, 40))
    T[:, :5] += 1.0
    P[:10, :5] += 1.0
    pool = ArrayStore([f"p{i}" for i in range(60)], sp.csr_matrix(P.astype(np.float32)), path=None)
    target = ArrayStore([f"t{i}" for i in range(8)], sp.csr_matrix(T.astype(np.float32)))
    return pool, target


@pytest.mark.parametrize("similarity,weights", [("jaccard", {}), ("cosine", {}),
                                                ("cosine", {"feature_weights": "idf", "max_feature_share": 0.3}),
                                                ("cosine", {"feature_weights": "idf", "contrast": True}),
                                                ("decoder", {}), ("decoder", {"feature_weights": "idf"})])
def test_mona_shares_sum_to_score(tmp_path, similarity, weights):
    pool, target = _stores()
    if similarity == "decoder":  # an (F, d) decoder with correlated directions
        W = np.random.default_rng(1).normal(size=(40, 12)).astype(np.float32)
        W[5:10] = W[:5] + 0.1
        weights = {**weights, "sae": W}
    sel = select(pool, target=target, method="mona", n=8, similarity=similarity, aggregate="prototype",
                 top_features=3, **weights)
    sel.save(tmp_path / "s")
    ex = explain(tmp_path / "s", pool_store=pool, target_stores=target, top_features=1000, sae=weights.get("sae"))
    for row, score in zip(ex.samples, sel.scores, strict=True):
        shares = [f["share"] for f in row["features"]]
        offset = row.get("offset", 0.0)  # decoder: the pool mean's part of the score
        assert (offset != 0.0) == (similarity == "decoder")
        assert sum(shares) == pytest.approx(1.0, abs=1e-6)
        assert sum(f["contribution"] for f in row["features"]) + offset == pytest.approx(score, rel=1e-5)
        assert row["relevance"] == pytest.approx(score, rel=1e-5)
        assert (row["numerator"] / row["denominator"] + offset) == pytest.approx(score, rel=1e-5)
        if similarity == "jaccard":
            for f in row["features"]:
                assert f["share"] * row["numerator"] == pytest.approx(min(f["value"], f["target"]), rel=1e-5)
    # the recorded top-3 shares are the recomputed ones
    for rec, row in zip(sel.features, ex.samples, strict=True):
        assert [f["feature"] for f in rec] == [f["feature"] for f in row["features"][:3]]
        assert [f["share"] for f in rec] == pytest.approx([f["share"] for f in row["features"][:3]])
    assert ex.summary["enriched"][0]["feature"] < 5  # the target's boosted features are over-represented
    rel = ex.pool["relevance"]
    assert np.allclose(np.sort(rel)[::-1][:8], np.sort(sel.scores)[::-1])


def test_without_stores_uses_recorded_features(tmp_path):
    pool, target = _stores()
    sel = select(pool, target=target, method="mona", n=5, top_features=4, aggregate="prototype")
    sel.save(tmp_path / "s")
    ex = explain(tmp_path / "s")  # ArrayStores have no path: nothing to reopen
    assert ex.enrichment is None and ex.summary["coverage"] is None
    for row, rec, score in zip(ex.samples, sel.features, sel.scores, strict=True):
        assert [f["feature"] for f in row["features"]] == [f["feature"] for f in rec]
        assert sum(f["contribution"] for f in row["features"]) == pytest.approx(row["listed_share"] * score)
    back = load_explanation(tmp_path / "s")
    assert back.samples == json.loads(json.dumps(ex.samples)) and back.summary["method"] == "mona"


def test_greedy_coverage_new_features(tmp_path):
    pool, _ = _stores()
    sel = select(pool, method="greedy-coverage", n=12, top_features=2)
    sel.save(tmp_path / "g")
    ex = explain(tmp_path / "g", pool_store=pool)
    seen: set[int] = set()
    for row in ex.samples:
        assert len(row["new_features"]) == int(row["score"])
        if not seen.isdisjoint(row["new_features"]):  # only after a coverage round restarts
            seen = set()
        seen |= set(row["new_features"])
        assert [f["feature"] for f in row["features"]] == row["new_features"][:10]
    assert ex.summary["coverage"]["selected_features"] == ex.summary["coverage"]["pool_features"]


def test_mix_and_pool_table(tmp_path, stores_on_disk):
    root, pool_samples = stores_on_disk
    sel = select(root / "pool", target=root / "target", n=6, pool_samples=pool_samples)
    sel.save(tmp_path / "s")
    ex = explain(tmp_path / "s", pool_samples=pool_samples)
    mix = ex.summary["mix"]["domain"]
    assert mix["pool"] == {"math": 12, "poetry": 12} and sum(mix["selected"].values()) == 6
    assert ex.pool["selected"].sum() == 6 and set(ex.pool["domain"]) == {"math", "poetry"}
    assert (tmp_path / "s" / "enrichment.parquet").exists() and (tmp_path / "s" / "explain_pool.parquet").exists()
    assert ex.summary["stores"]["pool"]["path"].endswith("pool")


def test_wrong_pool_store_is_refused(tmp_path):
    from mona.errors import ArtifactMismatch

    pool, target = _stores()
    sel = select(pool, target=target, n=5)
    sel.save(tmp_path / "s")
    other = ArrayStore([f"x{i}" for i in range(60)], pool.codes_matrix)
    with pytest.raises(ArtifactMismatch):
        explain(tmp_path / "s", pool_store=other)


def test_config_validation():
    from mona.errors import MonaError

    with pytest.raises(MonaError):
        ExplainConfig(alpha=2)
    with pytest.raises(MonaError):
        ExplainConfig(prior=0)


def test_cli_explain(tmp_path, stores_on_disk, capsys):
    from mona.cli import main

    root, pool_samples = stores_on_disk
    sel = select(root / "pool", target=root / "target", n=6, pool_samples=pool_samples)
    sel.save(tmp_path / "s")
    assert main(["explain", str(tmp_path / "s"), "--top-features", "5"]) == 0
    out = capsys.readouterr().out
    assert "features covered" in out and "log-odds" in out
    assert main(["explain", str(tmp_path / "missing")]) == 2
