"""``aggregate="fused"`` (the default): the prototype and max rankings of ``mona`` fused by reciprocal rank."""

from __future__ import annotations

import numpy as np
import pytest

from mona.errors import MonaError
from mona.select import select
from mona.select.methods.mmr import MmrOptions
from mona.select.methods.mona import RRF_K, CodeOptions, fuse_ranks
from tests.select.test_neighbours import planted, pool_of, write_store


def test_fuse_ranks_is_reciprocal_rank_fusion_with_shared_ties():
    a = np.array([0.9, 0.1, 0.5, 0.5])
    b = np.array([0.0, 3.0, 2.0, 1.0])
    got = fuse_ranks(a, b)
    ranks_a, ranks_b = np.array([1, 4, 2, 2]), np.array([4, 1, 2, 3])
    np.testing.assert_allclose(got, 1 / (RRF_K + ranks_a) + 1 / (RRF_K + ranks_b))


def test_presets_and_mmr_resolve_aggregate():
    assert CodeOptions().aggregate == "fused"
    assert CodeOptions(preset="paper").aggregate == "prototype"
    assert CodeOptions(aggregate="max").aggregate == "max"
    assert MmrOptions().aggregate == "prototype"  # a relevance traded against similarities stays a similarity
    with pytest.raises(MonaError, match="not fused"):
        MmrOptions(aggregate="fused")
    with pytest.raises(MonaError, match="aggregate must be one of prototype, max, fused"):
        CodeOptions(aggregate="sum")


@pytest.mark.parametrize("similarity", ["cosine", "jaccard"])
def test_fused_scores_fuse_the_prototype_and_max_rankings(similarity):
    X = planted(1500, seed=2)
    pool, target = pool_of(X), pool_of(planted(25, seed=7))
    kw = dict(method="mona", n=len(pool.ids), similarity=similarity, feature_weights="idf", top_features=2)
    parts = {a: select(pool, target=target, aggregate=a, **kw) for a in ("prototype", "max", "fused")}
    score = {a: np.empty(X.shape[0]) for a in parts}
    for a, sel in parts.items():
        score[a][sel.rows] = sel.scores
    np.testing.assert_allclose(score["fused"], fuse_ranks(score["prototype"], score["max"]), rtol=1e-12)
    fused, best = parts["fused"], parts["max"]
    match_of = dict(zip(best.rows.tolist(), best.matches, strict=True))
    assert fused.matches == [match_of[r] for r in fused.rows.tolist()]  # each pick's best target sample
    proto = parts["prototype"]
    feats_of = dict(zip(proto.rows.tolist(), proto.features, strict=True))
    assert fused.features == [feats_of[r] for r in fused.rows.tolist()]  # features shared with the prototype
    assert fused.info["method_info"]["target_0"]["fusion"]["of"] == ["prototype", "max"]


def test_fused_on_a_store_on_disk_equals_in_memory(tmp_path):
    X = planted(2100, seed=3)
    store = write_store(tmp_path / "pool", X, shard=500)
    target = pool_of(planted(30, seed=11))
    on_disk, in_mem = select(store, target=target, method="mona", n=100), select(pool_of(X), target=target,
                                                                                 method="mona", n=100)
    assert on_disk.config.options.aggregate == "fused"
    assert on_disk.info["method_info"]["target_0"]["streamed"]
    assert np.array_equal(on_disk.rows, in_mem.rows)
    np.testing.assert_allclose(on_disk.scores, in_mem.scores, rtol=1e-9)


def test_max_target_share_drops_what_most_target_samples_share(tmp_path, caplog):
    from mona.explain import explain
    from mona.select.methods.mona import drop_target_common

    X = planted(800, seed=4)
    T = planted(20, seed=8).tolil()
    T[:, 3] = 5.0  # a "format" feature in every target sample
    T[:9, 4] = 2.0  # in 9 of 20: kept at share 0.5
    T = T.tocsr()
    target = pool_of(T)
    (masked,) = drop_target_common([target], 0.5)
    common = np.asarray((T > 0).sum(axis=0)).ravel() > 10
    assert common[3] and not common[4]
    assert masked.ids == target.ids
    assert masked.codes()[:, np.flatnonzero(common)].nnz == 0
    keep = np.flatnonzero(~common)
    assert np.array_equal(masked.codes()[:, keep].toarray(), T[:, keep].toarray())
    assert drop_target_common([pool_of(T[:1])], 0.5)[0].codes().nnz == T[:1].nnz  # one sample: nothing to count
    kw = dict(method="mona", n=40, aggregate="prototype", top_features=3)
    by_option = select(pool_of(X), target=target, max_target_share=0.5, **kw)
    by_hand = select(pool_of(X), target=masked, **kw)
    assert np.array_equal(by_option.rows, by_hand.rows)
    np.testing.assert_allclose(by_option.scores, by_hand.scores, rtol=1e-9)
    pool = write_store(tmp_path / "pool", X, shard=300)
    sel = select(pool, target=target, max_target_share=0.5, **kw)
    sel.save(tmp_path / "s")
    ex = explain(tmp_path / "s", pool_store=pool, target_stores=target)
    assert "recomputed from the stores" not in caplog.text  # the explanation drops the same features
    assert all(f["feature"] != 3 or f["share"] <= 0 for r in ex.samples for f in r["features"])
    with pytest.raises(MonaError, match="max_target_share must be in"):
        CodeOptions(max_target_share=0)
