"""Selection served by the index: the exact path equals brute force, the IVF path recalls it, stores stream."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import scipy.sparse as sp

from mona.errors import MonaError
from mona.io import atomic_write_lines
from mona.select import ArrayStore, select
from mona.select.dedup import keep_first
from mona.store import STORE_FORMAT, finalize, open_store, write_shard

F = 256


def planted(n: int = 3000, clusters: int = 60, seed: int = 0, width: int = F) -> sp.csr_matrix:
    """Non-negative sparse codes around sparse cluster centres (like pooled SAE codes of many domains)."""
    rng = np.random.default_rng(seed)
    centres = sp.random(clusters, width, density=0.06, random_state=seed, format="csr", dtype=np.float32)
    labels = rng.integers(0, clusters, n)
    noise = sp.random(n, width, density=0.02, random_state=seed + 1, format="csr", dtype=np.float32)
    return sp.csr_matrix(centres[labels] * 3 + noise, dtype=np.float32)


def write_store(path, X: sp.csr_matrix | np.ndarray, shard: int = 700, mode: str = "sae"):
    """A finished store on disk holding ``X`` (CSR codes, or dense rows for ``mode="dense"``)."""
    n = X.shape[0]
    manifest = {"store_format": STORE_FORMAT, "mode": mode, "model": {"name": "synthetic"}, "hook": "h",
                "hooks": [], "sae": None, "pooling": "mean", "span": "all", "settings": {"storage": "safetensors"},
                "input": {"fingerprint": f"synthetic-{n}-{float(abs(X).sum()):.6f}", "n_samples": n},
                "n_features": X.shape[1], "n_shards": -(-n // shard), "complete": False, "shards": []}
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps(manifest))
    atomic_write_lines(path / "ids.jsonl", [f"s{i}" for i in range(n)])
    for k, a in enumerate(range(0, n, shard)):
        block = X[a : a + shard]
        arrays = {"lengths": np.ones(block.shape[0], np.int32)}
        if mode == "sae":
            arrays.update(indptr=block.indptr.astype(np.int64), indices=block.indices.astype(np.uint16),
                          values=block.data.astype(np.float32))
        else:
            arrays["dense"] = np.asarray(block, np.float32)
        write_shard(path, k, arrays, "safetensors")
    return finalize(path)


@pytest.fixture(scope="module")
def codes():
    return planted()


def pool_of(X) -> ArrayStore:
    return ArrayStore([f"s{i}" for i in range(X.shape[0])], X, manifest={"mode": "sae"})


def test_store_rows_and_streamed_prototype_equal_in_memory(tmp_path, codes):
    store = write_store(tmp_path / "pool", codes)
    rows = np.array([2999, 0, 701, 700, 5, 1400])
    assert np.allclose(store.rows(rows).toarray(), codes[rows].toarray())
    target = pool_of(planted(40, seed=5))
    for sim, contrast in (("jaccard", False), ("cosine", False), ("cosine", True)):
        kw = dict(method="mona", n=100, similarity=sim, feature_weights="idf", contrast=contrast)
        on_disk = select(store, target=target, **kw)
        in_mem = select(pool_of(codes), target=target, **kw)
        assert on_disk.info["method_info"]["target_0"]["streamed"]  # no copy of the codes in memory, contrast too
        assert np.array_equal(on_disk.rows, in_mem.rows)
        np.testing.assert_allclose(on_disk.scores, in_mem.scores, rtol=1e-5, atol=1e-7)
        for a, b in zip(on_disk.features, in_mem.features, strict=True):
            assert [f["feature"] for f in a] == [f["feature"] for f in b]


@pytest.mark.parametrize("contrast", [False, True])
def test_max_over_a_store_streams_exactly(tmp_path, codes, contrast):
    store = write_store(tmp_path / "pool", codes)
    target = pool_of(planted(40, seed=5))
    kw = dict(method="mona", n=100, similarity="cosine", aggregate="max", feature_weights="idf", contrast=contrast)
    on_disk = select(store, target=target, **kw)  # auto: 3,000 x 40 pairs, one exact pass over the shards
    in_mem = select(pool_of(codes), target=target, index="none", **kw)
    assert on_disk.info["index"]["path"] == "exact" and on_disk.info["index"]["streamed"]
    assert np.array_equal(on_disk.rows, in_mem.rows)
    np.testing.assert_allclose(on_disk.scores, in_mem.scores, rtol=1e-6)
    for a, b in zip(on_disk.features, in_mem.features, strict=True):  # contrast's pool mean: summed per shard
        assert [f["feature"] for f in a] == [f["feature"] for f in b]
        np.testing.assert_allclose([f["share"] for f in a], [f["share"] for f in b], rtol=1e-5, atol=1e-7)
    assert on_disk.matches == in_mem.matches and on_disk.matches[0] is not None


def test_max_exact_index_equals_brute_force_decoder_and_dense(codes):
    rng = np.random.default_rng(1)
    W = rng.standard_normal((F, 24)).astype(np.float32)
    target = pool_of(planted(30, seed=7))
    kw = dict(method="mona", n=200, similarity="decoder", aggregate="max", sae=W)
    exact = select(pool_of(codes), target=target, index="exact", **kw)
    brute = select(pool_of(codes), target=target, index="none", **kw)
    assert exact.info["index"]["kind"] == "flat"
    assert np.array_equal(exact.rows, brute.rows) and exact.matches == brute.matches
    np.testing.assert_allclose(exact.scores, brute.scores, atol=1e-5)
    D = rng.standard_normal((2000, 32)).astype(np.float32)
    T = rng.standard_normal((50, 32)).astype(np.float32)
    for method, mode in (("dense", "dense"), ("sbert", "sentence")):
        p = ArrayStore([f"d{i}" for i in range(len(D))], dense_matrix=D, manifest={"mode": mode})
        t = ArrayStore([f"t{i}" for i in range(len(T))], dense_matrix=T, manifest={"mode": mode})
        a = select(p, target=t, method=method, n=100, aggregate="max", index="exact")
        b = select(p, target=t, method=method, n=100, aggregate="max", index="none")
        assert np.array_equal(a.rows, b.rows) and a.matches == b.matches
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


def test_max_ivf_recalls_exact_on_planted_targets(codes):
    target = pool_of(codes[::97] + sp.random(len(range(0, 3000, 97)), F, density=0.01, random_state=3))
    kw = dict(method="mona", n=150, similarity="cosine", aggregate="max")
    ivf = select(pool_of(codes), target=target, index="ivf", **kw)
    exact = select(pool_of(codes), target=target, index="none", **kw)
    recall = len(set(ivf.rows) & set(exact.rows)) / len(exact.rows)
    assert recall >= 0.95, recall
    assert ivf.info["index"]["kind"] == "ivf" and ivf.info["index"]["recall"] >= 0.95
    same = np.isin(ivf.rows, exact.rows)
    got = dict(zip(exact.rows, exact.scores, strict=True))
    np.testing.assert_allclose(ivf.scores[same], [got[r] for r in ivf.rows[same]], atol=1e-5)  # exact re-rank


def test_kcenter_ivf_hits_every_planted_cluster():
    X = planted(2000, clusters=20, seed=3)
    sel = select(pool_of(X), method="kcenter", n=20, index="ivf")
    exact = select(pool_of(X), method="kcenter", n=20, index="none")
    assert len(set(sel.rows)) == 20 and sel.info["index"]["path"] == "ivf"
    assert np.all(np.diff(sel.scores[1:]) <= 1e-9)  # farthest first: distances never grow
    # both cover the pool about as well: the covering radius of the ivf picks is close to the exact one
    from mona.vectors import normalize_rows

    Xn = normalize_rows(X)

    def radius(rows):
        return float((1 - (Xn @ Xn[rows].T).toarray().max(axis=1)).max())

    assert radius(sel.rows) <= radius(exact.rows) * 1.25 + 1e-6


def test_kcenter_ivf_on_sketches_when_the_vectors_do_not_fit():
    """Above the memory budget the greedy runs on the index's bfloat16 sketches: it still covers every planted
    cluster about as well as the exact greedy."""
    from mona.select.matrices import PoolMatrices
    from mona.select.neighbours import code_space, kcenter_ivf
    from mona.vectors import normalize_rows

    X = planted(2000, clusters=20, seed=3, width=2048)
    space = code_space(PoolMatrices(pool_of(X)), weighted=False)
    rows, scores, info = kcenter_ivf(space, 20, hold_bytes=0, progress=False)
    exact, _, exact_info = kcenter_ivf(space, 20, progress=False)
    assert info["distances"] == "sketch" and exact_info["distances"] == "exact" and len(set(rows)) == 20
    Xn = normalize_rows(X)

    def radius(r):
        return float((1 - (Xn @ Xn[r].T).toarray().max(axis=1)).max())

    assert radius(rows) <= radius(exact) * 1.25 + 1e-6


def test_simscale_ivf_keeps_the_brute_force_rows(codes):
    kw = dict(method="simscale", n=300, sim_threshold=0.3)
    ivf = select(pool_of(codes), index="ivf", **kw)
    brute = select(pool_of(codes), index="none", **kw)
    assert np.array_equal(ivf.rows, brute.rows)
    assert ivf.info["index"]["path"] == "ivf"
    assert ivf.features == brute.features  # each pick's strongest pooled features, not its binarised set


def test_simscale_index_of_kept_samples_keeps_the_brute_force_rows(monkeypatch):
    """Past the first kept rows (compared exactly), visited blocks meet the kept rows through an index of the kept
    rows alone: the same rows as brute force, and the exact audit of sampled kept rows finds no miss."""
    from mona.select.inputs import binarize_codes
    from mona.select.methods import simscale as ss
    from mona.select.neighbours import Space
    from mona.vectors import Vectors
    from tests.test_index import zipf_codes

    codes = zipf_codes(6000, 4096, 3)
    space = Space(Vectors(codes, lambda x: binarize_codes(x, 0.0)), {"vectors": "codes", "binarize": True})
    monkeypatch.setattr(ss, "EXACT_KEPT", 200)
    got = ss.simscale_ivf(space, 2000, 0.3, block=256)
    want = ss.simscale(codes, 2000, 0.0, 0.3, block=256)
    assert np.array_equal(got.rows, want.rows)
    info = got.info["index"]
    assert info["over"] == "kept samples" and info["proposed"] > 0  # the index served the later blocks
    assert info["audited"] == 256 and info["missed"] == 0


def test_keep_first_keeps_lowest_row_of_each_group():
    # 0~3, 3~5 (chain), 1~2: row 3 goes (0 kept), row 5 stays (its only neighbour 3 was dropped), row 2 goes
    keep = keep_first(6, np.array([3, 0, 5, 2]), np.array([0, 3, 3, 1]))
    assert keep.tolist() == [True, True, False, False, True, True]


@pytest.mark.parametrize("index", ["exact", "ivf"])
def test_dedup_drops_planted_near_duplicates(tmp_path, index):
    rng = np.random.default_rng(4)
    base = sp.random(1500, F, density=0.08, random_state=4, format="csr", dtype=np.float32)
    dup_of = rng.choice(1500, 100, replace=False)
    dups = base[dup_of].copy()
    dups.data *= rng.uniform(0.97, 1.03, dups.nnz).astype(np.float32)  # cosine ~0.999 to the original
    X = sp.vstack([base, dups], format="csr")
    sel = select(pool_of(X), method="random", n=50, dedup=0.95, index=index)
    d = sel.info["dedup"]
    assert d["dropped"] == 100 and d["kept"] == 1500
    assert not np.any(sel.rows >= 1500)  # the later copy of each pair is the one dropped
    saved = sel.save(tmp_path / "out")
    assert json.loads((saved / "selection.json").read_text())["dedup"]["dropped"] == 100


def test_index_beside_store_rebuilt_with_reason(tmp_path, codes, caplog):
    store = write_store(tmp_path / "pool", codes)
    target = pool_of(codes[:20])
    kw = dict(method="mona", n=50, similarity="cosine", aggregate="max", index="ivf")
    first = select(store, target=target, **kw)
    assert first.info["index"]["built"] is True
    again = select(open_store(tmp_path / "pool"), target=target, **kw)
    assert again.info["index"]["built"] is False and np.array_equal(first.rows, again.rows)
    folder = next((tmp_path / "pool" / "index").iterdir())
    # corrupted index file: rebuilt, with the reason logged
    (folder / "index.faiss").write_bytes(b"not an index")
    with caplog.at_level(logging.WARNING):
        fixed = select(open_store(tmp_path / "pool"), target=target, **kw)
    assert fixed.info["index"]["built"] is True and "corrupted" in caplog.text
    assert np.array_equal(fixed.rows, first.rows)
    # an index copied from another store: refused, rebuilt
    other = write_store(tmp_path / "other", codes[:1000])
    (other.path / "index").mkdir()
    import shutil

    shutil.copytree(folder, other.path / "index" / folder.name)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        sel = select(other, target=target, **kw)
    assert "different store" in caplog.text and sel.info["index"]["built"] is True


def test_index_for_another_space_and_bad_k(tmp_path, codes):
    from mona.errors import ArtifactMismatch
    from mona.index import build_index, index_folder, load_index

    store = write_store(tmp_path / "pool", codes)
    index = build_index(store, progress=False)
    meta_path = index_folder(store) / "index.json"
    meta = json.loads(meta_path.read_text())
    meta["space"] = {"vectors": "codes", "weights": "idf"}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ArtifactMismatch, match="indexes"):
        load_index(store)
    with pytest.raises(MonaError, match="larger than"):
        index.search(codes[:2], codes.shape[0] + 1)
    with pytest.raises(MonaError, match="larger than the pool"):
        select(pool_of(codes), target=pool_of(codes[:5]), method="mona", n=codes.shape[0] + 1, aggregate="max")


def test_range_search_probes_more_lists_until_it_recalls_the_exact_pairs():
    from mona.index import IndexConfig, build_index
    from mona.vectors import normalize_rows

    rng = np.random.default_rng(7)  # Zipf-distributed features: no clusters, neighbours spread over many lists
    n, width = 3000, F
    p = 1.0 / np.arange(1, width + 1)
    idx = rng.choice(width, size=(n, 24), p=p / p.sum())
    codes = sp.csr_matrix((rng.lognormal(-2, 1, idx.size).astype(np.float32), (np.repeat(np.arange(n), 24),
                           idx.ravel())), shape=(n, width))
    X = normalize_rows(codes)
    S = (X @ X.T).toarray()
    np.fill_diagonal(S, 0)
    threshold = float(np.quantile(S, 0.999))
    index = build_index(codes, IndexConfig(kind="ivf", nlist=64), save=False, progress=False)
    i, j, _ = index.pairs(threshold, nprobe=1, progress=False)
    exact = set(zip(*np.nonzero(S >= threshold), strict=True))
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    assert found <= exact, index.info
    undirected = {tuple(sorted(p)) for p in exact}
    assert index.info["pairs_recall"] >= 0.95 and index.info["pairs_nprobe"] > 1, index.info
    assert len({tuple(sorted(p)) for p in found} & undirected) >= 0.9 * len(undirected), index.info
    import mona.index

    mona.index.PAIRS_CHUNK, chunk = 7, mona.index.PAIRS_CHUNK  # verified 7 candidate pairs at a time: same pairs
    try:
        again = index.pairs(threshold, nprobe=1, progress=False)
    finally:
        mona.index.PAIRS_CHUNK = chunk
    assert set(zip(again[0].tolist(), again[1].tolist(), strict=True)) == found


def test_dedup_over_a_store_on_disk_equals_in_memory(tmp_path):
    rng = np.random.default_rng(4)
    base = sp.random(1500, F, density=0.08, random_state=4, format="csr", dtype=np.float32)
    dups = base[rng.choice(1500, 100, replace=False)].copy()
    dups.data *= rng.uniform(0.97, 1.03, dups.nnz).astype(np.float32)
    X = sp.vstack([base, dups], format="csr")
    on_disk = select(write_store(tmp_path / "pool", X), method="random", n=50, dedup=0.95, index="ivf")
    in_mem = select(pool_of(X), method="random", n=50, dedup=0.95, index="ivf")
    d = on_disk.info["dedup"]
    assert d["dropped"] == in_mem.info["dedup"]["dropped"] == 100
    assert d["index"]["search_recall"] >= 0.95 and d["index"]["method"] == "nearest kept row"
    assert d["pairs"] is None  # the ivf path never lists the pairs


@pytest.mark.parametrize("block", [7, 4096])
def test_ivf_dedup_keeps_the_rows_the_pairwise_rule_keeps(block):
    """Chains of near-duplicates (a~b, b~c, a!~c) across block boundaries: asking each row for its nearest kept
    earlier row gives exactly the rows :func:`keep_first` keeps from all the pairs."""
    from mona.select.dedup import keep_first_indexed
    from mona.select.matrices import PoolMatrices
    from mona.select.neighbours import _exact_sparse_pairs, pool_space

    rng = np.random.default_rng(5)
    base = sp.random(600, F, density=0.08, random_state=5, format="csr", dtype=np.float32)
    chain = [base]
    for _ in range(3):  # each link perturbs the previous one: neighbours in the chain are closer than ends
        nxt = chain[-1][:200].copy()
        nxt.data *= rng.uniform(0.55, 1.45, nxt.nnz).astype(np.float32)
        chain.append(nxt)
    X = sp.vstack(chain, format="csr")[rng.permutation(1200)]
    space = pool_space(PoolMatrices(pool_of(X)), True)
    i, j = _exact_sparse_pairs(space, 0.9, None, progress=False)
    want = keep_first(X.shape[0], i, j)
    assert 0 < (~want).sum() < 600  # some chains lose links, some keep both ends
    got, info = keep_first_indexed(space, 0.9, block=block, progress=False)
    assert info["search_recall"] >= 0.95
    assert np.array_equal(got, want)


def test_max_ivf_raises_nprobe_until_recall_is_reached(monkeypatch):
    from mona.index import IndexConfig
    from mona.select import neighbours

    codes = sp.random(3000, F, density=0.05, random_state=8, format="csr", dtype=np.float32)  # no clusters:
    target = pool_of(codes[::97] + sp.random(31, F, density=0.01, random_state=3))  # neighbours span many lists
    real = neighbours.IndexConfig
    monkeypatch.setattr(neighbours, "IndexConfig", lambda **kw: real(**{"nprobe": 1, **kw}))
    assert neighbours.IndexConfig().nprobe == 1 and IndexConfig().nprobe == 32
    kw = dict(method="mona", n=150, similarity="cosine", aggregate="max")
    ivf = select(pool_of(codes), target=target, index="ivf", **kw)
    exact = select(pool_of(codes), target=target, index="none", **kw)
    info = ivf.info["index"]
    assert info["recall"] >= 0.95 and info["nprobe"] > 1  # one list per query was not enough; it doubled
    assert len(set(ivf.rows) & set(exact.rows)) / len(exact.rows) >= 0.95


def test_ivf_search_in_small_candidate_blocks_gives_the_same_neighbours(codes, monkeypatch):
    import mona.index
    from mona.index import IndexConfig, build_index

    index = build_index(codes, IndexConfig(kind="ivf", nlist=32), save=False, progress=False)
    queries = codes[::50]
    full = index.search(queries, 5)
    monkeypatch.setattr(mona.index, "SEARCH_CANDIDATES", 60)  # one query per block (k · rerank = 50)
    small = index.search(queries, 5)
    assert np.array_equal(full[1], small[1]) and np.allclose(full[0], small[0])


def test_ivf_dedup_lists_pairs_when_the_search_misses_near_duplicates(monkeypatch, caplog):
    """A search tuned to below 95% of the sampled near-duplicates is not trusted: the pairs are listed instead."""
    from mona.select import dedup

    rng = np.random.default_rng(4)
    base = sp.random(1500, F, density=0.08, random_state=4, format="csr", dtype=np.float32)
    dups = base[rng.choice(1500, 100, replace=False)].copy()
    dups.data *= rng.uniform(0.97, 1.03, dups.nnz).astype(np.float32)
    X = sp.vstack([base, dups], format="csr")
    monkeypatch.setattr(dedup, "tune_probes", lambda *a, **k: {"recall": 0.5, "sampled": 256, "nprobe": 4})
    sel = select(pool_of(X), method="random", n=50, dedup=0.95, index="ivf")
    d = sel.info["dedup"]
    assert d["dropped"] == 100 and d["pairs"] >= 100
    assert d["index"]["method"] == "pairs" and d["index"]["search_recall"] == 0.5
    assert "listing every pair" in caplog.text


def test_ivf_dedup_on_codes_dominated_by_frequent_features():
    """Zipf-distributed codes (frequent features carry most of the norm, near-duplicates at 0.9 sit among many
    neighbours at 0.8-0.87): the nearest-kept-row search is trusted (no pair listing) and drops what the exact
    pairwise rule drops, up to a few rows."""
    from mona.select.dedup import keep_first_indexed
    from mona.select.matrices import PoolMatrices
    from mona.select.neighbours import _exact_sparse_pairs, pool_space
    from tests.test_index import zipf_codes

    space = pool_space(PoolMatrices(pool_of(zipf_codes(4000, 4096, 1))), True)
    i, j = _exact_sparse_pairs(space, 0.9, None, progress=False)
    want = keep_first(space.n, i, j)
    got, info = keep_first_indexed(space, 0.9, progress=False)
    assert got is not None and info["search_recall"] >= 0.95
    assert (~got).sum() >= 0.95 * (~want).sum() and (got != want).sum() <= 0.05 * (~want).sum()


def test_ivf_dedup_of_dense_rows_wider_than_the_index(tmp_path):
    """Dense rows (width 1536 > the index's 256 dimensions: a random rotation reduces them) on disk: the list scan
    compares the reduced vectors, verifies exactly, drops exactly the planted later copies, and its audit of
    sampled rows finds nothing missed."""
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(30, 1536)).astype(np.float32)
    base = centres[rng.integers(0, 30, 2500)] + rng.normal(scale=0.9, size=(2500, 1536)).astype(np.float32)
    dup_of = rng.choice(2500, 150, replace=False)
    dups = base[dup_of] + rng.normal(scale=0.05, size=(150, 1536)).astype(np.float32)
    X = np.concatenate([base, dups])
    sel = select(write_store(tmp_path / "pool", X, mode="dense"), method="random", n=50, dedup=0.97, index="ivf")
    d = sel.info["dedup"]
    assert d["dropped"] == 150 and d["index"]["method"] == "nearest kept row"
    assert d["index"]["audit_audited"] > 0 and d["index"]["audit_missed"] == 0
    assert 0 < d["index"]["scan_margin"] <= 0.05 and not np.any(sel.rows >= 2500)


def test_list_scan_finds_every_pair_above_the_floor_in_the_probed_lists():
    """ListScan.candidates, block by block, against brute force over the same reduced vectors: every pair (j, i<j)
    whose approximate cosine clears the floor and whose i lies in one of j's probed lists, and no other pair
    (the earlier blocks' rows capped at the best per list, as asked)."""
    import torch

    from mona.select.dedup import ListScan
    from mona.select.matrices import PoolMatrices
    from mona.select.neighbours import open_index, pool_space
    from tests.test_index import zipf_codes

    space = pool_space(PoolMatrices(pool_of(zipf_codes(3000, 2048, 3))), True)
    index = open_index(space, "ivf", None, False)
    scan = ListScan(index, space, progress=False)
    R = scan.held[torch.from_numpy(scan.where)].float().numpy()  # row order
    S = R @ R.T
    probes = index._ivf().quantizer.search(R, 6)[1]
    floor, got = 0.8, set()
    for a in range(0, 3000, 700):
        j, i, s = scan.candidates(a, min(3000, a + 700), floor, 6, per_list=10_000)
        assert np.allclose(s, S[j, i], atol=1e-2)
        got |= set(zip(j.tolist(), i.tolist(), strict=True))
    jj, ii = np.nonzero(np.tril(S >= floor, -1))
    want = {(j, i) for j, i in zip(jj.tolist(), ii.tolist(), strict=True) if scan.owner[i] in probes[j]}
    assert len(want) > 100
    near_floor = {(j, i) for j, i in want ^ got if abs(S[j, i] - floor) > 1e-2}  # bfloat16 rounding at the floor
    assert not near_floor


def test_shape_buckets_pad_little_and_stay_few():
    from mona.select.neighbours import shape_bucket

    sizes = np.arange(1, 100_001)
    padded = np.array([shape_bucket(s) for s in sizes])
    assert (padded >= sizes).all() and (padded[15:] <= 1.25 * sizes[15:]).all()
    assert len(set(padded.tolist())) <= 4 * 14  # four shapes per doubling from 16 to 100k
