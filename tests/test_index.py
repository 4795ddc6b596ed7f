"""FAISS index over store embeddings: flat is exact, the compressed index recalls the exact top-k."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mona.errors import ArtifactMismatch
from mona.index import IndexConfig, build_index, exact_search, load_index


@pytest.fixture(scope="module")
def clustered():
    """3000 sparse vectors of width 2048 around 40 sparse centres, like pooled SAE codes of mixed domains."""
    rng = np.random.default_rng(0)
    centres = sp.random(40, 2048, density=0.03, random_state=1, format="csr")
    labels = rng.integers(0, 40, 3000)
    noise = sp.random(3000, 2048, density=0.01, random_state=2, format="csr")
    return sp.csr_matrix(centres[labels] + noise, dtype=np.float32)


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
