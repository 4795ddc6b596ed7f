"""Passes on a store's shard arrays (``mona.select.stream``) equal the in-memory computations."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mona.select import select, stream
from tests.select.test_neighbours import planted, pool_of, write_store


def test_float16_table_converts_every_bit_pattern_exactly():
    bits = np.arange(1 << 16, dtype=np.uint16)
    with np.errstate(invalid="ignore"):
        want = bits.view(np.float16).astype(np.float32)
    got = stream.as_float32(bits.view(np.float16))
    assert np.array_equal(got, want, equal_nan=True)


def test_feature_counts_and_mean_direction_match_the_matrix(tmp_path):
    X = planted(900, seed=3)
    X.data[::7] = 0.01  # some entries at or under the threshold below
    store = write_store(tmp_path / "pool", X, shard=250)
    for threshold in (0.0, 0.05):
        want = np.bincount(X.indices[X.data > threshold], minlength=X.shape[1])
        assert np.array_equal(stream.feature_counts(store, threshold, binarize=False), want)
    w = np.random.default_rng(0).random(X.shape[1]).astype(np.float32)
    w[::5] = 0.0
    Xw = sp.csr_matrix(X.multiply(w[None, :]))
    norms = np.sqrt(np.asarray(Xw.multiply(Xw).sum(axis=1)).ravel())
    want = (sp.diags(np.where(norms > 0, 1 / np.where(norms > 0, norms, 1), 0)) @ Xw).sum(axis=0)
    got = stream.mean_direction(store, w, binarize=False, threshold=0.0)
    np.testing.assert_allclose(got, np.asarray(want).ravel() / X.shape[0], rtol=1e-5, atol=1e-8)


def test_binarised_streamed_prototype_equals_in_memory(tmp_path):
    X = planted(1200, seed=4)
    store = write_store(tmp_path / "pool", X, shard=300)
    target = pool_of(planted(30, seed=9))
    for sim in ("jaccard", "cosine"):
        kw = dict(method="mona", n=60, similarity=sim, binarize=True, active_threshold=0.05)
        on_disk, in_mem = select(store, target=target, **kw), select(pool_of(X), target=target, **kw)
        assert on_disk.info["method_info"]["target_0"]["streamed"]
        assert np.array_equal(on_disk.rows, in_mem.rows)
        np.testing.assert_allclose(on_disk.scores, in_mem.scores, rtol=1e-5, atol=1e-7)
