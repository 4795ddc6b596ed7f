"""Embedding on a Ray cluster: a store's shards split among workers that each hold one model replica.

The step is :func:`mona.embed.embed`'s, only the executor differs (datatrove's executors are the model): every
worker is a Ray actor that loads the model and SAE once (:func:`mona.embed.shard_step`) and then computes whole
shards, writing each into the same store folder with :func:`mona.embed.run_shard` (shard file, then its
completion marker) — the store format, the markers and the resume rules are those of a single-process run, and
the finished store is byte-identical to one.

The driver (the process that calls :func:`embed_distributed`):

1. checks that the Ray address answers (a one-line :class:`~mona.errors.MonaError` otherwise, nothing written);
2. starts the workers; the first one that has loaded its model describes the store (model and SAE identity,
   hooks, width), the driver creates the manifest from it, or checks the existing store against it, and every
   other worker must describe the same store (a node with other weights or another SAE is refused);
3. hands out the unfinished shards one at a time (a tqdm bar over shards); a worker first checks that it sees
   the driver's manifest, so a store folder that is not on storage shared by every node is refused;
4. finalizes the store once, when every shard is done.

Failures lose only unfinished shards: a worker that dies (killed, node lost) is restarted once by Ray and its
shard goes back to the queue; a shard that fails with an error stops the run after the shards in flight are
written. The same command again computes only what is missing (``mona embed --finalize`` checks and finishes a
store whose shards are all written). Ray is imported only here, and only when a run starts.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from mona.errors import MonaError

log = logging.getLogger(__name__)

LOCAL = "local"
"""``ray`` value that starts a Ray instance on this machine (what ``--ray`` alone means)."""
PROBE_SECONDS = 5.0
"""How long the driver waits for a Ray address to accept a connection before giving up."""
WORKER_RESTARTS = 1
"""Times Ray restarts a worker that died (its model is loaded again) before the driver gives up on it."""
SHARD_ATTEMPTS = 3
"""A shard whose worker died this many times stops the run (a sample that kills its worker, e.g. out of memory)."""


@dataclass
class DistributedConfig:
    """Where ``mona embed`` runs: one process (default), or Ray workers over the store's shards."""

    ray: str | None = field(default=None, metadata={"const": LOCAL})
    """Embed on Ray workers: the flag alone (or `local`) starts a Ray instance on this machine, `auto` joins the
    cluster that `ray start` runs here, or a cluster address (host:port, ray://host:port). The store folder must
    be on storage every node sees at the same path."""
    ray_workers: int | None = None
    """Model replicas (one Ray actor each); none = one per GPU of the cluster, or, without GPUs, as many as the
    CPUs allow at `ray_cpus_per_worker` each."""
    ray_gpus_per_worker: float | None = None
    """GPUs per replica; none = 1 when the cluster has GPUs, else 0 (CPU workers)."""
    ray_cpus_per_worker: int = 1
    """CPUs per replica, also its torch threads (every replica holds its own copy of the model in memory)."""

    def __post_init__(self) -> None:
        if self.ray is not None and not str(self.ray).strip():
            raise MonaError("ray address must not be empty (use `local`, `auto` or host:port)")
        if self.ray_workers is not None and self.ray_workers < 1:
            raise MonaError(f"ray_workers must be >= 1; got {self.ray_workers}")
        if self.ray_gpus_per_worker is not None and self.ray_gpus_per_worker < 0:
            raise MonaError(f"ray_gpus_per_worker must be >= 0; got {self.ray_gpus_per_worker}")
        if self.ray_cpus_per_worker < 1:
            raise MonaError(f"ray_cpus_per_worker must be >= 1; got {self.ray_cpus_per_worker}")


# --------------------------------------------------------------------------------------------------------
# The worker: one model replica
# --------------------------------------------------------------------------------------------------------


def _build(spec: Any, device: str) -> Any:
    """A model or SAE from what the driver shipped: a name/path (the stage loads it, on ``device``), a function
    that builds it, or an object. A built ``LoadedModel`` is moved to ``device`` (the stage moves SAEs)."""
    built = spec() if _is_factory(spec) else spec
    if device != "cpu" and hasattr(built, "identity") and hasattr(built, "model"):
        built.model.to(device)
    return built


class ShardWorker:
    """A Ray actor body: loads the model and SAE once, then computes whole shards into the store folder."""

    def __init__(self, model: Any, sae: Any, config: dict[str, Any], threads: int, runtime: Any = None) -> None:
        import ray
        import torch

        torch.set_num_threads(threads)
        self.node = ray.util.get_node_ip_address()
        self.device = "cuda" if ray.get_gpu_ids() else "cpu"
        self.error: str | None = None
        self.seen: set[str] = set()
        try:
            from mona.embed import EmbedConfig, shard_step

            self.step = shard_step(_build(model, self.device), _build(sae, self.device),
                                   EmbedConfig.from_dict(config), runtime=runtime, device=self.device)
        except Exception as exc:  # reported by describe(), as one line, instead of a dead actor
            self.error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"

    def describe(self) -> dict[str, Any]:
        """What this replica would write into a manifest (or ``error``), and where it runs."""
        where = {"node": self.node, "device": self.device, "pid": os.getpid()}
        if self.error is not None:
            return {**where, "error": self.error}
        step = {f.name: getattr(self.step, f.name) for f in fields(self.step) if f.name != "compute"}
        return {**where, "step": {**step, "config": self.step.config.to_dict(), "hooks": list(self.step.hooks)}}

    def run(self, out_dir: str, k: int, part: list[Any], manifest_sha: str) -> int:
        """Compute shard ``k`` from its samples and write it into the store; returns its row count."""
        from mona.embed import run_shard
        from mona.io import sha256_file
        from mona.store import MANIFEST

        root = Path(out_dir)
        if manifest_sha not in self.seen:
            path = root / MANIFEST
            if not path.exists() or sha256_file(path) != manifest_sha:
                raise MonaError(f"node {self.node} does not see the store's manifest at {path}: put the store on "
                                "storage every node mounts at the same path (NFS, Lustre, ...)")
            self.seen.add(manifest_sha)
        return run_shard(root, k, part, self.step.config, self.step.compute)


# --------------------------------------------------------------------------------------------------------
# Connecting to Ray
# --------------------------------------------------------------------------------------------------------


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MonaError("distributed embedding needs Ray: pip install 'mona[ray]'") from None
    return ray


def _host_port(address: str) -> tuple[str, int]:
    text = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise MonaError(f"Ray address {address!r} is not host:port, ray://host:port, `auto` or `local`")
    return host.strip("[]") or "127.0.0.1", int(port)


def _auto_address() -> str | None:
    """The address `auto` resolves to (RAY_ADDRESS, or the cluster `ray start` left here); None if Ray's lookup
    is not available in this version (ray.init then resolves it itself)."""
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:
        return None
    try:
        return canonicalize_bootstrap_address("auto")
    except ConnectionError:
        raise MonaError("--ray auto found no running Ray cluster on this machine; start one with "
                        "`ray start --head`, or give its address") from None


def check_address(address: str) -> None:
    """One-line :class:`MonaError` unless the Ray cluster at ``address`` accepts a connection (``local``: no
    check). Ray itself would retry an address that does not answer for minutes."""
    if address == LOCAL:
        return
    target = _auto_address() if address == "auto" else address
    if target is None:
        return
    host, port = _host_port(target)
    try:
        socket.create_connection((host, port), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise MonaError(f"the Ray cluster at {address} ({host}:{port}) does not answer: {reason}") from None


class _Connection:
    """``ray.init`` for the run and ``ray.shutdown`` after it, unless Ray was already initialised here."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.owned = False

    def __enter__(self) -> Any:
        ray = _import_ray()
        if ray.is_initialized():
            log.info("using the Ray instance this process is already connected to")
            return ray
        check_address(self.address)
        try:
            if self.address == LOCAL:
                ray.init(include_dashboard=False)
            else:
                ray.init(address=self.address)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            hint = ""
            if self.address not in (LOCAL, "auto") and "RAY_AUTH_MODE" not in os.environ:
                hint = " (a cluster with token authentication needs RAY_AUTH_MODE=token for an explicit address)"
            raise MonaError(f"cannot connect to Ray at {self.address}: {' '.join(str(exc).split())[:300]}{hint}") \
                from None
        self.owned = True
        return ray

    def __exit__(self, *exc: Any) -> None:
        if self.owned:
            import ray

            ray.shutdown()


# --------------------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------------------


def plan_workers(nodes: list[dict[str, float]], cfg: DistributedConfig, n_todo: int) -> tuple[int, float, int]:
    """(workers, GPUs each, CPUs each) for the cluster whose nodes have ``nodes`` resources (Ray's totals)."""
    gpus = cfg.ray_gpus_per_worker
    if gpus is None:
        gpus = 1.0 if any(r.get("GPU", 0) >= 1 for r in nodes) else 0.0
    cpus = cfg.ray_cpus_per_worker

    def fits(r: dict[str, float]) -> int:
        by_cpu = int(r.get("CPU", 0) // cpus)
        return min(by_cpu, int(r.get("GPU", 0) // gpus)) if gpus else by_cpu

    fit = sum(fits(r) for r in nodes)
    if fit == 0:
        need = f"{cpus} CPU(s)" + (f" and {gpus:g} GPU(s)" if gpus else "")
        raise MonaError(f"no node of the Ray cluster has {need} for a worker (set --ray-cpus-per-worker, "
                        "--ray-gpus-per-worker)")
    workers = cfg.ray_workers or fit
    if workers > fit:
        log.warning("%d workers asked for, %d fit in the Ray cluster now; the others start when it has room",
                    workers, fit)
    return max(1, min(workers, n_todo)), float(gpus), cpus


class _Run:
    """The driver's event loop: workers describe the store, then get one unfinished shard at a time."""

    def __init__(self, ray: Any, samples: list[Any], out_dir: Path, progress: bool) -> None:
        self.ray, self.samples, self.out, self.progress = ray, samples, out_dir, progress
        self.inflight: dict[Any, tuple[Any, int | None]] = {}
        self.queue: deque[int] = deque()
        self.idle: list[Any] = []
        self.store: dict[str, Any] | None = None
        self.digest = ""
        self.shard_size = 0
        self.deaths: dict[Any, int] = {}
        self.attempts: dict[int, int] = {}
        self.failure: str | None = None
        self.bar: Any = None

    def execute(self, actors: list[Any]) -> None:
        errors = self.ray.exceptions
        for actor in actors:
            self.inflight[actor.describe.remote()] = (actor, None)
        try:
            while self.inflight:
                [ref], _ = self.ray.wait(list(self.inflight), num_returns=1)
                actor, k = self.inflight.pop(ref)
                try:
                    value = self.ray.get(ref)
                except errors.RayActorError as exc:
                    self._died(actor, k, exc)
                    continue
                except errors.RayTaskError as exc:
                    cause = getattr(exc, "cause", None) or exc
                    what = f"shard {k}" if k is not None else "a Ray worker"
                    self._fail(f"{what} failed: {' '.join(str(cause).split())[:400]}")
                    continue
                if k is None and not self._described(actor, value):
                    continue
                if k is not None:
                    self.bar.update(1)
                self._next(actor)
        finally:
            if self.bar is not None:
                self.bar.close()

    def _described(self, actor: Any, value: dict[str, Any]) -> bool:
        if "error" in value:
            message = f"a Ray worker on {value['node']} cannot load the model or SAE: {value['error']}"
            if self.store is None:  # nothing written yet: stop at once
                raise MonaError(message)
            self._fail(message)
            return False
        # runtime (device, batch size) is informational and may differ between nodes; the rest must not
        step = {k: v for k, v in value["step"].items() if k != "runtime"}
        if self.store is None:
            self._create(value["step"])
            self.store = step
        else:
            from mona.store import first_difference

            diff = first_difference(self.store, step)
            if diff:
                self._fail(f"the Ray worker on {value['node']} loads another model or SAE than the first worker "
                           f"({diff.replace('store has', 'first has').replace('requested', 'this one has')})")
                return False
        log.info("Ray worker ready on %s (%s, pid %s)", value["node"], value["device"], value["pid"])
        return True

    def _create(self, described: dict[str, Any]) -> None:
        """The manifest, created or checked from the first worker's step, before any shard runs."""
        from mona.embed import EmbedConfig, ShardStep, pending_shards
        from mona.io import sha256_file
        from mona.store import MANIFEST

        config = EmbedConfig.from_dict(described["config"])
        step = ShardStep(**{**described, "config": config, "hooks": tuple(described["hooks"]), "compute": None})
        self.queue.extend(pending_shards(self.out, step.request(self.samples), self.samples, config))
        self.shard_size = config.shard_size
        self.digest = sha256_file(self.out / MANIFEST)
        self.bar = tqdm(total=len(self.queue), desc=f"embed {config.mode} on Ray", unit="shard",
                        disable=not self.progress or not self.queue)

    def _next(self, actor: Any) -> None:
        if self.failure is not None or not self.queue:
            self.idle.append(actor)
            return
        k = self.queue.popleft()
        part = self.samples[k * self.shard_size:(k + 1) * self.shard_size]
        self.inflight[actor.run.remote(str(self.out), k, part, self.digest)] = (actor, k)

    def _died(self, actor: Any, k: int | None, exc: Exception) -> None:
        self.deaths[actor] = self.deaths.get(actor, 0) + 1
        log.warning("a Ray worker died%s: %s", f" computing shard {k}" if k is not None else "",
                    " ".join(str(exc).split())[:200])
        if k is not None:
            self.attempts[k] = self.attempts.get(k, 0) + 1
            if self.attempts[k] >= SHARD_ATTEMPTS:
                self._fail(f"shard {k} killed its worker {self.attempts[k]} times (out of memory?)")
            self.queue.appendleft(k)
            while self.idle and self.failure is None:
                self._next(self.idle.pop())
        if self.deaths[actor] <= WORKER_RESTARTS:  # Ray restarts it: it loads its model again
            self.inflight[actor.describe.remote()] = (actor, None)

    def _fail(self, message: str) -> None:
        log.error("%s", message)
        if self.failure is None:
            self.failure = message


def _reuse(out_dir: Path, model: Any, sae: Any, samples: list[Any], config: Any, runtime: Any) -> Any:
    """A complete store of the same inputs and settings, checked without starting Ray (model given by name)."""
    import json

    from mona.embed import _resolve_hook, _reuse_without_model
    from mona.runtime import Runtime
    from mona.saes import resolve_sae
    from mona.store import MANIFEST

    path = out_dir / MANIFEST
    if not isinstance(model, (str, Path)) or not path.exists():
        return None
    if not json.loads(path.read_text(encoding="utf-8")).get("complete"):
        return None
    if config.mode == "sae" and not isinstance(sae, (str, Path)) and _is_factory(sae):
        return None
    handle = resolve_sae(sae, hook=config.hook) if config.mode == "sae" else None
    return _reuse_without_model(out_dir, model, samples, _resolve_hook(config, handle), handle, runtime or Runtime())


def _is_factory(spec: Any) -> bool:
    import torch

    return callable(spec) and not isinstance(spec, (str, Path, torch.nn.Module))


def embed_distributed(
    samples_or_path: Any,
    *,
    model: str | Path | Callable[[], Any] = "gemma-3-270m",
    sae: Any = "default",
    config: Any = None,
    out_dir: str | Path,
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    cpus_per_worker: int = 1,
    runtime: Any = None,
    format: str = "auto",
    progress: bool = True,
) -> Any:
    """Embed samples into the store at ``out_dir`` on Ray workers and return the finalized
    :class:`~mona.store.Store` (byte-identical to :func:`mona.embed.embed`'s).

    ``model``: a name or folder that every worker can load (:func:`mona.models.load_model`), or a function
    without arguments that builds a ``LoadedModel`` (shipped to the workers with Ray's serialisation).
    ``sae``: a spec every worker can load, a function that builds the SAE, or an SAE object (shipped as is).
    ``address``: ``None``/``"local"`` starts a Ray instance here, ``"auto"`` joins the running cluster, or
    ``host:port``/``ray://host:port``; a process already connected to Ray (``ray.init``) uses that connection.
    ``workers``, ``gpus_per_worker``, ``cpus_per_worker``: see :class:`DistributedConfig`. ``runtime``
    (:class:`mona.runtime.Runtime`): the model and SAE dtypes and attention every worker uses; its device only
    says whether workers take GPUs by default (each runs on the GPU Ray gives it, else on its CPUs).
    Raises :class:`MonaError` (one line) when the address does not answer, a worker cannot load its model, or
    shards fail; finished shards stay in the store and the same call again computes only the rest.
    """
    from mona.embed import EmbedConfig, _load_inputs
    from mona.models import LoadedModel
    from mona.store import finalize, marker_path

    if gpus_per_worker is None and runtime is not None and runtime.device != "auto":
        gpus_per_worker = 0.0 if runtime.device == "cpu" else 1.0
    cfg = DistributedConfig(ray=address or LOCAL, ray_workers=workers, ray_gpus_per_worker=gpus_per_worker,
                            ray_cpus_per_worker=cpus_per_worker)
    config = config or EmbedConfig()
    out = Path(out_dir)
    if isinstance(model, LoadedModel):
        raise MonaError("on Ray every worker loads its own model replica: pass the model's name or folder, or a "
                        "function that builds it")
    if config.mode == "sentence":
        raise MonaError("mode 'sentence' (a 22M-parameter embedder) runs in one process; drop --ray")
    if config.mode == "sae" and sae is None:
        raise MonaError("mode 'sae' needs an SAE (pass sae=..., or use mode 'dense')")
    samples = _load_inputs(samples_or_path, format)
    reused = _reuse(out, model, sae, samples, config, runtime)
    if reused is not None:
        return reused
    n_shards = -(-len(samples) // config.shard_size)
    missing = sum(not marker_path(out, k).exists() for k in range(n_shards))
    with _Connection(cfg.ray) as ray:
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        n_workers, gpus, cpus = plan_workers(nodes, cfg, missing)
        log.info("embedding %d samples (%d shards to compute) on %d Ray worker(s), %g GPU and %d CPU each",
                 len(samples), missing, n_workers, gpus, cpus)
        remote = ray.remote(ShardWorker).options(num_cpus=cpus, num_gpus=gpus, max_restarts=WORKER_RESTARTS,
                                                 max_task_retries=0)
        actors = [remote.remote(model, sae, config.to_dict(), cpus, runtime) for _ in range(n_workers)]
        run = _Run(ray, samples, out, progress)
        try:
            run.execute(actors)
        finally:
            for actor in actors:
                ray.kill(actor)
    done = sum(marker_path(out, k).exists() for k in range(n_shards))
    if run.failure is not None or done < n_shards:
        reason = run.failure or "every Ray worker died"
        raise MonaError(f"{reason}; {done} of {n_shards} shards of {out} are done: run the same command again to "
                        "compute the rest")
    return finalize(out)
