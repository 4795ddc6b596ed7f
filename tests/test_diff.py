"""Dataset diff by SAE features: the two-sided test, planted differences, selections as sides, outputs, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from mona.cli import main
from mona.diff import DiffConfig, diff
from mona.errors import MonaError
from mona.explain.stats import fisher_test
from mona.select import ArrayStore, SelectConfig, select

F = 40
SAE = {"name": "s", "weights_hash": "h1", "d_sae": F}


def store(n: int, rates: dict[int, float], prefix: str, seed: int, sae: dict = SAE) -> tuple[ArrayStore, np.ndarray]:
    """Random sparse codes with the given features active in the given share of rows."""
    rng = np.random.default_rng(seed)
    X = (rng.random((n, F)) < 0.2) * rng.random((n, F))
    for f, rate in rates.items():
        X[:, f] = (rng.random(n) < rate) * (1.0 + rng.random(n))
    s = ArrayStore([f"{prefix}{i}" for i in range(n)], sp.csr_matrix(X.astype(np.float32)),
                   manifest={"mode": "sae", "sae": sae, "hook": "h", "pooling": "mean"})
    return s, X


@pytest.mark.parametrize(("n_a", "n_b"), [(12, 30), (200, 7), (1, 1), (50, 50)])
def test_vectorised_fisher_equals_scipy(n_a, n_b):
    from scipy.stats import fisher_exact

    rng = np.random.default_rng(n_a * 100 + n_b)
    ka, kb = rng.integers(0, n_a + 1, 300), rng.integers(0, n_b + 1, 300)
    ka[:3], kb[:3] = 0, 0
    ka[3:6], kb[3:6] = n_a, n_b
    for alt in ("two-sided", "greater"):
        ref = [fisher_exact([[a, n_a - a], [b, n_b - b]], alternative=alt).pvalue for a, b in zip(ka, kb)]
        assert np.allclose(fisher_test(ka, n_a, kb, n_b, alternative=alt), ref, rtol=1e-6, atol=1e-12)


def test_a_store_against_itself_shows_nothing():
    a, _ = store(150, {3: 0.5}, "a", 0)
    d = diff(a, a)
    assert d.summary["counts"]["significant"] == 0
    assert np.allclose(d.table["p_value"], 1.0) and np.allclose(d.table["log_odds"], 0.0)
    assert not any(r["significant"] for r in d.over + d.under)


def test_planted_differences_are_found_first():
    a, Xa = store(200, {7: 0.8, 11: 0.05}, "a", 1)
    b, Xb = store(300, {7: 0.05, 11: 0.6}, "b", 2)
    d = diff(a, b, examples=2)
    top, bottom = d.over[0], d.under[0]
    assert top["feature"] == 7 and top["q_value"] < 0.01 and top["log_odds"] > 2
    assert bottom["feature"] == 11 and bottom["q_value"] < 0.01 and bottom["log_odds"] < -2
    assert top["a"] == int((Xa[:, 7] > 0).sum()) and top["b"] == int((Xb[:, 7] > 0).sum())
    assert top["a_rate"] == pytest.approx(top["a"] / 200) and top["b_mean"] == pytest.approx(Xb[:, 7].mean())
    # examples: the samples with the highest pooled value of the feature, on each side
    best_a = [f"a{i}" for i in np.argsort(-Xa[:, 7])[:2]]
    assert [e["id"] for e in top["examples_a"]] == best_a
    assert [e["id"] for e in top["examples_b"]] == [f"b{i}" for i in np.argsort(-Xb[:, 7])[:2]]
    # the unplanted random features are not significant
    assert set(d.table["feature"][d.table["significant"]]) == {7, 11}


def test_different_saes_are_refused_before_computing():
    a, _ = store(20, {}, "a", 0)
    b, _ = store(20, {}, "b", 0, sae={**SAE, "weights_hash": "h2"})
    with pytest.raises(MonaError, match="not comparable") as err:
        diff(a, b)
    assert "\n" not in str(err.value)
    dense = ArrayStore(["x"], dense_matrix=np.ones((1, 4), np.float32))
    with pytest.raises(MonaError, match="needs SAE stores"):
        diff(a, dense)


def test_outputs_and_escaped_report(tmp_path):
    from test_features import planted_labels

    a, _ = store(100, {6: 0.9}, "a", 3, sae={"name": "planted", "weights_hash": "abc123", "d_sae": 8})
    b, _ = store(100, {6: 0.1}, "b", 4, sae={"name": "planted", "weights_hash": "abc123", "d_sae": 8})
    labels = planted_labels(tmp_path / "labels")  # feature 6 fires on an "<b>" context
    d = diff(a, b, labels=labels, out_dir=tmp_path / "d", config=DiffConfig(top=5))
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "d" / "diff.parquet").to_pydict()
    assert len(table["feature"]) == d.summary["counts"]["tested"] and table["feature"][0] == 6
    saved = json.loads((tmp_path / "d" / "diff.json").read_text())
    assert saved["over"][0]["feature"] == 6 and saved["over"][0]["label"] == d.labels.label(6)
    assert saved["labels"] == str(labels.path) and len(saved["over"]) <= 5
    html = (tmp_path / "d" / "diff.html").read_text()
    assert "data:image/png;base64," in html and "More common in A" in html
    assert "&lt;b&gt;" in html and "<b> bold" not in html  # label contexts are escaped


def test_labels_of_another_sae_are_refused(tmp_path):
    from test_features import planted_labels

    a, _ = store(10, {}, "a", 0)
    with pytest.raises(MonaError, match="made with SAE 'planted'"):
        diff(a, a, labels=planted_labels(tmp_path / "l"))


def test_selection_folders_as_sides(stores_on_disk, tmp_path):
    from mona.store import open_store

    root, pool_samples = stores_on_disk
    pool = open_store(root / "pool")
    math = select(pool, config=SelectConfig.build(method="random", n=8, seed=0),
                  pool_samples=[s for s in pool_samples])
    math.info["pool"] = {"path": str(root / "pool")}
    math.save(tmp_path / "sel")
    d = diff(tmp_path / "sel", root / "target", out_dir=tmp_path / "d")
    assert d.summary["a"]["kind"] == "selection" and d.summary["a"]["samples"] == 8
    X = pool.codes()[math.rows]
    f = d.table["feature"][0]
    assert d.table["a"][0] == int((X[:, f].toarray() > 0).sum())
    example = (d.over or d.under)[0]["examples_a"][0]
    assert example["id"] in math.ids and example["text"]  # the selection's records give the text
    assert d.summary["counts"]["tested"] == len(d.table["feature"])


def test_cli_diff(stores_on_disk, tmp_path, capsys):
    root, _ = stores_on_disk
    assert main(["diff", str(root / "pool"), str(root / "pool"), "--out", str(tmp_path / "same")]) == 0
    assert "0 more common in A, 0 more common in B" in capsys.readouterr().out
    assert main(["diff", str(root / "pool"), str(root / "target"), "-o", str(tmp_path / "d"), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "features tested" in out and (tmp_path / "d" / "diff.html").exists()
    assert main(["diff", str(root / "pool"), str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is neither an embedding store (`mona embed`) nor a selection folder" in err and "\n" not in err


def test_cli_refuses_stores_of_different_saes(stores_on_disk, tiny, tmp_path, capsys):
    from mona.data import load_samples
    from mona.embed import EmbedConfig, embed
    from mona.testing import TINY_HOOK, pool_records, tiny_sae

    root, _ = stores_on_disk
    other = tmp_path / "other"
    embed(load_samples(pool_records()[:4]), model=tiny, sae=tiny_sae(seed=1),
          config=EmbedConfig(hook=TINY_HOOK, dtype="float32"), out_dir=other, progress=False)
    assert main(["diff", str(root / "pool"), str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not comparable" in err and "sae" in err and "\n" not in err
