"""Selection algorithms on plain arrays: each against a brute-force or hand-computed answer."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from mona.select.budget import round_robin, split_quota, top_n
from mona.select.inputs import binarize_codes
from mona.select.methods.coverage import greedy_coverage
from mona.select.methods.kcenter import kcenter
from mona.select.methods.mmr import mmr
from mona.select.methods.nait import nait_directions, nait_scores
from mona.select.methods.simscale import simscale
from mona.select.similarity import (
    contributions,
    cosine_to_vector,
    jaccard_to_vector,
    max_similarity_to_rows,
    row_chunks,
)


def random_codes(n: int, F: int, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    X = sp.random(n, F, density=density, format="csr", random_state=rng, dtype=np.float32)
    X.data = rng.exponential(1.0, X.nnz).astype(np.float32)
    X = X.tolil()
    X[3, :] = 0  # an empty row
    return X.tocsr()


def brute_jaccard(A: np.ndarray, t: np.ndarray) -> np.ndarray:
    mn = np.minimum(A, t).sum(1)
    mx = np.maximum(A, t).sum(1)
    return np.where(mx > 0, mn / np.where(mx > 0, mx, 1), 0)


def test_weighted_jaccard_matches_brute_force():
    X = random_codes(500, 64, 0.1, 0)
    t = np.random.default_rng(1).exponential(1.0, 64).astype(np.float32) * (np.arange(64) % 3 == 0)
    got = jaccard_to_vector(X, t)
    np.testing.assert_allclose(got, brute_jaccard(X.toarray(), t), rtol=1e-5, atol=1e-7)
    assert got[3] == 0.0


def test_jaccard_chunking_and_threads_agree(monkeypatch):
    import mona.select.similarity as sim

    X = random_codes(3000, 128, 0.05, 2)
    t = np.random.default_rng(3).random(128).astype(np.float32)
    whole = jaccard_to_vector(X, t)
    assert len(row_chunks(X.indptr)) == 1  # the default chunk holds all of it
    used: list[int] = []

    def spy(indptr, chunk_nnz=None):
        chunks = row_chunks(indptr, chunk_nnz)
        used.append(len(chunks))
        return chunks

    monkeypatch.setattr(sim, "CHUNK_NNZ", 97)
    monkeypatch.setattr(sim, "row_chunks", spy)
    np.testing.assert_allclose(jaccard_to_vector(X, t), whole, rtol=1e-6)
    assert used and used[-1] > 10  # the pool really was scored in many chunks, on threads


def test_cosine_and_max_similarity_match_brute_force():
    X = random_codes(200, 40, 0.2, 4)
    T = random_codes(7, 40, 0.3, 5)
    A, B = X.toarray().astype(np.float64), T.toarray().astype(np.float64)
    na = np.linalg.norm(A, axis=1, keepdims=True)
    nb = np.linalg.norm(B, axis=1, keepdims=True)
    cos = np.where(na > 0, A / np.where(na > 0, na, 1), 0) @ np.where(nb > 0, B / np.where(nb > 0, nb, 1), 0).T
    np.testing.assert_allclose(cosine_to_vector(X, B[0]), cos[:, 0], atol=1e-6)
    best, arg = max_similarity_to_rows(X, T, "cosine")
    np.testing.assert_allclose(best, cos.max(1), atol=1e-6)
    jac = np.stack([brute_jaccard(A, B[j]) for j in range(len(B))], 1)
    best, arg = max_similarity_to_rows(X, T, "jaccard")
    np.testing.assert_allclose(best, jac.max(1), atol=1e-6)
    np.testing.assert_array_equal(arg, jac.argmax(1))


def test_contribution_shares_sum_to_one_and_rebuild_the_score():
    X = random_codes(50, 30, 0.3, 6)
    t = np.asarray(X[:10].mean(0)).ravel().astype(np.float32)
    score = jaccard_to_vector(X, t)
    for r in range(50):
        lo, hi = X.indptr[r], X.indptr[r + 1]
        feats = contributions(X.indices[lo:hi], X.data[lo:hi], t, "jaccard", 1000)
        if score[r] == 0:
            assert feats == []
            continue
        assert abs(sum(f["share"] for f in feats) - 1) < 1e-6
        shares = [f["share"] for f in feats]
        assert shares == sorted(shares, reverse=True)
        a, mx = X[r].toarray().ravel(), np.maximum(X[r].toarray().ravel(), t).sum()
        k = feats[0]["feature"]
        assert abs(feats[0]["share"] * score[r] - min(a[k], t[k]) / mx) < 1e-6


def test_top_n_ties_go_to_lower_rows():
    s = np.array([0.5, 0.9, 0.5, 0.9, 0.1, 0.5])
    assert top_n(s, 3).tolist() == [1, 3, 0]
    assert top_n(s, 4).tolist() == [1, 3, 0, 2]
    assert top_n(s, 6).tolist() == [1, 3, 0, 2, 5, 4]
    assert top_n(np.array([np.nan, 1.0]), 1).tolist() == [1]


def test_quota_round_robin():
    a = np.array([9, 8, 7, 0, 0, 0.0])
    b = np.array([9, 0, 0, 8, 7, 6.0])
    rows, owner = round_robin([a, b], 4)
    assert rows.tolist() == [0, 3, 1, 4] and owner.tolist() == [0, 1, 0, 1]
    rows, owner = round_robin([a, b], 4, [3, 1])
    assert sorted(owner.tolist()) == [0, 0, 0, 1]
    assert split_quota(10, [1, 1, 1]) == [4, 3, 3]


@pytest.mark.parametrize("algorithm", ["incremental", "lazy"])
def test_greedy_coverage_hand_example_reaches_the_optimum(algorithm):
    sets = [{0, 1, 2, 3}, {0, 1}, {2, 3, 4}, {4, 5}, {5, 6, 7}]
    X = sp.lil_matrix((5, 8), dtype=np.float32)
    for i, s in enumerate(sets):
        for f in s:
            X[i, f] = 1.0 + f / 10
    X = X.tocsr()
    picked = greedy_coverage(X, 3, algorithm=algorithm)
    assert picked.rows.tolist() == [0, 4, 2]  # C and D tie on the last step: lower row wins
    assert picked.scores.tolist() == [4, 3, 1]
    best = max(len(set().union(*(sets[i] for i in c))) for c in itertools.combinations(range(5), 3))
    assert len(set().union(*(sets[i] for i in picked.rows))) == best == 8
    assert [f["feature"] for f in picked.features[1]] == [7, 6, 5]  # newly covered, strongest first
    assert picked.features[2] == [{"feature": 4, "share": 1.0}]
    # a 4th pick: nothing new is coverable, so a second round starts from the remaining samples
    assert greedy_coverage(X, 5, algorithm=algorithm).rows.tolist() == [
        0,
        4,
        2,
        1,
        3,
    ]  # B and D tie at 2 new: lower row


def naive_greedy(sets: list[set], n: int) -> list[int]:
    covered: set = set()
    out: list[int] = []
    for _ in range(n):
        gains = [(-len(s - covered), i) for i, s in enumerate(sets) if i not in out]
        g, i = min(gains)
        if g == 0:
            break
        out.append(i)
        covered |= sets[i]
    return out


@pytest.mark.parametrize("algorithm", ["incremental", "lazy"])
def test_greedy_equals_naive_greedy(algorithm):
    X = random_codes(300, 200, 0.03, 7)
    sets = [set(X.indices[X.indptr[i] : X.indptr[i + 1]].tolist()) for i in range(300)]
    ref = naive_greedy(sets, 40)
    got = greedy_coverage(X, len(ref), algorithm=algorithm)
    assert got.rows.tolist() == ref
    # beyond one round (coverage resets) both implementations still agree
    a = greedy_coverage(X, 150, algorithm="incremental")
    b = greedy_coverage(X, 150, algorithm="lazy")
    assert a.rows.tolist() == b.rows.tolist() and a.features == b.features and a.info["rounds"] > 1


def test_active_threshold():
    X = sp.csr_matrix(np.array([[0.5, 2.0, 0], [3.0, 0.1, 0.2]], dtype=np.float32))
    assert binarize_codes(X, 1.0).toarray().tolist() == [[0, 1, 0], [1, 0, 0]]
    assert greedy_coverage(X, 1, threshold=1.0).scores.tolist() == [1]


def test_simscale_drops_near_duplicates():
    rng = np.random.default_rng(0)
    base = (rng.random((20, 300)) < 0.05).astype(np.float32)
    dups = base.copy()
    dups[:, 299] = 1  # near-copies of every base row
    X = sp.csr_matrix(np.vstack([base, dups]))
    p = simscale(X, 40, sim_threshold=0.7, block=7)
    kept = set(p.rows.tolist())
    assert len(kept) == 20  # only one of each pair survives
    assert all((i in kept) != (i + 20 in kept) for i in range(20))
    assert p.scores[0] == 1.0 and (p.scores >= 0.3 - 1e-9).all()
    assert simscale(X, 40, sim_threshold=1.0).rows.size == 40


def test_kcenter_spreads_and_is_seeded():
    pts = np.array([[1, 0], [0.99, 0.05], [0, 1], [0.05, 0.99], [-1, 0], [-0.98, 0.1]], dtype=np.float32)
    p = kcenter(pts, 3, seed=0)
    groups = {0: 0, 1: 0, 2: 1, 3: 1, 4: 2, 5: 2}
    assert len({groups[r] for r in p.rows}) == 3
    assert kcenter(pts, 3, seed=0).rows.tolist() == p.rows.tolist()


def test_mmr_trades_relevance_for_novelty():
    X = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]], dtype=np.float32))
    rel = np.array([1.0, 0.99, 0.6])
    assert mmr(X, rel, 2, lam=1.0).rows.tolist() == [0, 1]
    assert mmr(X, rel, 2, lam=0.5).rows.tolist() == [0, 2]


def test_nait_recovers_the_principal_drift_axis():
    rng = np.random.default_rng(0)
    m, L, d = 48, 3, 16
    axes = np.linalg.qr(rng.normal(size=(d, L)))[0].T  # one unit axis per layer
    first = rng.normal(size=(m, L, d))
    c = rng.uniform(1, 3, size=(m, 1, 1))
    last = first + c * axes[None] + 0.05 * rng.normal(size=(m, L, d))
    dirs, explained = nait_directions(np.stack([first, last], 2))
    cos = np.abs((dirs * axes).sum(1))
    assert (cos > 0.99).all() and (explained > 0.5).all()
    assert ((dirs * axes).sum(1) > 0).all()  # sign: the mean drift points along +axis
    # candidates whose last-token activation lies along the axes score highest
    pool = np.zeros((4, L, 2, d))
    pool[0, :, 1] = axes
    pool[1, :, 1] = -axes
    pool[2, :, 1] = 0.5 * axes
    s = nait_scores(pool.astype(np.float32), dirs.astype(np.float32))
    assert s.argsort()[::-1].tolist() == [0, 2, 3, 1]
    s_drift = nait_scores(pool.astype(np.float32), dirs.astype(np.float32), candidate="drift")
    np.testing.assert_allclose(s, s_drift)  # first-token activations are zero here


def test_segment_sums_with_empty_rows():
    from mona.select.similarity import segment_sums

    values = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    indptr = np.array([0, 0, 2, 2, 4, 4])
    assert segment_sums(values, indptr).tolist() == [0, 3, 0, 7, 0]
    assert segment_sums(values[:0], np.array([0, 0, 0])).tolist() == [0, 0]


def test_nait_standardize_finds_the_drift_under_a_massive_dimension():
    from mona.select import select
    from mona.select.inputs import ArrayStore
    from mona.select.methods.nait import candidate_scale

    rng = np.random.default_rng(1)
    L, d = 2, 12

    def acts(n: int) -> np.ndarray:
        a = rng.normal(size=(n, L, 2, d))
        a[..., 0] *= 300.0  # one residual dimension with a far larger spread than the rest, as in Gemma
        return a

    tgt = acts(32)
    tgt[:, :, 1, 3] += rng.uniform(1, 12, size=(32, 1))  # target samples drift along dimension 3
    pool = acts(200)
    pool[11, :, 1, 3] += 12.0  # the one pool sample that ends where the targets drift
    t = ArrayStore([f"t{i}" for i in range(32)], layers_array=tgt.astype(np.float32))
    p = ArrayStore([f"p{i}" for i in range(200)], layers_array=pool.astype(np.float32))
    raw = select(p, target=t, n=5, method="nait", nait_standardize=False)
    std = select(p, target=t, n=5, method="nait")  # standardised by default
    assert std.ids[0] == "p11" and raw.ids[0] != "p11"
    # raw: the massive dimension's noise is the whole principal component, so it decides the projection
    assert min(raw.info["method_info"]["target_0"]["explained_variance"]) > 0.99
    np.testing.assert_allclose(candidate_scale(pool), 1.0 / pool[:, :, 1, :].std(axis=0), rtol=1e-6)
