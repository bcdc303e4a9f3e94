"""The local process pool: ``workers`` processes, each with its pipeline built once, fed one input at a time.

The driver hands the next input to whichever worker is free, so a long clip never holds up the rest. A worker that
dies (killed, out of memory, a crash in native code) costs only the input it had: that input is given once more to
a fresh worker, and is recorded as failed if it kills that one too. Ctrl-C: see :class:`realtime.batch.run.Stop`.
Workers are started with ``spawn`` (no fork of a process that has threads) and ignore SIGINT: the driver decides.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

from realtime.batch.worker import Job, job_record
from realtime.config import Config
from realtime.errors import RtvError

log = logging.getLogger(__name__)

TICK_S = 0.25  # how often a worker reports frames
MAX_ATTEMPTS = 2  # an input whose worker dies is tried on one more worker


def _worker_main(conn, abandon, config: Config, threads: int) -> None:
    """A worker process: build once, then serve jobs until told to stop (or the driver goes away)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGTERM/SIGHUP to the process group too: the driver decides (it abandons the input in flight, which the
    # worker then finalises and reports, so the ledger keeps it); a driver that dies takes the worker with it
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _die_with_parent()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    from realtime.batch.worker import Abandon, BatchWorker

    try:
        worker = BatchWorker(config, threads)
    except BaseException as exc:  # noqa: BLE001 - crosses to the driver as a value, re-raised there
        _send_error(conn, exc)
        return
    conn.send(("ready", os.getpid()))
    frames = 0
    last = time.monotonic()

    def on_frame() -> None:
        nonlocal frames, last
        frames += 1
        now = time.monotonic()
        if now - last >= TICK_S:
            conn.send(("frames", frames))
            frames, last = 0, now
        if abandon.is_set():
            raise Abandon

    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return
            if message[0] != "job":
                return
            last = time.monotonic()
            record = worker.process(message[1], on_frame)
            if frames:
                conn.send(("frames", frames))
                frames = 0
            conn.send(("result", record))
    finally:
        worker.close()


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when the driver dies (even by SIGKILL), so no worker goes on writing. What it
    wrote so far carries ``.partial`` names only; the next run removes and redoes it."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the worker notices the driver's pipe closing instead
        pass
    if os.getppid() == 1:  # the driver died before prctl took effect
        os._exit(0)


def _tracker_ignores_sighup() -> None:
    """Start multiprocessing's resource tracker with SIGHUP ignored (it ignores SIGINT and SIGTERM itself), so a
    SIGHUP to the process group leaves it to clean up after the driver instead of dying with a traceback."""
    from multiprocessing import resource_tracker

    if threading.current_thread() is not threading.main_thread():
        resource_tracker.ensure_running()
        return
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        resource_tracker.ensure_running()
    finally:
        signal.signal(signal.SIGHUP, old)


def _send_error(conn, exc: BaseException) -> None:
    try:
        conn.send(("fatal", exc))
    except Exception:  # noqa: BLE001 - an exception that does not pickle goes over as its text
        conn.send(("fatal", RtvError(f"{type(exc).__name__}: {exc}")))


@dataclass
class _Slot:
    process: Any
    conn: Any
    ready: bool = False
    job: Job | None = None
    pid: int | None = None
    eof: bool = False
    started: float = field(default_factory=time.monotonic)


class LocalPool:
    """``workers`` processes with ``threads`` ONNX Runtime threads each. ``run`` feeds ``jobs`` and reports through
    ``events`` (``started(job, worker_pid)``, ``frames(n)``, ``finished(record)``, ``note(text)``), watching ``stop``."""

    def __init__(self, config: Config, workers: int, threads: int, context: str = "spawn"):
        self.config = config
        self.workers = max(1, int(workers))
        self.threads = max(1, int(threads))
        self._ctx = mp.get_context(context)
        self.deaths = 0
        self._early_deaths = 0
        self.startup_s: list[float] = []

    def _start(self, abandon) -> _Slot:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=_worker_main, args=(child, abandon, self.config, self.threads),
                                    name="rtv-batch-worker", daemon=True)
        process.start()
        child.close()
        return _Slot(process, parent)

    def run(self, jobs: list[Job], events, stop) -> list[Job]:
        """Annotate ``jobs``; returns the jobs never started (Ctrl-C)."""
        pending = deque(jobs)
        attempts: dict[str, int] = {}
        _tracker_ignores_sighup()
        abandon = self._ctx.Event()
        slots = [self._start(abandon) for _ in range(min(self.workers, len(pending)))]
        try:
            while slots:
                busy = [s for s in slots if s.job is not None]
                if not busy and (not pending or stop.level >= 1):
                    break
                if stop.level >= 2 and not abandon.is_set():
                    abandon.set()
                if stop.level >= 3:  # a third Ctrl-C: stop waiting for workers that do not return
                    for slot in busy:
                        slot.process.kill()
                        events.finished(job_record(slot.job, "interrupted", error="terminated on Ctrl-C"))
                        slot.job = None
                    break
                ready = wait([s.conn for s in slots] + [s.process.sentinel for s in slots], timeout=0.2)
                for slot in list(slots):
                    if slot.conn in ready:
                        self._receive(slot, events)
                    if slot.eof or (not slot.process.is_alive() and not slot.conn.poll()):
                        slot.process.join(1.0)
                        slots.remove(slot)
                        self._died(slot, pending, attempts, events)
                        if pending and stop.level == 0 and len(slots) < self.workers:
                            slots.append(self._start(abandon))
                for slot in slots:
                    if slot.ready and slot.job is None and pending and stop.level == 0:
                        slot.job = pending.popleft()
                        attempts[slot.job.name] = attempts.get(slot.job.name, 0) + 1
                        slot.conn.send(("job", slot.job))
                        events.started(slot.job, slot.pid)
        finally:
            self._shutdown(slots)
        return list(pending)

    def _receive(self, slot: _Slot, events) -> None:
        while slot.conn.poll():
            try:
                kind, value = slot.conn.recv()
            except (EOFError, OSError):  # the worker is gone (its sentinel says so too)
                slot.eof = True
                return
            if kind == "ready":
                slot.ready, slot.pid = True, value
                self.startup_s.append(time.monotonic() - slot.started)
            elif kind == "frames":
                events.frames(value)
            elif kind == "result":
                slot.job = None
                events.finished(value)
            elif kind == "fatal":
                raise value

    def _died(self, slot: _Slot, pending: deque, attempts: dict[str, int], events) -> None:
        self.deaths += 1
        code = slot.process.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        job = slot.job
        if not slot.ready:
            self._early_deaths += 1
            if self._early_deaths > 2 * self.workers:
                raise RtvError(f"worker processes keep dying ({how}) while they load the models")
        if job is None:
            events.note(f"a worker process ended ({how}) between inputs")
            return
        if attempts.get(job.name, 0) < MAX_ATTEMPTS:
            events.note(f"the worker annotating {job.name} died ({how}); giving it to another worker")
            pending.appendleft(job)
            return
        events.finished(job_record(job, "failed", error=f"the worker process died ({how}) on each of "
                                                        f"{MAX_ATTEMPTS} attempts"))

    def _shutdown(self, slots: list[_Slot]) -> None:
        for slot in slots:
            try:
                slot.conn.send(("stop", None))
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 10.0
        for slot in slots:
            slot.process.join(max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                slot.process.kill()  # workers ignore SIGTERM (the driver decides)
                slot.process.join(2.0)
            slot.conn.close()
