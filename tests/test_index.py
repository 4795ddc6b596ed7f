"""FAISS index over store embeddings: flat is exact, the compressed index recalls the exact top-k."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mona.errors import ArtifactMismatch
from mona.index import IndexConfig, build_index, load_index
from mona.vectors import normalize_rows


@pytest.fixture(scope="module")
def clustered():
    """3000 sparse vectors of width 2048 around 40 sparse centres, like pooled SAE codes of mixed domains."""
    rng = np.random.default_rng(0)
    centres = sp.random(40, 2048, density=0.03, random_state=1, format="csr")
    labels = rng.integers(0, 40, 3000)
    noise = sp.random(3000, 2048, density=0.01, random_state=2, format="csr")
    return sp.csr_matrix(centres[labels] + noise, dtype=np.float32)


def exact_search(codes: sp.spmatrix, queries: sp.spmatrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force cosine top-``k``: the reference the index is tested against."""
    x = normalize_rows(sp.csr_matrix(codes, dtype=np.float32))
    q = normalize_rows(sp.csr_matrix(queries, dtype=np.float32))
    sims = np.asarray((q @ x.T).todense())
    k = min(k, x.shape[0])
    rows = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, rows, axis=1).astype(np.float32), rows


def recall(rows: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(rows, exact, strict=True)]))


def test_flat_is_exact(clustered):
    index = build_index(clustered, IndexConfig(kind="flat"), progress=False)
    queries = clustered[:50]
    scores, rows = index.search(queries, 10)
    want_scores, want_rows = exact_search(clustered, queries, 10)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert recall(rows, want_rows) == 1.0


def test_compressed_index_recall_and_exact_scores(clustered):
    index = build_index(clustered, IndexConfig(kind="ivf", dims=64, nprobe=16), progress=False)
    assert index.kind == "ivf"
    queries = clustered[100:160]
    scores, rows = index.search(queries, 10)
    want_scores, want_rows = exact_search(clustered, queries, 10)
    assert recall(rows, want_rows) >= 0.95
    # returned scores are exact cosines on the codes (re-ranked), not quantised approximations
    from mona.vectors import normalize_rows

    x, q = normalize_rows(clustered), normalize_rows(queries)
    for j in range(len(rows)):
        np.testing.assert_allclose(scores[j], (x[rows[j]] @ q[j].T).toarray().ravel(), atol=1e-5)


def test_auto_picks_flat_when_it_fits(clustered):
    assert build_index(clustered, progress=False).kind == "flat"
    assert build_index(clustered, IndexConfig(flat_max_bytes=1000, dims=32), progress=False).kind == "ivf"


def test_saved_beside_store_and_reloaded(tmp_path, tiny):
    from sae_lens import TopKSAE, TopKSAEConfig

    from mona.data import load_samples
    from mona.embed import EmbedConfig, embed

    torch.manual_seed(0)
    sae = TopKSAE(TopKSAEConfig(d_in=32, d_sae=64, k=6))
    with torch.no_grad():
        for p in sae.parameters():
            p.normal_(0, 0.2)
    samples = load_samples([{"id": f"t{i}", "text": f"The fox jumps over {i} dogs. " * (1 + i % 3)} for i in range(12)])
    store = embed(samples, model=tiny, sae=sae, config=EmbedConfig(hook="blocks.1.hook_resid_post"),
                  out_dir=tmp_path / "s", progress=False)
    built = build_index(store, progress=False)
    assert (tmp_path / "s" / "index" / "codes" / "index.faiss").exists()
    loaded = load_index(store)
    s1, r1 = built.search(store, 3)
    s2, r2 = loaded.search(store, 3)
    assert np.array_equal(r1, r2) and np.allclose(s1, s2)
    assert (r1[:, 0] == np.arange(12)).sum() >= 10  # each sample is (almost always) its own nearest neighbour
    other = embed(samples[:5], model=tiny, sae=sae, config=EmbedConfig(hook="blocks.1.hook_resid_post"),
                  out_dir=tmp_path / "o", progress=False)
    (tmp_path / "o" / "index").symlink_to(tmp_path / "s" / "index")
    with pytest.raises(ArtifactMismatch, match="different store"):
        load_index(other)


def zipf_codes(n: int, width: int, seed: int) -> sp.csr_matrix:
    """Rows of Zipf-distributed feature draws (log-normal values): a few frequent features carry most of each
    row's norm, as in pooled SAE codes."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, width + 1)
    counts = rng.integers(150, 451, n)
    idx = rng.permutation(width)[rng.choice(width, counts.sum(), p=p / p.sum())]
    m = sp.csr_matrix((rng.lognormal(-2, 1, idx.size), idx, np.r_[0, np.cumsum(counts)]), shape=(n, width),
                      dtype=np.float32)
    m.sum_duplicates()
    return m


def test_sketch_gives_the_heaviest_features_their_own_dimensions():
    from mona.vectors import count_sketch, normalize_rows, row_dots, sketch

    X = normalize_rows(zipf_codes(2000, 4096, 0))
    mass = np.bincount(X.indices, np.square(X.data, dtype=np.float64), minlength=4096)
    heavy = count_sketch(4096, 128, 0, mass)
    per_dim = np.bincount(heavy[0].astype(int), minlength=128)
    assert (per_dim[heavy[0, np.argsort(-mass)[:8]].astype(int)] == 1).all()  # the heaviest collide with nothing
    # features of equal mass: nothing gained by a dedicated dimension, a plain count sketch
    assert np.bincount(count_sketch(4096, 128, 0, np.ones(4096))[0].astype(int), minlength=128).min() > 1
    A, B = X[:1000], X[1000:]
    true = row_dots(A, B)

    def error(projection):
        return np.abs(np.einsum("ij,ij->i", sketch(A, projection, 128), sketch(B, projection, 128)) - true).mean()

    assert error(heavy) < 0.5 * error(count_sketch(4096, 128, 0))  # measured: 0.014 vs 0.046


def test_index_saved_with_the_plain_sketch_is_rebuilt(tmp_path, caplog):
    import json
    import logging

    from mona.index import index_folder, index_for
    from mona.vectors import Vectors
    from tests.select.test_neighbours import write_store

    store = write_store(tmp_path / "pool", zipf_codes(400, 1024, 0))
    config = IndexConfig(kind="ivf", dims=64, nlist=4)
    built = build_index(store, config, progress=False, kind="ivf")
    assert built.info["sketch"] == "heavy-features"
    assert index_for(store, Vectors(store), {"vectors": "codes"}, config, "ivf", False).info["built"] is False
    meta_path = index_folder(store) / "index.json"
    meta = json.loads(meta_path.read_text())
    del meta["sketch"]  # as written by earlier versions
    meta_path.write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING):
        again = index_for(store, Vectors(store), {"vectors": "codes"}, config, "ivf", False)
    assert again.info["built"] is True and "plain count sketch" in caplog.text
