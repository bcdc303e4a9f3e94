"""``run_batch``: expand the inputs, decide what a re-run may skip, run the rest on the local pool or on Ray, and
keep ``DIR/batch.jsonl`` up to date as inputs finish."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from realtime.batch.inputs import (BatchInput, LEDGER_NAME, check_outputs_spare_inputs, expand_inputs,
                                   expected_frames, input_sha256, output_suffixes, photo_suffix)
from realtime.batch.ledger import FINISHED, Ledger, config_fingerprint
from realtime.batch.worker import Job, job_record
from realtime.config import Config
from realtime.errors import ConfigError, OutputError

log = logging.getLogger(__name__)


@dataclass
class Stop:
    """Ctrl-C, counted: 1 = start nothing new, let the inputs in flight finish; 2 = abandon them (each ends as
    "interrupted", its outputs finalised as Ctrl-C does for annotate); 3 = stop waiting for them. SIGTERM: 2
    (abandon), a second one 3."""

    level: int = 0
    signum: int | None = None  # the first signal that stopped the batch (SIGINT, SIGTERM, SIGHUP)

    @property
    def words(self) -> str:
        """How the batch was stopped, for records and messages: "Ctrl-C", "SIGTERM", "SIGHUP"."""
        if self.signum in (None, signal.SIGINT):
            return "Ctrl-C"
        return signal.Signals(self.signum).name


class Reporter:
    """What a run tells its user; the CLI's progress bar overrides these. All no-ops here."""

    def begin(self, inputs: int, to_run: int, frames: int) -> None: ...

    def started(self, job: Job, worker: Any) -> None: ...

    def frames(self, n: int) -> None: ...

    def finished(self, record: dict[str, Any]) -> None: ...

    def note(self, text: str) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class BatchResult:
    """One record per input, in input order (see :mod:`realtime.batch.ledger`), and how the run went."""

    records: tuple[dict[str, Any], ...]
    interrupted: bool
    runner: str
    workers: int
    threads: int
    wall_s: float
    worker_deaths: int = 0
    startup_s: tuple[float, ...] = ()
    signum: int | None = None  # the signal that interrupted it (None: Ctrl-C or not interrupted)

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(r["status"] in FINISHED for r in self.records)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.records:
            counts[record["status"]] = counts.get(record["status"], 0) + 1
        return counts


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def plan_workers(requested: int, jobs: int, cores: int | None = None) -> tuple[int, int]:
    """(workers, ONNX Runtime threads per worker) with workers x threads <= cores. ``requested`` 0: one worker per
    core. Never more workers than inputs to run; spare cores go to each worker's threads."""
    cores = cores or available_cores()
    if requested < 0:
        raise ConfigError(f"--workers {requested}: must be >= 1 (or 0 for one per core)")
    workers = requested or cores
    workers = max(1, min(workers, jobs)) if jobs else max(1, workers)
    if workers > cores:
        log.warning("%d workers on %d cores: they will compete for the cores", workers, cores)
    return workers, max(1, cores // workers)


@contextmanager
def _signals(stop: Stop, reporter: Reporter) -> Iterator[None]:
    """SIGINT/SIGTERM counted into ``stop`` (main thread only; elsewhere they keep their handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_int(_signum, _frame) -> None:
        stop.signum = stop.signum or signal.SIGINT
        stop.level += 1
        reporter.note(("Ctrl-C: finishing the inputs in flight, starting no more (Ctrl-C again abandons them)",
                       "Ctrl-C: abandoning the inputs in flight (their outputs are finalised)",
                       "Ctrl-C: no more waiting")[min(stop.level, 3) - 1])

    def on_term(signum, _frame) -> None:  # SIGTERM/SIGHUP: abandon (records kept); a second one stops waiting
        stop.signum = stop.signum or signum
        stop.level = max(stop.level + 1, 2)
        reporter.note(f"{signal.Signals(signum).name}: abandoning the inputs in flight (their outputs are "
                      "finalised and recorded)")

    old_int = signal.signal(signal.SIGINT, on_int)
    old_term = signal.signal(signal.SIGTERM, on_term)
    old_hup = signal.signal(signal.SIGHUP, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGHUP, old_hup)


def _job(out_dir: Path, item: BatchInput, fingerprint: str) -> Job:
    """``item``'s job: a photo's annotated copy is ``<name><its suffix>``, a video's (or image folder's)
    ``<name>.mp4``; the JSONL is ``<name>.jsonl``."""
    image = str(out_dir / f"{item.name}{photo_suffix(item.path)}") if photo_suffix(item.path) else None
    return Job(input=item.path, name=item.name, mp4=str(out_dir / f"{item.name}.mp4"),
               jsonl=str(out_dir / f"{item.name}.jsonl"), config=fingerprint, image=image)


def _skip_or_refuse(item: BatchInput, job: Job, previous: dict[str, Any] | None, overwrite: bool
                    ) -> dict[str, Any] | None:
    """The record to write instead of running ``job``: "skipped" (done before: same input bytes, same config,
    outputs still there), or "failed" (the input is missing, or outputs exist that no batch here wrote)."""
    if not item.exists:
        return job_record(job, "failed", error=f"input not found: {item.path}")
    if not (os.path.isfile(item.path) or os.path.isdir(item.path)):
        return job_record(job, "failed", error=f"input {item.path} is not a regular file (a device or pipe); "
                                               "give video files or image folders")
    for staged, _ in job.staged:  # an earlier run died mid-input: its unfinished copy (and its writer's own)
        for orphan in (staged, f"{staged}.partial", f"{staged}.partial.reserve"):
            if os.path.isfile(orphan) and not os.path.islink(orphan):
                os.unlink(orphan)
    outputs = [(key, Path(final)) for key, final in job.outputs]  # the annotated copy (MP4 or image), the JSONL
    for _, path in outputs:
        if path.exists() and not path.is_file():
            return job_record(job, "failed", error=f"{path} exists and is not a regular file")
    if overwrite:
        return None
    if previous is None:
        for _, path in outputs:
            if path.exists():
                return job_record(job, "failed", error=f"{path} exists and {LEDGER_NAME}.jsonl has no record of "
                                                       "writing it; pass --overwrite to replace it")
        return None
    if (previous.get("status") in FINISHED and previous.get("config") == job.config
            and all(path.is_file() and previous.get(key) == path.name and path.stat().st_size > 0
                    for key, path in outputs)):  # a zero-byte output is redone
        sha256 = input_sha256(item.path)
        if sha256 == previous.get("sha256"):
            record = job_record(job, "skipped", previous.get("frames", 0), previous.get("expected_frames"),
                                float(previous.get("seconds") or 0.0), sha256)  # the original run's timing
            return record
    return None


def publish(record: dict[str, Any], job: Job | None) -> dict[str, Any]:
    """The driver's step after a worker's result: each unfinished output (``.partial.``) renamed to its final
    name, and the record naming only outputs that exist."""
    if job is not None:
        for partial, final in job.staged:
            if os.path.isfile(partial):
                os.replace(partial, final)
        folder = Path(job.jsonl).parent
        for key in ("mp4", "image", "jsonl"):
            if record.get(key) and not (folder / record[key]).is_file():
                record[key] = None
    return record


class _Driver:
    """The events a runner reports: written to the ledger as they come, passed on to the reporter."""

    def __init__(self, ledger: Ledger, reporter: Reporter, jobs: Mapping[str, Job] | None = None,
                 stop: Stop | None = None):
        self.ledger = ledger
        self.reporter = reporter
        self.jobs = dict(jobs or {})
        self.stop = stop
        self.records: dict[str, dict[str, Any]] = {}

    def started(self, job: Job, worker: Any) -> None:
        self.reporter.started(job, worker)

    def frames(self, n: int) -> None:
        self.reporter.frames(n)

    def finished(self, record: dict[str, Any]) -> None:
        record = dict(record)
        if record.get("status") == "interrupted" and self.stop is not None and self.stop.words != "Ctrl-C":
            record["error"] = f"abandoned on {self.stop.words}"
        record = publish(record, self.jobs.get(record["name"]))
        self.records[record["name"]] = record
        self.ledger.append(record)
        self.reporter.finished(record)

    def note(self, text: str) -> None:
        self.reporter.note(text)


def run_batch(config: Config, inputs: Sequence[str], out_dir: Path | str, workers: int = 0,
              ray_address: str | None = None, overwrite: bool = False, reporter: Reporter | None = None,
              ray_num_cpus: int | None = None, stop: Stop | None = None,
              protected: Mapping[str, Sequence[str | None]] | None = None) -> BatchResult:
    """Annotate every input into ``out_dir`` (``<name>.mp4`` for a video, ``<name><suffix>`` for a photo,
    ``<name>.jsonl``; ``batch.jsonl``).

    ``workers``: local processes (0: one per core), or Ray actors with ``ray_address`` ("auto", an address, or
    "local" for a private instance with ``ray_num_cpus`` CPUs; 0 workers: the cluster's CPUs). ``overwrite``:
    redo every input and replace outputs that exist. ``protected``: what else the outputs must never touch (what it
    is -> paths, e.g. :func:`realtime.cli.args.kept_files`: the gallery, the config, the models); the inputs always
    are. Raises only for what stops the whole batch before any input runs (config, models, the out-dir, Ray
    unreachable); a bad input is a "failed" record.
    """
    reporter = reporter or Reporter()
    try:
        return _run(config, inputs, Path(out_dir), workers, ray_address, overwrite, reporter, ray_num_cpus,
                    stop or Stop(), dict(protected or {}))
    finally:
        reporter.close()


def _run(config: Config, inputs: Sequence[str], out_dir: Path, workers: int, ray_address: str | None,
         overwrite: bool, reporter: Reporter, ray_num_cpus: int | None, stop: Stop,
         protected: dict[str, Sequence[str | None]]) -> BatchResult:
    from realtime.io.paths import check_output_dir

    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out-dir {out_dir}: is not a folder")
    items = expand_inputs(inputs, out_dir)
    if not items:
        real_out = os.path.realpath(out_dir)
        inside = [t for t in inputs if os.path.isdir(str(t)) and
                  (real_out + os.sep).startswith(os.path.realpath(str(t)) + os.sep)]
        if inside:
            raise ConfigError(f"no inputs found: --out-dir {out_dir} is (or lies inside) the input folder "
                              f"{inside[0]}, and files in the out-dir are never taken as inputs; choose another "
                              "--out-dir")
        raise ConfigError(f"no inputs found in {' '.join(map(str, inputs)) or '(nothing given)'}")
    check_outputs_spare_inputs(items, out_dir)
    owned = [f"{LEDGER_NAME}.jsonl"] + [f"{i.name}{s}" for i in items for s in output_suffixes(i)]
    given = [t[1:] if str(t).startswith("@") else str(t) for t in inputs]
    check_output_dir("--out-dir", out_dir, owned,  # makes the folder
                     {"an input": [i.path for i in items if i.exists] + given, **protected})
    fingerprint = config_fingerprint(config)
    t0 = time.perf_counter()
    with Ledger(out_dir / f"{LEDGER_NAME}.jsonl") as ledger:
        previous = ledger.read()
        driver = _Driver(ledger, reporter, stop=stop)
        jobs: list[Job] = []
        early: list[dict[str, Any]] = []
        for item in items:
            job = _job(out_dir.resolve(), item, fingerprint)
            record = _skip_or_refuse(item, job, previous.get(item.name), overwrite)
            driver.jobs[job.name] = job
            if record is None:
                jobs.append(job)
            else:
                early.append(record)
        n_workers, threads = plan_workers(workers, len(jobs))
        reporter.begin(len(items), len(jobs), sum(expected_frames(j.input) for j in jobs))
        for record in early:
            driver.finished(record)
        unstarted: list[Job] = []
        pool = None
        with ExitStack() as stack:
            stack.enter_context(_signals(stop, reporter))
            if jobs and ray_address is not None:
                from realtime.batch.ray_runner import RayPool, ray_session

                ray = stack.enter_context(ray_session(ray_address, ray_num_cpus))
                given = config.runtime.intra_op_threads
                threads = given if isinstance(given, int) and given > 0 else 1
                pool = RayPool(ray, config, workers or None, threads)
                n_workers = pool.workers
            elif jobs:
                from realtime.batch.local import LocalPool

                pool = LocalPool(config, n_workers, threads)
            if pool is not None:
                unstarted = pool.run(jobs, driver, stop)
        for job in unstarted:
            driver.finished(job_record(job, "pending", error="not started: the batch was interrupted"))
        for job in jobs:  # a runner that lost track of an input (should not happen): say so, never drop it
            if job.name not in driver.records:
                driver.finished(job_record(job, "failed", error="no result came back from the worker"))
        records = tuple(driver.records[item.name] for item in items)
        ledger.compact(records)
    return BatchResult(records=records, interrupted=stop.level > 0, runner="ray" if ray_address else "local",
                       workers=n_workers, threads=threads, wall_s=time.perf_counter() - t0,
                       worker_deaths=pool.deaths if pool else 0,
                       startup_s=tuple(pool.startup_s) if pool else (), signum=stop.signum)

