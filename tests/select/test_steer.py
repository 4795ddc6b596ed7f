"""Steering a selection with SAE features: exclude, require, boost, target as features."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mona.errors import MonaError
from mona.explain import explain
from mona.select import ArrayStore, load_selection, select

N, F = 200, 40
MANIFEST = {"mode": "sae", "sae": {"name": "s", "weights_hash": "h"}}


@pytest.fixture(scope="module")
def world():
    """Random codes; feature 5 is planted in rows 0-29 (the 'topic'), feature 7 in every third row."""
    rng = np.random.default_rng(0)
    X = (rng.random((N, F)) < 0.15) * rng.random((N, F))
    X[:, [5, 7]] = 0
    X[:30, 5] = 1.0 + rng.random(30)
    X[::3, 7] = 0.5 + rng.random(len(X[::3]))
    pool = ArrayStore([f"p{i}" for i in range(N)], sp.csr_matrix(X.astype(np.float32)), manifest=MANIFEST)
    T = np.zeros((6, F), np.float32)
    T[:, 5] = 1.5
    T[:, 7] = 1.0
    target = ArrayStore([f"t{i}" for i in range(6)], sp.csr_matrix(T), manifest=MANIFEST)
    return pool, target, X


@pytest.mark.parametrize("method", ["mona", "mmr", "kcenter", "greedy-coverage", "simscale"])
def test_excluded_features_never_appear(world, method):
    pool, target, X = world
    sel = select(pool, target=target if method in ("mona", "mmr") else None, method=method, n=20,
                 exclude_features=[7], **({"sim_threshold": 1.0} if method == "simscale" else {}))
    assert len(sel) == 20 and not (X[sel.rows, 7] > 0).any()
    assert sel.info["steering"] == {"kept": int((X[:, 7] == 0).sum()), "dropped": int((X[:, 7] > 0).sum())}


def test_required_features_are_present(world):
    pool, _, X = world
    sel = select(pool, method="kcenter", n=10, require_features=[5, 7])
    assert (X[sel.rows, 5] > 0).all() and (X[sel.rows, 7] > 0).all()
    few = select(pool, method="kcenter", n=50, require_features=[5, 7])  # fewer rows left than the budget
    assert len(few) == int(((X[:, 5] > 0) & (X[:, 7] > 0)).sum())


def test_boosting_a_feature_raises_the_share_of_samples_that_carry_it(world):
    pool, target, X = world
    plain = select(pool, target=target, method="mona", similarity="cosine", n=30)
    boosted = select(pool, target=target, method="mona", similarity="cosine", n=30, boost_features=["7=4"])
    assert (X[boosted.rows, 7] > 0).mean() > (X[plain.rows, 7] > 0).mean()
    assert boosted.config.boost_features == ("7=4",)


def test_target_given_as_features(world, tmp_path):
    pool, _, X = world
    sel = select(pool, method="mona", similarity="cosine", aggregate="prototype", n=30, target_features=["5"])
    assert (X[sel.rows, 5] > 0).mean() == 1.0
    sel.save(tmp_path / "s")
    back = load_selection(tmp_path / "s")
    assert back.config.target_features == ("5=1",)
    ex = explain(tmp_path / "s", pool_store=pool)  # the target is rebuilt from the recorded features
    assert ex.samples[0]["features"][0]["feature"] == 5
    assert abs(ex.samples[0]["relevance"] - sel.scores[0]) < 1e-4


@pytest.mark.parametrize("aggregate", ["prototype", "fused"])
def test_explained_contributions_follow_boosted_scores(world, tmp_path, caplog, aggregate):
    pool, target, _ = world
    boost = {7: 3.0, 5: 0.5}
    sel = select(pool, target=target, method="mona", n=10, boost_features=boost, aggregate=aggregate)
    sel.save(tmp_path / "b")
    ex = explain(tmp_path / "b", pool_store=pool, target_stores=[target])
    assert "recomputed from the stores" not in caplog.text
    # the relevance explained is the similarity to the prototype (fused: one of the two rankings fused)
    proto = select(pool, target=target, method="mona", n=len(pool.ids), boost_features=boost, aggregate="prototype")
    similarity = dict(zip(proto.rows.tolist(), proto.scores.tolist(), strict=True))
    assert all(abs(r["relevance"] - similarity[r["row"]]) < 1e-4 for r in ex.samples)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "mona", "exclude_features": [F + 3]}, "unknown feature id"),
        ({"method": "mona", "boost_features": ["x=2"]}, "ID or ID=WEIGHT"),
        ({"method": "mona", "target_features": ["-1"]}, "feature ids are >= 0"),
        ({"method": "random", "exclude_features": [1]}, "needs a method that reads SAE codes"),
        ({"method": "greedy-coverage", "target_features": ["5"]}, "needs a target method"),
        ({"method": "mona", "require_features": [5], "exclude_features": [5]}, "leaves no pool sample"),
    ],
)
def test_bad_steering_is_a_one_line_error(world, kwargs, match):
    pool, target, _ = world
    with pytest.raises(MonaError, match=match) as info:
        select(pool, target=target if kwargs["method"] == "mona" else None, n=5, **kwargs)
    assert "\n" not in str(info.value)


def test_features_from_a_saved_search_and_the_cli(world, tmp_path):
    import json

    from mona.cli.args import Parser
    from mona.cli.select import build_config, register

    (tmp_path / "search.json").write_text(json.dumps({"query": "x", "features": [{"feature": 7}]}))
    pool, _, X = world
    sel = select(pool, method="kcenter", n=10, exclude_features=[f"@{tmp_path / 'search.json'}"])
    assert sel.config.exclude_features == (7,) and not (X[sel.rows, 7] > 0).any()
    parser = Parser(prog="mona")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["select", "--out", str(tmp_path / "o"), "-m", "mona", "--exclude-features", "3,9",
                              "--boost-features", "7=2", f"@{tmp_path / 'search.json'}=0.5"])
    cfg = build_config(args)
    assert cfg.exclude_features == (3, 9) and cfg.boost_features == ("7=0.5",)
