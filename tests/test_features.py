"""Feature search over labels, saved searches steering a selection, feature statistics, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from mona.cli import main
from mona.errors import MonaError
from mona.features import (
    check_ids,
    feature_stats,
    find_labels,
    load_explanations,
    load_search,
    resolve_labels,
    save_search,
    search_features,
)
from mona.labels import LABELS_FORMAT, FeatureLabels
from mona.select import ArrayStore, select

C = 2  # context tokens on each side
SAE = {"name": "planted", "weights_hash": "abc123", "d_sae": 8}

# Per feature: its top contexts as (activation, five tokens, the middle one activating).
PLANTED = {
    2: [(3.0, ["Compute", " the", " integral", " of", " x"]),
        (2.5, [" an", " improper", " integral", ",", " then"]),
        (1.0, [" the", " definite", " integral", "s", " are"])],
    4: [(2.0, [" a", " short", " poem", " about", " the"]),
        (1.5, [" this", " sonnet", " poem", " rhymes", "."])],
    5: [(4.0, [" solve", " the", " equation", " by", " integral"]),  # the query in context, not on the token
        (1.0, [" a", " linear", " equation", " in", " x"])],
    6: [(1.0, ["<b>", " bold", " tag", "</b>", " here"])],
}


def planted_labels(path=None) -> FeatureLabels:
    F, k, w = 8, 3, 2 * C + 1
    vocab_ids: dict[str, int] = {}
    values = np.zeros((F, k), np.float32)
    sample = -np.ones((F, k), np.int32)
    contexts = -np.ones((F, k, w), np.int32)
    counts = np.zeros(F, np.int64)
    for f, ctxs in PLANTED.items():
        for j, (v, toks) in enumerate(ctxs):
            values[f, j], sample[f, j] = v, j
            contexts[f, j] = [vocab_ids.setdefault(t, len(vocab_ids)) for t in toks]
        counts[f] = len(ctxs)
    manifest = {"labels_format": LABELS_FORMAT, "sae": SAE, "tokens": 100, "sample_ids": ["s0", "s1", "s2"]}
    labels = FeatureLabels(values, sample, np.where(sample >= 0, 2, -1).astype(np.int32), contexts, counts,
                           values.sum(1).astype(np.float64), {i: t for t, i in vocab_ids.items()}, manifest)
    if path is not None:
        labels.save(path)
    return labels


@pytest.fixture
def labels(tmp_path):
    return planted_labels(tmp_path / "labels")


def test_planted_features_are_found_and_ranked(labels):
    found = search_features("integral", labels)
    assert [m.feature for m in found] == [2, 5]
    top, context_only = found
    assert top.score == pytest.approx(1.0) and top.token_matches == 3 and top.context_matches == 3
    # feature 5: only its strongest context holds the query, and not on the activating token -> half credit
    assert context_only.token_matches == 0 and context_only.context_matches == 1
    assert context_only.score == pytest.approx(0.5 * 4.0 / 5.0)
    assert top.label.startswith("integral")
    assert [m.feature for m in search_features("POEM", labels)] == [4]  # case-insensitive
    assert search_features("photosynthesis", labels) == []


def test_word_overlap_and_partial_tokens(labels):
    # "linear equation": token "equation" is one of the query's words (full credit on both of feature 5's contexts)
    found = search_features("linear equation", labels)
    assert found[0].feature == 5 and found[0].token_matches == 2 and found[0].score == pytest.approx(1.0)
    # a query word that begins with the activating token (3+ characters): "integrals" starts with "integral";
    # a token inside a word is another word ("tag" in "stage")
    assert search_features("integrals", labels)[0].feature == 2
    assert search_features("stage", labels) == [] and search_features("tags", labels)[0].feature == 6


def test_explanations_are_matched_when_present(labels, tmp_path):
    export = [{"index": 7, "description": "Mentions of calculus"}, {"index": "4", "explanations": [
        {"description": "poetry forms"}]}]
    (tmp_path / "np.json").write_text(json.dumps(export))
    exp = load_explanations(tmp_path / "np.json")
    assert exp == {7: "Mentions of calculus", 4: "poetry forms"}
    found = search_features("calculus", labels, explanations=exp)
    assert [m.feature for m in found] == [7] and found[0].explanation == "Mentions of calculus"
    # a label folder's own explanations.json is read when no explanations are given
    (labels.path / "explanations.json").write_text(json.dumps({"6": "HTML tags"}))
    assert [m.feature for m in search_features("html", labels)] == [6]


def test_saved_search_round_trips_into_selection_exclusion(labels, tmp_path):
    found = search_features("integral", labels, top=1)
    path = save_search(tmp_path / "integral.json", "integral", found, labels)
    saved = load_search(path)
    assert saved["query"] == "integral" and saved["features"][0] == {"feature": 2, "score": 1.0,
                                                                     "label": found[0].label}
    rng = np.random.default_rng(0)
    X = (rng.random((120, 8)) < 0.3) * rng.random((120, 8))
    X[:, 2] = 0
    X[:50, 2] = 1.0 + rng.random(50)  # the planted feature is active in rows 0-49
    pool = ArrayStore([f"p{i}" for i in range(120)], sp.csr_matrix(X.astype(np.float32)),
                      manifest={"mode": "sae", "sae": SAE})
    sel = select(pool, method="greedy-coverage", n=40, exclude_features=[f"@{path}"])
    assert len(sel) == 40 and not (X[sel.rows, 2] > 0).any()
    assert sel.config.exclude_features == (2,)
    req = select(pool, method="kcenter", n=10, require_features=[f"@{path}"])
    assert (X[req.rows, 2] > 0).all()


def test_unknown_ids_and_missing_labels_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(MonaError, match=r"unknown feature id\(s\) \[8, 'x'\]"):
        check_ids([1, 8, "x"], 8)
    monkeypatch.setenv("MONA_HOME", str(tmp_path / "home"))
    store = ArrayStore(["a"], sp.csr_matrix(np.ones((1, 8), np.float32)), manifest={"mode": "sae", "sae": SAE})
    with pytest.raises(MonaError, match="mona labels SAMPLES") as err:
        resolve_labels(store=store)
    assert "\n" not in str(err.value)


def test_label_cache_is_found_by_sae_identity(tmp_path, monkeypatch):
    monkeypatch.setenv("MONA_HOME", str(tmp_path))
    planted_labels(tmp_path / "labels" / "planted-k1")
    other = planted_labels()
    other.manifest = {**other.manifest, "sae": {**SAE, "weights_hash": "other"}}
    other.save(tmp_path / "labels" / "planted-k2")
    assert find_labels(SAE) == tmp_path / "labels" / "planted-k1"
    store = ArrayStore(["a"], sp.csr_matrix(np.ones((1, 8), np.float32)), manifest={"mode": "sae", "sae": SAE})
    assert resolve_labels(store=store).path == tmp_path / "labels" / "planted-k1"


def test_feature_stats_match_the_codes(stores_on_disk):
    from mona.store import open_store

    root, _ = stores_on_disk
    store = open_store(root / "pool")
    X = store.codes().toarray()
    feats = [int(f) for f in np.argsort(-(X > 0).sum(0))[:3]]
    for s in feature_stats(store, feats, top=4):
        col = X[:, s["feature"]]
        assert s["active"] == int((col > 0).sum()) and s["samples"] == len(col)
        assert s["mean"] == pytest.approx(col.mean(), rel=1e-5)
        assert s["mean_active"] == pytest.approx(col[col > 0].mean(), rel=1e-5)
        order = np.argsort(-col, kind="stable")[:4]
        assert [t["row"] for t in s["top"]] == [int(r) for r in order if col[r] > 0]
        assert all(t["id"] == store.ids[t["row"]] for t in s["top"])
    with pytest.raises(MonaError, match="unknown feature"):
        feature_stats(store, [store.n_features])


def test_cli_search_save_and_show(labels, tmp_path, capsys):
    out = tmp_path / "found.json"
    assert main(["features", "search", "integral", "--labels", str(labels.path), "--save", str(out)]) == 0
    text = capsys.readouterr().out
    assert "#2  score 1.000" in text and "[[ integral]]" in text and f"@{out}" in text
    assert [f["feature"] for f in json.loads(out.read_text())["features"]] == [2, 5]
    assert main(["features", "show", "4", "--labels", str(labels.path)]) == 0
    assert "[[ poem]]" in capsys.readouterr().out
    assert main(["features", "show", f"@{out}", "--labels", str(labels.path)]) == 0  # a saved search's features
    shown = capsys.readouterr().out
    assert shown.index("#2 ") < shown.index("#5 ") and "[[ equation]]" in shown
    assert main(["features", "show", "4", "99", "--labels", str(labels.path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown feature id(s) [99]" in err and "\n" not in err
    assert main(["features", "search", "zebra", "crossing", "--labels", str(labels.path), "--save", str(out)]) == 2
    assert "nothing saved" in capsys.readouterr().err
    # a partial match ("this" is one of three query words, in one context of feature 4) and --min-score
    assert main(["features", "search", "nothing", "like", "this", "--labels", str(labels.path)]) == 0
    assert "#4  score 0.071" in capsys.readouterr().out
    assert main(["features", "search", "nothing like this", "--labels", str(labels.path), "--min-score", "0.1"]) == 0
    assert "no feature label matches" in capsys.readouterr().out


def test_cli_show_with_store_and_no_label_cache(stores_on_disk, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MONA_HOME", str(tmp_path))
    root, _ = stores_on_disk
    assert main(["features", "search", "math", "--store", str(root / "pool")]) == 2
    err = capsys.readouterr().err.strip()
    assert "mona labels SAMPLES --sae" in err and "\n" not in err
    # with a store but no labels: pool statistics, and a note on how to get contexts
    assert main(["features", "show", "0", "1", "--store", str(root / "pool")]) == 0
    text = capsys.readouterr().out
    assert "store: active in" in text and "mona labels" in text


def test_search_real_labels_from_the_tiny_model(tiny, tmp_path):
    from mona.data import load_samples
    from mona.labels import LabelConfig, compute_labels
    from mona.testing import TINY_HOOK, pool_records, tiny_sae

    labels = compute_labels(load_samples(pool_records()), model=tiny, sae=tiny_sae(), hook=TINY_HOOK,
                            config=LabelConfig(top_k=4, context=3), out_dir=tmp_path / "l", progress=False)
    f = int(labels.counts.argmax())
    token = labels.top_tokens(f, 1)[0]
    found = search_features(token, labels, top=None)
    hit = next(m for m in found if m.feature == f)
    assert hit.token_matches >= 1 and hit.score > 0
    # every feature whose strongest activating token is exactly the query is found with a token match
    exact = [g for g in range(labels.n_features) if labels.counts[g] and labels.top_tokens(g, 1) == [token]]
    assert {g for g in exact} <= {m.feature for m in found if m.token_matches}


def test_cli_select_reads_a_saved_search(stores_on_disk, tmp_path, capsys):
    """``mona select --exclude-features @FILE``: the saved search's features are never active in a pick."""
    from mona.select import load_selection
    from mona.store import open_store

    root, _ = stores_on_disk
    X = open_store(root / "pool").codes().toarray()
    counts = (X > 0).sum(0)
    f = int(np.argmin(np.abs(counts - len(X) / 2)))  # a feature active in about half the pool
    assert 0 < counts[f] <= len(X) - 5
    (tmp_path / "s.json").write_text(json.dumps({"query": "q", "features": [{"feature": f, "score": 1.0}]}))
    assert main(["select", "--method", "greedy-coverage", "--pool", str(root / "pool"), "--n", "5",
                 "--exclude-features", f"@{tmp_path / 's.json'}", "--out", str(tmp_path / "sel")]) == 0
    sel = load_selection(tmp_path / "sel")
    assert sel.config.exclude_features == (f,) and not (X[sel.rows, f] > 0).any()
