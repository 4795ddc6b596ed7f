"""The selection-method registry: a method is one class with its options; select, explain and the CLI ask it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp

from mona.errors import MonaError
from mona.explain import explain
from mona.select import REGISTRY, ArrayStore, SelectConfig, get_method, select
from mona.select.methods import register_method
from mona.select.methods.base import OWN_FEATURES, Context, Method, Picked, own_features


@dataclass
class FewestOptions:
    """Options of a toy method."""

    keep_empty: bool = False
    """Also pick samples without any active feature."""


class Fewest(Method):
    """Picks the samples with the fewest active SAE features (one module + one registry line in the package)."""

    name = "fewest-features"
    summary = "the samples with the fewest active features"
    Options = FewestOptions
    pool_modes = ("sae",)
    sae_features = True
    features = OWN_FEATURES

    def pick(self, ctx: Context, groups: list) -> Picked:
        X = ctx.matrices().codes()
        count = np.diff(X.indptr).astype(np.float64)
        if not ctx.options.keep_empty:
            count[count == 0] = np.inf
        rows = np.lexsort((np.arange(len(count)), count))[: ctx.n]
        return Picked(rows, -count[rows], own_features(X, rows, ctx.config.top_features))


@pytest.fixture
def fewest():
    method = register_method(Fewest())
    yield method
    del REGISTRY[method.name]


def _pool() -> ArrayStore:
    rng = np.random.default_rng(0)
    X = sp.random(30, 16, density=0.3, format="csr", random_state=rng, dtype=np.float32)
    return ArrayStore([f"p{i}" for i in range(30)], X, manifest={"mode": "sae"})


def test_a_registered_method_selects_explains_and_has_cli_flags(fewest, tmp_path):
    pool = _pool()
    sel = select(pool, method="fewest-features", n=4, keep_empty=True)
    counts = np.diff(pool.codes().indptr)
    assert sorted(counts[sel.rows].tolist()) == sorted(counts.tolist())[:4]
    assert sel.config.options == FewestOptions(keep_empty=True)
    sel.save(tmp_path / "s")
    ex = explain(tmp_path / "s", pool_store=pool)
    assert ex.summary["feature_semantics"] == OWN_FEATURES and len(ex.samples) == 4
    from mona.cli.select import option_fields

    option_fields.cache_clear()
    assert "keep_empty" in option_fields().__dataclass_fields__


def test_every_method_declares_what_it_needs():
    for name, method in REGISTRY.items():
        assert get_method(name) is method and method.summary
        assert method.target in (None, "store", "samples")
        assert SelectConfig.build(method=name).options == method.Options()
        assert method.features is None or method.sae_features


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"method": "nope"}, "valid methods: mona, nait"),
        ({"method": "random", "similarity": "cosine"}, "random's options: none"),
        ({"method": "kcenter", "mmr_lambda": 0.5}, "kcenter's options: center, standardize"),
        ({"method": "mona", "contrast": True, "similarity": "jaccard"}, "contrast"),
        ({"method": "mmr", "mmr_lambda": 2.0}, "mmr_lambda"),
        ({"method": "bm25", "bm25_b": 2.0}, "bm25"),
        ({"n": 3, "ratio": 0.1}, "either n or ratio"),
    ],
)
def test_bad_settings_are_one_line_errors(values, match):
    with pytest.raises(MonaError, match=match) as info:
        SelectConfig.build(**values)
    assert "\n" not in str(info.value)


def test_config_round_trips_flat_and_nested():
    cfg = SelectConfig.build(method="mona", n=5, similarity="cosine", feature_weights="idf")
    assert SelectConfig.from_dict(cfg.to_dict()) == cfg
    flat = {"method": "mona", "n": 5, "similarity": "cosine", "feature_weights": "idf", "mmr_lambda": 0.7}
    assert SelectConfig.from_dict(flat, strict=False) == cfg  # an older flat selection.json
    assert cfg.replace(n=7).options == cfg.options and cfg.replace(method="random").options == get_method(
        "random").Options()


def test_mona_presets_fill_unset_options():
    from mona.select.methods.mona import PRESETS

    robust = SelectConfig.build(method="mona").options
    assert robust.preset == "robust" and {k: getattr(robust, k) for k in PRESETS["robust"]} == PRESETS["robust"]
    paper = SelectConfig.build(method="mona", preset="paper").options
    assert (paper.similarity, paper.feature_weights, paper.max_feature_share, paper.contrast) == (
        "jaccard", "none", 1.0, False)
    # a given option wins over the preset; the preset's contrast only applies to cosine
    mixed = SelectConfig.build(method="mona", preset="paper", feature_weights="idf").options
    assert (mixed.similarity, mixed.feature_weights) == ("jaccard", "idf")
    dec = SelectConfig.build(method="mona", similarity="decoder").options
    assert (dec.feature_weights, dec.max_feature_share, dec.contrast) == ("idf", 0.5, False)
    assert SelectConfig.build(method="mmr").options.similarity == robust.similarity  # mmr's relevance inherits it
    cfg = SelectConfig.build(method="mona", preset="paper", n=3)
    assert SelectConfig.from_dict(cfg.to_dict()) == cfg  # saved with the resolved values
    with pytest.raises(MonaError, match="preset must be one of robust, paper"):
        SelectConfig.build(method="mona", preset="nas")


def test_preset_flag_of_mona_select(tmp_path):
    import argparse

    from mona.cli.select import build_config, register

    parser = argparse.ArgumentParser(prog="mona")
    register(parser.add_subparsers(dest="command", required=True))
    plain = build_config(parser.parse_args(["select", "--out", str(tmp_path)]))
    assert plain.method == "mona" and plain.options == SelectConfig.build(method="mona").options
    paper = build_config(parser.parse_args(["select", "--out", str(tmp_path), "--preset", "paper"]))
    assert paper.options.similarity == "jaccard" and paper.options.feature_weights == "none"
    both = build_config(parser.parse_args(["select", "--out", str(tmp_path), "--preset", "paper",
                                           "--similarity", "cosine"]))
    assert (both.options.similarity, both.options.contrast) == ("cosine", False)
