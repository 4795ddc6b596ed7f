"""mona.distributed: a store embedded by Ray workers is the single-process store, byte for byte, also after a
worker dies or a shard fails and the same call runs again; addresses that do not answer fail in one line."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mona.distributed import DistributedConfig, check_address, embed_distributed, plan_workers
from mona.embed import EmbedConfig, embed
from mona.errors import MonaError
from mona.store import open_store
from mona.testing import TINY_HOOK, pool_records, tiny_model, tiny_sae

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'mona[ray]')")

CONFIG = EmbedConfig(hook=TINY_HOOK, shard_size=4)  # 24 samples: 6 shards


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance with 2 CPUs: two CPU workers."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the flaky factories below travel by value
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def samples():
    from mona.data import load_samples

    return load_samples(pool_records())


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny, samples):
    """The store one process writes."""
    out = tmp_path_factory.mktemp("single") / "store"
    embed(samples, model=tiny, sae=tiny_sae(), config=CONFIG, out_dir=out, progress=False)
    return out


def store_bytes(root: Path) -> dict[str, str]:
    """sha256 of every file of a store but the timing logs (the manifest included: it holds no timing)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.relative_to(root).parts[0] != "logs"}


def flaky_model(flag: str, action: str):
    """The tiny model, whose first forward pass while ``flag`` exists removes it and then kills its process
    (``exit``) or raises (``raise``)."""
    loaded = tiny_model()

    def once(module, args):
        try:
            os.remove(flag)
        except FileNotFoundError:
            return
        if action == "exit":
            os._exit(1)
        raise RuntimeError("injected failure")

    loaded.model.embed.register_forward_pre_hook(once)  # run_with_hooks calls forward(), not the module
    return loaded


def test_ray_store_is_byte_identical(cluster, samples, reference, tmp_path):
    out = tmp_path / "ray"
    store = embed_distributed(samples, model=tiny_model, sae=tiny_sae, config=CONFIG, out_dir=out, progress=False)
    assert store.complete and store.n == len(samples)
    assert len(store.manifest["shards"]) == 6
    assert store_bytes(out) == store_bytes(reference)
    assert sorted(p.name for p in (out / "logs").iterdir()) == [f"{k:05d}.json" for k in range(6)]
    again = embed_distributed(samples, model=tiny_model, sae=tiny_sae, config=CONFIG, out_dir=out, progress=False)
    assert store_bytes(out) == store_bytes(reference) and again.complete


@pytest.mark.slow  # each worker process imports torch, TransformerLens and sae-lens
def test_worker_killed_mid_shard_loses_only_that_shard(cluster, samples, reference, tmp_path, caplog):
    flag = tmp_path / "kill-once"
    flag.touch()
    model = functools.partial(flaky_model, str(flag), "exit")
    out = tmp_path / "ray"
    store = embed_distributed(samples, model=model, sae=tiny_sae, config=CONFIG, out_dir=out, progress=False)
    assert not flag.exists(), "no worker was killed"
    assert "a Ray worker died computing shard" in caplog.text
    assert store.complete and store_bytes(out) == store_bytes(reference)


@pytest.mark.slow  # each worker process imports torch, TransformerLens and sae-lens
def test_failed_shard_stops_the_run_and_a_rerun_completes_it(cluster, samples, reference, tmp_path):
    flag = tmp_path / "fail-once"
    flag.touch()
    out = tmp_path / "ray"
    with pytest.raises(MonaError, match=r"shard \d+ failed: .*injected failure.*run the same command again"):
        embed_distributed(samples, model=functools.partial(flaky_model, str(flag), "raise"), sae=tiny_sae,
                          config=CONFIG, out_dir=out, progress=False)
    partial = open_store(out, allow_incomplete=True)
    assert not partial.complete
    done = {p: p.stat().st_mtime_ns for p in (out / "shards").glob("*.safetensors")}
    assert len(done) < 6
    store = embed_distributed(samples, model=tiny_model, sae=tiny_sae, config=CONFIG, out_dir=out, progress=False)
    assert store.complete and store_bytes(out) == store_bytes(reference)
    assert all(p.stat().st_mtime_ns == t for p, t in done.items()), "a finished shard was computed again"


def test_store_made_differently_is_refused_before_any_shard(cluster, samples, reference, tmp_path):
    import shutil

    out = tmp_path / "ray"
    shutil.copytree(reference, out)
    with pytest.raises(MonaError, match="made differently"):
        embed_distributed(samples, model=tiny_model, sae=functools.partial(tiny_sae, seed=1), config=CONFIG,
                          out_dir=out, progress=False)
    assert store_bytes(out) == store_bytes(reference)


@pytest.mark.slow  # each worker process imports torch, TransformerLens and sae-lens
def test_worker_that_cannot_load_its_model_is_one_line(cluster, samples, tmp_path):
    with pytest.raises(MonaError, match="cannot load the model or SAE: ModelError: unknown model 'no-such-model'"):
        embed_distributed(samples, model="no-such-model", sae=tiny_sae, config=CONFIG, out_dir=tmp_path / "x",
                          progress=False)
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------------------------------------
# Without a running Ray instance
# --------------------------------------------------------------------------------------------------------


def test_finished_store_is_reused_without_ray(reference, tmp_path, monkeypatch):
    import shutil

    import mona.distributed

    def no_ray(*args):
        raise AssertionError("Ray was started for a finished store")

    monkeypatch.setattr(mona.distributed, "_Connection", no_ray)
    out = tmp_path / "store"
    shutil.copytree(reference, out)
    # the model by the name the manifest records: the store is checked without loading it
    store = embed_distributed(pool_records(), model="tiny-3x32-seed0", sae=tiny_sae(), config=CONFIG, out_dir=out,
                              progress=False)
    assert store.complete and store_bytes(out) == store_bytes(reference)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_address_that_does_not_answer():
    with pytest.raises(MonaError, match="does not answer"):
        check_address(f"127.0.0.1:{_closed_port()}")
    with pytest.raises(MonaError, match="not host:port"):
        check_address("somewhere")
    check_address("local")


def test_cli_bad_address_is_one_line_and_writes_nothing(tmp_path):
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in pool_records()))
    out = tmp_path / "store"
    address = f"127.0.0.1:{_closed_port()}"
    proc = subprocess.run(
        [sys.executable, "-m", "mona.cli", "embed", str(pool), "--out", str(out), "--ray", address],
        capture_output=True, text=True, timeout=300, env={**os.environ, "RAY_ADDRESS": ""},
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not answer" in lines[0], proc.stderr
    assert not out.exists()


def test_plan_workers():
    cpu_nodes = [{"CPU": 8.0}, {"CPU": 4.0}]
    assert plan_workers(cpu_nodes, DistributedConfig(ray="auto"), 100) == (12, 0.0, 1)
    assert plan_workers(cpu_nodes, DistributedConfig(ray="auto", ray_cpus_per_worker=4), 100) == (3, 0.0, 4)
    assert plan_workers(cpu_nodes, DistributedConfig(ray="auto"), 5)[0] == 5  # never more workers than shards
    gpu_nodes = [{"CPU": 16.0, "GPU": 4.0}, {"CPU": 16.0, "GPU": 4.0}, {"CPU": 8.0}]
    assert plan_workers(gpu_nodes, DistributedConfig(ray="auto"), 100) == (8, 1.0, 1)
    assert plan_workers(gpu_nodes, DistributedConfig(ray="auto", ray_gpus_per_worker=0.5), 100)[0] == 16
    assert plan_workers(gpu_nodes, DistributedConfig(ray="auto", ray_gpus_per_worker=0), 100)[0] == 40
    with pytest.raises(MonaError, match="no node of the Ray cluster has 1 CPU"):
        plan_workers(cpu_nodes, DistributedConfig(ray="auto", ray_gpus_per_worker=1), 10)
    with pytest.raises(MonaError, match="no node"):
        plan_workers(cpu_nodes, DistributedConfig(ray="auto", ray_cpus_per_worker=16), 10)
    with pytest.raises(MonaError, match="ray_workers"):
        DistributedConfig(ray="auto", ray_workers=0)


def _cli(argv):
    import argparse

    from mona.cli import embed as cli_embed

    parser = argparse.ArgumentParser(prog="mona")
    cli_embed.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_ray_flags_reach_embed_distributed(monkeypatch, reference, tmp_path, capsys):
    import mona.distributed

    calls = []

    def fake(path, **kwargs):
        calls.append((path, kwargs))
        return open_store(reference)

    monkeypatch.setattr(mona.distributed, "embed_distributed", fake)
    assert _cli(["embed", "pool.jsonl", "--out", str(tmp_path / "s"), "--ray", "--max-tokens", "64"]) == 0
    assert _cli(["embed", "pool.jsonl", "--ray", "auto", "--ray-workers", "3", "--ray-gpus-per-worker", "0.5",
                 "--out", str(tmp_path / "s")]) == 0
    (path, first), (_, second) = calls
    assert path == Path("pool.jsonl") and first["address"] == "local" and first["workers"] is None
    assert first["config"].max_tokens == 64 and first["sae"] == "default"
    assert (second["address"], second["workers"], second["gpus_per_worker"]) == ("auto", 3, 0.5)
    assert "active features" in capsys.readouterr().out
    with pytest.raises(MonaError, match="exclude each other"):
        _cli(["embed", "pool.jsonl", "--out", str(tmp_path / "s"), "--ray", "--shard", "0/2"])
    (tmp_path / "pool.jsonl").touch()
    with pytest.raises(MonaError, match="put the input first"):
        _cli(["embed", "--ray", str(tmp_path / "pool.jsonl"), "--out", str(tmp_path / "s")])
    assert len(calls) == 2


# --------------------------------------------------------------------------------------------------------
# A cluster joined by address, and a driver killed mid-run
# --------------------------------------------------------------------------------------------------------

HEAD = """
import sys, ray
ray.init(num_cpus=2, include_dashboard=False)
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()  # the cluster lives until the test closes stdin
"""

DRIVER = """
import sys, time
from mona.data import load_samples
from mona.distributed import embed_distributed
from mona.embed import EmbedConfig
from mona.testing import TINY_HOOK, pool_records, tiny_model, tiny_sae

def slow_model():  # a forward pass takes a second: the run lasts long enough to be killed in the middle
    loaded = tiny_model()
    loaded.model.embed.register_forward_pre_hook(lambda module, args: time.sleep(1.0))
    return loaded

address, out, slow = sys.argv[1], sys.argv[2], sys.argv[3] == "slow"
embed_distributed(load_samples(pool_records()), model=slow_model if slow else tiny_model, sae=tiny_sae,
                  config=EmbedConfig(hook=TINY_HOOK, shard_size=4), out_dir=out, address=address, progress=False)
"""


@pytest.mark.slow
def test_driver_killed_mid_run_on_a_cluster_then_rerun(reference, tmp_path):
    """A separate Ray instance joined by its address; the driver is killed with SIGKILL once a shard is done."""
    import signal
    import time

    (tmp_path / "head.py").write_text(HEAD)
    (tmp_path / "driver.py").write_text(DRIVER)
    env = {**os.environ, "RAY_ADDRESS": "", "RAY_AUTH_MODE": "token"}  # explicit addresses need the mode said
    head = subprocess.Popen([sys.executable, str(tmp_path / "head.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        address = head.stdout.readline().strip()
        assert address, "the head did not start"
        out = tmp_path / "store"
        driver = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), address, str(out), "slow"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 240
        while not list((out / "shards").glob("*.done")) and time.time() < deadline and driver.poll() is None:
            time.sleep(0.2)
        assert driver.poll() is None, "the driver ended before it could be killed"
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        manifest = json.loads((out / "manifest.json").read_text())
        time.sleep(3)  # the dead driver's workers finish or drop their shard
        done = {p: p.stat().st_mtime_ns for p in (out / "shards").glob("*.safetensors")}
        assert not manifest["complete"] and 1 <= len(done) < 6
        rerun = subprocess.run([sys.executable, str(tmp_path / "driver.py"), address, str(out), "fast"], env=env,
                               capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert store_bytes(out) == store_bytes(reference)
        assert all(p.stat().st_mtime_ns == t for p, t in done.items()), "a finished shard was computed again"
    finally:
        head.stdin.close()
        head.wait(timeout=120)
