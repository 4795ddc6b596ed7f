"""Store guarantees: round trip, crash resume, corruption detection, parts + finalize == one run (byte for byte)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from mona.embed import EmbedConfig, embed
from mona.errors import MonaError
from mona.store import finalize, open_store
from mona.testing import tiny_sae

HOOK = "blocks.1.hook_resid_post"
N = 22
CFG = EmbedConfig(hook=HOOK, shard_size=5)


def records(n: int = N) -> list[dict]:
    return [{"id": f"r{i}", "prompt": f"What is {i} + {i}?", "response": f"It is {2 * i}. " * (1 + i % 3)}
            for i in range(n)]


@pytest.fixture(scope="module")
def samples():
    from mona.data import load_samples

    return load_samples(records())


@pytest.fixture(scope="module")
def sae():
    return tiny_sae()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny, sae, samples):
    """One uninterrupted run: the bytes every other way of building the store must reproduce."""
    out = tmp_path_factory.mktemp("ref") / "store"
    embed(samples, model=tiny, sae=sae, config=CFG, out_dir=out, progress=False)
    return out


def tree(root: Path) -> dict[str, bytes]:
    """Every file of a store except the timing logs, as bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] != "logs"}


def test_round_trip(reference, samples, tiny, sae, tmp_path):
    store = open_store(reference)
    assert store.complete and store.n == N and store.manifest["n_shards"] == 5
    assert store.ids == [s.id for s in samples]
    codes = store.codes()
    assert codes.dtype == np.float32 and codes.shape == (N, 64)
    assert (np.diff(codes.indptr) > 0).all()
    assert store.lengths.shape == (N,) and (store.lengths > 0).all()
    assert np.array_equal(store.dense(), codes.toarray())
    # npy storage holds the same numbers
    npy = embed(samples, model=tiny, sae=sae, config=EmbedConfig(hook=HOOK, shard_size=5, storage="npy"),
                out_dir=tmp_path / "npy", progress=False)
    assert (npy.codes() != codes).nnz == 0
    assert sorted(p.name for p in (tmp_path / "npy" / "shards" / "00000").iterdir()) == [
        "indices.npy", "indptr.npy", "lengths.npy", "values.npy"]


def test_crash_after_shard_k_resumes_only_missing(reference, tiny, sae, samples, tmp_path, monkeypatch):
    import mona.embed as embed_mod

    real = embed_mod.write_shard
    written: list[int] = []

    def crash_after_two(root, k, arrays, storage):
        if len(written) == 2:
            raise RuntimeError("injected crash")
        written.append(k)
        return real(root, k, arrays, storage)

    out = tmp_path / "store"
    monkeypatch.setattr(embed_mod, "write_shard", crash_after_two)
    with pytest.raises(RuntimeError, match="injected"):
        embed(samples, model=tiny, sae=sae, config=CFG, out_dir=out, progress=False)
    with pytest.raises(MonaError, match="incomplete"):
        open_store(out)
    written.clear()
    monkeypatch.setattr(embed_mod, "write_shard", lambda *a: (written.append(a[1]), real(*a))[1])
    embed(samples, model=tiny, sae=sae, config=CFG, out_dir=out, progress=False)
    assert written == [2, 3, 4]
    assert tree(out) == tree(reference)


CHILD = textwrap.dedent("""
    import sys, time, torch
    sys.path.insert(0, {repo!r})
    sys.path.insert(0, {tests!r})
    import mona.embed as embed_mod
    from mona.data import load_samples
    from mona.testing import tiny_model
    from mona.testing import tiny_sae
    from test_store import CFG, records
    real = embed_mod.write_shard
    def slow(*args):
        out = real(*args)
        time.sleep(0.5)
        return out
    embed_mod.write_shard = slow
    embed_mod.embed(load_samples(records()), model=tiny_model(), sae=tiny_sae(), config=CFG,
                    out_dir={out!r}, progress=False)
""")


def test_kill_9_then_rerun_is_byte_identical(reference, tiny, sae, samples, tmp_path):
    out = tmp_path / "store"
    script = tmp_path / "child.py"
    repo = str(Path(__file__).resolve().parents[1])
    script.write_text(CHILD.format(repo=repo, tests=str(Path(__file__).parent), out=str(out)))
    child = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": repo})
    deadline = time.time() + 120
    while not (out / "shards" / "00001.done").exists():
        assert child.poll() is None, "child exited before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    done = sorted(p.name for p in (out / "shards").glob("*.done"))
    assert 2 <= len(done) < 5
    embed(samples, model=tiny, sae=sae, config=CFG, out_dir=out, progress=False)
    assert tree(out) == tree(reference)


def test_corrupted_shard_is_detected_and_recomputed(reference, tiny, sae, samples, tmp_path):
    import shutil

    out = tmp_path / "store"
    shutil.copytree(reference, out)
    shard = out / "shards" / "00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-7])  # truncated
    with pytest.raises(MonaError, match="shard 2 is corrupted"):
        open_store(out).codes()
    data = bytearray((out / "shards" / "00003.safetensors").read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the values
    (out / "shards" / "00003.safetensors").write_bytes(bytes(data))
    embed(samples, model=tiny, sae=sae, config=CFG, out_dir=out, progress=False)
    assert tree(out) == tree(reference)


def test_parts_then_finalize_equal_single_run(reference, tiny, sae, samples, tmp_path):
    out = tmp_path / "store"
    part = embed(samples, model=tiny, sae=sae, config=CFG, out_dir=out, shard=(1, 3), progress=False)
    assert not part.complete
    with pytest.raises(MonaError, match="cannot be finalized"):
        finalize(out)
    embed(samples, model=tiny, sae=sae, config=CFG, out_dir=out, shard=(2, 3), progress=False)
    last = embed(samples, model=tiny, sae=sae, config=CFG, out_dir=out, shard=(0, 3), progress=False)
    assert last.complete
    assert tree(out) == tree(reference)
    finalize(out)  # idempotent
    assert tree(out) == tree(reference)


def test_compatibility_between_stores(reference, tiny, sae, samples, tmp_path):
    from mona.errors import ArtifactMismatch

    pool = open_store(reference)
    target = embed(samples[:3], model=tiny, sae=sae, config=CFG, out_dir=tmp_path / "t", progress=False)
    pool.check_compatible(target)
    other = embed(samples[:3], model=tiny, sae=sae, config=EmbedConfig(hook=HOOK, pooling="binary"),
                  out_dir=tmp_path / "b", progress=False)
    with pytest.raises(ArtifactMismatch, match="pooling"):
        pool.check_compatible(other)
    model = {**tiny.identity.to_dict(), "dtype": "float32"}  # the model's identity and the dtype it ran in
    assert open_store(reference, expect={"pooling": "mean", "model": model}).n == N
    with pytest.raises(ArtifactMismatch, match="pooling: store has \"mean\", requested \"max\""):
        open_store(reference, expect={"pooling": "max"})
