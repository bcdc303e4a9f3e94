"""The same work as the local pool, as tasks on Ray actors: one long-lived actor per worker slot, holding the
pipeline's ONNX sessions. Ray places the actors, restarts one whose process dies (``max_restarts``) and re-runs the
input it had (``max_task_retries``); rtv only hands each free actor the next input. Inputs and ``--out-dir`` must be
paths every node sees (shared storage); the driver alone writes ``batch.jsonl``, from the records the actors return,
so it is the same as a local run's.

Needs the optional extra: ``pip install -e ".[ray]"`` on the driver and on every node.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from realtime.batch.worker import Job, job_record
from realtime.config import Config
from realtime.errors import ConfigError, RtvError

log = logging.getLogger(__name__)

MAX_RESTARTS = 3  # a worker slot whose process dies comes back (on any node) this many times
MAX_TASK_RETRIES = 2  # the input it had is re-run on the restarted actor
POLL_S = 0.5


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--ray needs Ray: pip install -e '.[ray]' (or pip install 'ray>=2.9')") from exc
    return ray


def _code_root() -> str:
    import realtime

    return str(Path(realtime.__file__).resolve().parent.parent)


def local_init_options() -> dict:
    """``ray.init`` options for a private instance on this machine: its workers import rtv from the same folder as
    this process, and run at normal priority like local workers (Ray's default ``worker_niceness`` is 15, which on a
    shared machine makes them yield to everything else)."""
    path = os.pathsep.join(p for p in (_code_root(), os.environ.get("PYTHONPATH", "")) if p)
    return {"runtime_env": {"env_vars": {"PYTHONPATH": path}}, "_system_config": {"worker_niceness": 0}}


@contextmanager
def ray_session(address: str, num_cpus: int | None = None) -> Iterator[object]:
    """Connected to Ray for the block. ``address``: "auto" (the cluster this machine is part of, e.g. after
    ``ray start --head``), ``HOST:PORT`` or ``ray://HOST:10001``, or "local" (a private single-machine instance,
    with ``num_cpus`` CPUs; see :func:`local_init_options`). An instance that is
    already initialised in this process is used as it is and left running."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs = {"include_dashboard": False, "log_to_driver": False}
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus, **local_init_options(), **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"--ray {address}: cannot connect to a Ray cluster ({exc}); start one with "
                          "'ray start --head' (see the README), or use --ray local") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _actor_class(ray):
    @ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES, concurrency_groups={"control": 1})
    class BatchActor:
        """One worker slot: :class:`realtime.batch.worker.BatchWorker` (pipeline built once) in a Ray actor."""

        def __init__(self, config: Config, threads: int):
            import threading

            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ[var] = str(threads)
            from realtime.batch.worker import BatchWorker

            self._worker = None
            self._error: RtvError | None = None
            try:
                self._worker = BatchWorker(config, threads)
            except RtvError as exc:  # a typed error goes back to the driver as a value (see ready)
                self._error = exc
            self._frames = 0
            self._abandon = threading.Event()

        def _on_frame(self) -> None:
            from realtime.batch.worker import Abandon

            self._frames += 1
            if self._abandon.is_set():
                raise Abandon

        def process(self, job: Job) -> dict:
            if self._worker is None:
                raise self._error
            return self._worker.process(job, self._on_frame)

        @ray.method(concurrency_group="control")
        def ready(self) -> tuple[int, RtvError | None]:
            return os.getpid(), self._error

        @ray.method(concurrency_group="control")
        def frames(self) -> int:
            return self._frames

        @ray.method(concurrency_group="control")
        def abandon(self) -> None:
            self._abandon.set()

    return BatchActor


def _creation_error(exc: BaseException) -> RtvError:
    text = str(exc).strip().splitlines()
    cause = next((line for line in reversed(text) if "Error:" in line), text[-1] if text else repr(exc))
    return RtvError(f"the Ray workers could not build the pipeline: {cause.strip()}")


class RayPool:
    """``workers`` actors (default: the cluster's CPUs // ``threads``) with ``threads`` ONNX Runtime threads each;
    ``run`` has the contract of :meth:`realtime.batch.local.LocalPool.run`."""

    def __init__(self, ray, config: Config, workers: int | None, threads: int):
        self.ray = ray
        self.config = config
        self.threads = max(1, int(threads))
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = max(1, int(workers) if workers else cpus // self.threads)
        self.deaths = 0
        self.startup_s: list[float] = []
        self.pids: list[int] = []

    def run(self, jobs: list[Job], events, stop) -> list[Job]:
        ray = self.ray
        pending = deque(jobs)
        if not pending:
            return []
        actor_class = _actor_class(ray)
        t0 = time.monotonic()
        actors = [actor_class.options(num_cpus=self.threads).remote(self.config, self.threads)
                  for _ in range(min(self.workers, len(pending)))]
        try:
            try:
                ready = ray.get([a.ready.remote() for a in actors])
            except ray.exceptions.RayError as exc:
                raise _creation_error(exc) from None
            for _pid, error in ready:
                if error is not None:
                    raise error
            self.pids = [pid for pid, _error in ready]
            self.startup_s = [time.monotonic() - t0] * len(actors)
            self._loop(actors, pending, events, stop)
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
        return list(pending)

    def _loop(self, actors, pending: deque, events, stop) -> None:
        ray = self.ray
        idle = deque(range(len(actors)))
        inflight: dict = {}  # ObjectRef -> (actor index, job)
        seen = [0] * len(actors)
        abandoned = False
        last_poll = time.monotonic()
        while pending or inflight:
            if not inflight and stop.level >= 1:
                break
            if stop.level >= 2 and not abandoned:
                abandoned = True
                for index, _job in inflight.values():
                    actors[index].abandon.remote()
            if stop.level >= 3:
                for index, job in inflight.values():
                    ray.kill(actors[index], no_restart=True)
                    events.finished(job_record(job, "interrupted", error="terminated on Ctrl-C"))
                inflight.clear()
                break
            while idle and pending and stop.level == 0:
                index = idle.popleft()
                job = pending.popleft()
                inflight[actors[index].process.remote(job)] = (index, job)
                events.started(job, self.pids[index])  # the pid it started with (Ray may restart it)
            done, _ = ray.wait(list(inflight), num_returns=1, timeout=0.2)
            for ref in done:
                index, job = inflight.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the slot died more often than Ray retries
                    self.deaths += 1
                    line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    record = job_record(job, "failed", error=f"the Ray worker died: {line}")
                self._frames(events, actors, [index], seen)
                events.finished(record)
                idle.append(index)
            if time.monotonic() - last_poll >= POLL_S and inflight:
                last_poll = time.monotonic()
                self._frames(events, actors, [i for i, _ in inflight.values()], seen)

    def _count(self, actor) -> int:
        try:
            return int(self.ray.get(actor.frames.remote(), timeout=5))
        except self.ray.exceptions.RayError:
            return 0

    def _frames(self, events, actors, indices, seen: list[int]) -> None:
        """Report frames done since the last look (an actor that restarted counts from 0 again)."""
        for index in indices:
            now = self._count(actors[index])
            delta = now - seen[index] if now >= seen[index] else now
            seen[index] = now
            if delta > 0:
                events.frames(delta)
