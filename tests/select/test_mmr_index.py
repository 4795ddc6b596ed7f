"""MMR served by an index of the picks: exact MMR with a flat index, the exact picks recalled with IVF."""

from __future__ import annotations

import numpy as np
import pytest

from mona.index import IndexConfig, build_index
from mona.select import select
from mona.select.methods import mmr as mmr_module
from mona.select.methods.mmr import mmr, mmr_indexed, top_candidates
from tests.select.test_neighbours import planted, pool_of, write_store


@pytest.mark.parametrize("similarity", ["cosine", "jaccard"])
def test_lazy_greedy_over_a_flat_pick_index_is_exact_mmr(similarity):
    X = planted(600, clusters=20, seed=2)
    rel = np.random.default_rng(0).random(X.shape[0])
    cand = top_candidates(rel, 40, 300)
    index = build_index(X, IndexConfig(kind="flat"), save=False, progress=False)
    index.config.rerank = len(cand)  # every pick proposed: the nearest pick is exact
    fast = mmr_indexed(index, X[cand], rel[cand], 40, 0.6, similarity, batch=16, working=64)
    exact = mmr(X[cand], rel[cand], 40, 0.6, similarity, len(cand))
    assert np.array_equal(fast.rows, exact.rows)
    np.testing.assert_allclose(fast.scores, exact.scores, atol=1e-5)
    assert fast.info["refreshed"] < 40 * len(cand)  # far fewer similarity queries than picks x candidates


def test_ivf_pick_index_keeps_the_exact_picks_of_a_store(tmp_path, monkeypatch):
    monkeypatch.setattr(mmr_module, "EXACT_PICKS", 16)  # the index answers from the 17th pick on,
    monkeypatch.setattr(mmr_module, "PICK_BATCH", 8)  # holding all but the last few picks
    X = planted(4000, clusters=80, seed=1)
    store = write_store(tmp_path / "pool", X)
    target = pool_of(planted(30, clusters=80, seed=1))
    kw = dict(target=target, method="mmr", n=150, similarity="cosine", mmr_lambda=0.5)
    exact = select(store, index="exact", **kw)
    ivf = select(store, index="ivf", **kw)
    info = ivf.info["index"]
    assert info["path"] == "ivf" and info["candidates"] == 1500 and info["refreshed"] > 0
    overlap = len(set(ivf.rows) & set(exact.rows)) / len(exact.rows)
    assert overlap >= 0.95, overlap
    assert (tmp_path / "pool" / "index").is_dir()  # the store's own index, saved beside it


def test_pick_index_over_dense_vectors(monkeypatch):
    from mona.select import ArrayStore

    monkeypatch.setattr(mmr_module, "EXACT_PICKS", 8)
    monkeypatch.setattr(mmr_module, "PICK_BATCH", 4)
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(40, 32)).astype(np.float32)
    D = centres[rng.integers(0, 40, 3000)] + 0.3 * rng.normal(size=(3000, 32)).astype(np.float32)
    pool = ArrayStore([f"d{i}" for i in range(3000)], dense_matrix=D, manifest={"mode": "dense"})
    target = ArrayStore(["t0", "t1"], dense_matrix=D[:2] + 0.1, manifest={"mode": "dense"})
    kw = dict(target=target, method="mmr", n=80, mmr_lambda=0.5)
    ivf, exact = select(pool, index="ivf", **kw), select(pool, index="exact", **kw)
    assert ivf.info["index"]["path"] == "ivf"
    assert len(set(ivf.rows) & set(exact.rows)) / 80 >= 0.95
