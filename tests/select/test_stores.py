"""Selection on real stores written by `embed` (tiny random model and SAE): wiring, manifests, CLI."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from mona.embed import EmbedConfig, embed
from mona.errors import ArtifactMismatch, MonaError
from mona.select import load_selection, select
from mona.testing import tiny_sae

HOOK = "blocks.1.hook_resid_post"


def records(prefix: str, n: int, topic: str) -> list[dict]:
    return [
        {"id": f"{prefix}{i}", "instruction": f"{topic} {i}", "output": f"{topic} answer " * (i % 3 + 1)}
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def stores(tmp_path_factory, tiny):
    from mona.data import load_samples

    root = tmp_path_factory.mktemp("stores")
    pool = load_samples(records("p", 12, "Solve for x: 3x + 5 = 20.") + records("q", 12, "Write a poem about the sea."))
    target = load_samples(records("t", 4, "Solve for x: 3x + 5 = 20."))
    sae = tiny_sae()
    cfg = EmbedConfig(hook=HOOK, dtype="float32")
    out = dict(pool_samples=pool, target_samples=target, root=root)
    out["pool"] = embed(pool, model=tiny, sae=sae, config=cfg, out_dir=root / "pool", progress=False)
    out["target"] = embed(target, model=tiny, sae=sae, config=cfg, out_dir=root / "target", progress=False)
    out["other"] = embed(target, model=tiny, sae=tiny_sae(seed=1), config=cfg, out_dir=root / "other", progress=False)
    lcfg = EmbedConfig(mode="layers", dtype="float32")
    out["lpool"] = embed(pool, model=tiny, sae=None, config=lcfg, out_dir=root / "lpool", progress=False)
    out["ltarget"] = embed(target, model=tiny, sae=None, config=lcfg, out_dir=root / "ltarget", progress=False)
    return out


def test_mona_on_real_stores(stores, tmp_path):
    sel = select(stores["root"] / "pool", target=stores["root"] / "target", n=6, pool_samples=stores["pool_samples"])
    assert len(sel) == 6 and sel.features and sel.features[0]
    assert sum(i.startswith("p") for i in sel.ids) >= 4  # the pool twins of the target come first
    assert sel.info["pool"]["path"].endswith("pool") and sel.info["pool"]["manifest"]["sae"]
    sel.save(tmp_path / "s")
    assert load_selection(tmp_path / "s").ids == sel.ids
    for method in ("greedy-coverage", "simscale", "kcenter", "mmr", "longest"):
        # a tiny random SAE makes every mean-pooled sample fire most features: simscale needs a loose threshold
        own = {"sim_threshold": 1.0} if method == "simscale" else {}
        assert len(select(stores["pool"], target=stores["target"], n=5, method=method, **own)) == 5


def test_mismatched_sae_and_modes_are_refused(stores):
    with pytest.raises(ArtifactMismatch):
        select(stores["pool"], target=stores["other"], n=5)
    with pytest.raises(MonaError, match="mode layers"):
        select(stores["pool"], target=stores["target"], n=5, method="nait")
    with pytest.raises(ArtifactMismatch):
        select(stores["pool"], n=5, method="random", pool_samples=stores["target_samples"])


def test_nait_on_real_layer_store(stores):
    sel = select(stores["lpool"], target=stores["ltarget"], n=5, method="nait")
    assert len(sel) == 5 and np.all(np.diff(sel.scores) <= 0)


def test_cli_on_stores(stores, tmp_path, capsys):
    from mona.cli.select import register

    parser = argparse.ArgumentParser(prog="mona")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "select",
            "--pool",
            str(stores["root"] / "pool"),
            "--target",
            str(stores["root"] / "target"),
            "-n",
            "5",
            "--out",
            str(tmp_path / "o"),
            "--aggregate",
            "max",
            "--binarize",
        ]
    )
    assert args.func(args) == 0
    back = load_selection(tmp_path / "o")
    assert len(back) == 5 and back.config.options.binarize and back.matches[0].startswith("t")


def test_decoder_similarity_reads_the_sae_the_manifest_names(stores, tiny, tmp_path):
    from mona.saes import load_sae

    for name, seed in (("sae", 0), ("other", 1)):
        sae = tiny_sae(seed=seed)
        sae.cfg.metadata.hook_name = HOOK
        sae.save_model(tmp_path / name)
    loaded = load_sae(tmp_path / "sae", model=tiny, hook=HOOK)
    cfg = EmbedConfig(hook=HOOK, dtype="float32")
    pool = embed(stores["pool_samples"], model=tiny, sae=loaded, config=cfg, out_dir=tmp_path / "pool", progress=False)
    target = embed(stores["target_samples"], model=tiny, sae=loaded, config=cfg, out_dir=tmp_path / "t", progress=False)
    assert pool.manifest["sae"]["source"].startswith("local:")
    sel = select(pool, target=target, n=6, similarity="decoder", feature_weights="idf")
    assert sum(i.startswith("p") for i in sel.ids) >= 4  # the pool twins of the target come first
    given = select(pool, target=target, n=6, similarity="decoder", feature_weights="idf", sae=loaded)
    assert given.ids == sel.ids and np.allclose(given.scores, sel.scores)
    with pytest.raises(ArtifactMismatch, match="weights"):
        select(pool, target=target, n=6, similarity="decoder", sae=load_sae(tmp_path / "other"))

    from mona.cli.select import register

    parser = argparse.ArgumentParser(prog="mona")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["select", "--pool", str(tmp_path / "pool"), "--target", str(tmp_path / "t"), "-n", "6",
                              "--similarity", "decoder", "--feature-weights", "idf", "--out", str(tmp_path / "o")])
    assert args.func(args) == 0
    assert load_selection(tmp_path / "o").ids == sel.ids
