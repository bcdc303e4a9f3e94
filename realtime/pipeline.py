"""The pipeline (stages in order, each timed) and the one run loop that feeds it from a source into sinks."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from dataclasses import dataclass
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np

from realtime.controls import Controls, KeyController
from realtime.errors import SinkError, SourceError
from realtime.io.interrupts import finalising, stop_reason
from realtime.io.sinks import KeySink, Sink
from realtime.types import EndReason, FramePacket, FrameSource, RunResult, Stage

log = logging.getLogger(__name__)


class Pipeline:
    """Runs stages on a packet and records each stage's wall time in ``packet.timings_ms``.

    ``branches``: groups of stage names (each group in order) that read only the original frame and write
    different packet fields, e.g. ``(("detect",), ("face_detect", "recognize"))``. With ``workers`` > 1 the
    groups run at the same time (the first on the calling thread, the others on a pool of ``workers - 1``
    threads; ONNX Runtime releases the GIL). Stages before the first grouped stage run before the groups, the other
    ungrouped stages after them, in order, on the merged packet.
    The result is the same packet the sequential order gives: each group starts from the same input and its
    changed fields are merged in group order (two groups writing one field is an error). An exception in a worker
    is re-raised on the calling thread.

    A stage with ``fail_soft = True`` (an effect such as style) that raises is removed with a logged message and
    the run goes on; any other stage's error propagates. A context manager; ``close()`` closes every stage and
    the pool once.
    """

    def __init__(self, stages: Sequence[Stage], branches: Sequence[Sequence[str]] = (), workers: int = 1,
                 in_flight: int = 1, live_in_flight: int | None = None):
        self.stages: tuple[Stage, ...] = tuple(stages)
        names = [s.name for s in self.stages]
        grouped = [n for group in branches for n in group]
        if len(set(grouped)) != len(grouped) or not set(grouped) <= set(names):
            raise ValueError(f"pipeline branches {branches!r} must name distinct stages of {names}")
        self.branches: tuple[tuple[str, ...], ...] = tuple(tuple(g) for g in branches if g)
        self.workers = max(1, int(workers))
        self.in_flight = max(1, int(in_flight))
        # frames in flight when the source is live (newest-frame policy): overlap adds queueing to latency there
        self.live_in_flight = self.in_flight if live_in_flight is None else max(1, int(live_in_flight))
        self.disabled: list[str] = []
        self.thread_plan = None
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)

    @property
    def concurrent(self) -> bool:
        return self.workers > 1 and len(self.branches) > 1

    @property
    def pipelined(self) -> bool:
        """Frames overlap: the pure stages of later frames start while earlier frames finish (see :meth:`start`)."""
        return self.in_flight > 1 and self.workers > 1 and any(_is_pure(s) for s in self.stages)

    def extended(self, after: Sequence[Stage] = (), before: Sequence[Stage] = ()) -> "Pipeline":
        """This pipeline's stages with ``before`` run first and ``after`` run last (same branches, workers, frames
        in flight and thread plan), e.g. door mode's gallery watch before and door policy after the face stages.
        The new pipeline owns every stage: closing it closes them all (closing this one too is harmless: a stage's
        ``close()`` is safe twice)."""
        composed = Pipeline([*before, *self.stages, *after], self.branches, self.workers, self.in_flight,
                            self.live_in_flight)
        composed.thread_plan = self.thread_plan
        return composed

    def start(self, packet: FramePacket, overlap: bool = True) -> "Pending":
        """Begin ``packet``. When :attr:`pipelined`, its *pure* stages (``pure`` true: they read only the original
        frame and keep no state between frames, e.g. the detectors' inference) are submitted to the worker pool
        now, each as its own task, and :meth:`complete` later merges them and runs every other stage in order on
        the calling thread. Frames are completed in the order they were started, so stateful stages (trackers,
        recognition, door policy) see frames in order and files give the sequential result. ``overlap=False``
        (one frame in flight, e.g. a live source): nothing starts early and :meth:`complete` runs the branches as
        :meth:`__call__` does, so face detection + recognition still run beside object detection."""
        if not (overlap and self.pipelined):
            return Pending(packet, ())
        pool = self._ensure_pool(self.workers)
        tasks = tuple((s, pool.submit(_timed_call, s, packet)) for s in self.stages if _is_pure(s))
        return Pending(packet, tasks)

    def complete(self, pending: "Pending") -> FramePacket:
        """Finish a packet begun by :meth:`start` (waits for its pure stages; re-raises their errors here)."""
        if not pending.tasks:
            return self(pending.packet)
        timings: dict[str, float] = {}
        results, errors = [], []
        for stage, future in pending.tasks:
            try:
                result, ms = future.result()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, on this thread
                errors.append(exc)
                continue
            results.append(result)
            timings[stage.name] = ms
        if errors:
            raise errors[0]
        packet = merge_packets(pending.packet, results)
        done = {id(stage) for stage, _ in pending.tasks}
        packet = self._run_stages([s for s in self.stages if id(s) not in done], packet, timings)
        return dataclasses.replace(packet, timings_ms=timings)

    def _ensure_pool(self, size: int) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="rtv-stage")
        return self._pool

    def __call__(self, packet: FramePacket) -> FramePacket:
        timings: dict[str, float] = {}
        if self.concurrent:
            grouped = {n for group in self.branches for n in group}
            first = next((i for i, s in enumerate(self.stages) if s.name in grouped), len(self.stages))
            packet = self._run_stages(self.stages[:first], packet, timings)  # e.g. door mode's gallery watch
            packet = self._run_branches(packet, timings)
            rest = [s for s in self.stages[first:] if s.name not in grouped]
        else:
            rest = list(self.stages)
        packet = self._run_stages(rest, packet, timings)
        return dataclasses.replace(packet, timings_ms=timings)

    def _run_stages(self, stages: Sequence[Stage], packet: FramePacket, timings: dict[str, float]) -> FramePacket:
        for stage in stages:
            t0 = time.perf_counter()
            try:
                packet = stage(packet)
            except Exception as exc:  # noqa: BLE001 - only fail-soft effects are swallowed, see below
                if not stage.fail_soft:
                    raise
                self.disable(stage, f"{type(exc).__name__}: {exc}")
                continue
            timings[stage.name] = (time.perf_counter() - t0) * 1000.0
        return packet

    def _run_branches(self, packet: FramePacket, timings: dict[str, float]) -> FramePacket:
        by_name = {s.name: s for s in self.stages}
        groups = [[by_name[n] for n in group if n in by_name] for group in self.branches]
        groups = [g for g in groups if g]
        self._ensure_pool(self.workers)
        group_timings = [dict() for _ in groups]
        futures = [self._pool.submit(self._run_stages, g, packet, t)
                   for g, t in zip(groups[1:], group_timings[1:])]
        first_error: BaseException | None = None
        try:
            results = [self._run_stages(groups[0], packet, group_timings[0])]
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the workers are done with the frame
            first_error, results = exc, []
        errors = []
        for future in futures:  # wait for every worker: no stage may still run on this frame afterwards
            try:
                results.append(future.result())
            except BaseException as exc:  # noqa: BLE001 - re-raised below, on this thread
                errors.append(exc)
        if first_error is not None:
            raise first_error
        if errors:
            raise errors[0]
        for t in group_timings:
            timings.update(t)
        return merge_packets(packet, results)

    def disable(self, stage: Stage, reason: str) -> None:
        """Take ``stage`` out between frames (a live toggle or a failed effect)."""
        log.error("stage %r failed and is turned off: %s", stage.name, reason)
        self.disabled.append(f"{stage.name}: {reason}")
        self.stages = tuple(s for s in self.stages if s is not stage)
        stage.close()

    def reset(self) -> None:
        """Every stage forgets its per-video state (tracks, votes, stabilisers), as for a new input."""
        for stage in self.stages:
            stage.reset()

    def find(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def close_pool(self) -> None:
        """Stop the worker threads (they restart on the next frame); the stages stay open."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.close_pool()
        for stage in self.stages:
            stage.close()

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True)
class Pending:
    """A packet begun by :meth:`Pipeline.start`: the pure stages' futures (empty when not pipelined)."""

    packet: FramePacket
    tasks: tuple = ()

    def done(self) -> bool:
        return all(future.done() for _, future in self.tasks)

    def wait(self) -> None:
        """Wait for every task, ignoring its outcome (a run that stops early leaves nothing running)."""
        for _, future in self.tasks:
            try:
                future.result()
            except BaseException:  # noqa: BLE001 - the run is ending; its own error is already reported
                pass


def _is_pure(stage: Stage) -> bool:
    return bool(stage.pure)


def _timed_call(stage: Stage, packet: FramePacket) -> tuple[FramePacket, float]:
    t0 = time.perf_counter()
    out = stage(packet)
    return out, (time.perf_counter() - t0) * 1000.0


def merge_packets(base: FramePacket, results: Sequence[FramePacket]) -> FramePacket:
    """``base`` with every field that some packet of ``results`` changed (by identity) taken from it, in order.

    Each result came from ``base`` through one branch of stages; two results changing the same field is a
    :class:`ValueError` (the branches were not independent)."""
    changes: dict[str, object] = {}
    before = vars(base)
    for result in results:
        after = vars(result)
        for fld in dataclasses.fields(base):
            if fld.name == "timings_ms":
                continue
            value = after[fld.name]
            if value is not before[fld.name]:
                if fld.name in changes:
                    raise ValueError(f"two concurrent pipeline branches both wrote packet.{fld.name}")
                changes[fld.name] = value
    return dataclasses.replace(base, **changes) if changes else base


Render = Callable[[FramePacket, bool], np.ndarray]


def run_loop(source: FrameSource, pipeline: Pipeline, sinks: Sequence[Sink], render: Render | None = None,
             controller: KeyController | None = None, max_frames: int | None = None,
             on_frame: Callable[[FramePacket], None] | None = None) -> RunResult:
    """The one run loop: every packet from ``source`` through ``pipeline``, rendered once (``render(packet,
    show_overlays)``, only when a sink ``needs_display``), then to every sink in order; keys from window sinks
    (:class:`realtime.io.sinks.KeySink`) go to ``controller``. Then each sink's ``finish(result)``.
    ``on_frame(packet)``: called as each frame is completed, before the sinks (a batch counts frames there, and may
    raise ``KeyboardInterrupt`` to abandon the input).

    With a :attr:`Pipeline.pipelined` pipeline up to ``pipeline.in_flight`` frames are in flight
    (``pipeline.live_in_flight`` for a live source, newest-frame policy): a frame is
    started as soon as the source has it and completed (then rendered and written) in capture order; the loop reads
    ahead only frames already waiting, so a finished frame never waits for the next capture.

    A source error ends the run with reason ERROR (outputs stay valid up to the damage, frames already read are
    still completed); an output that cannot be written (disk full) with OUTPUT_ERROR; Ctrl-C with INTERRUPTED,
    SIGTERM/SIGHUP with TERMINATED. A stop signal never lands inside a frame's hand-over: it waits until every
    sink has written the frame and it is counted, so every output and ``RunResult.frames`` hold the same frames.
    Sinks finish in order and a stop signal waits until they have (a sink whose
    ``finish`` fails turns the result into OUTPUT_ERROR for the sinks after it, so the JSONL's end line tells).
    The caller closes the sinks and the source (``finally``/``ExitStack``).
    """
    controller = controller or KeyController(Controls())
    controls = controller.controls
    windows = [s for s in sinks if isinstance(s, KeySink)]
    wants_display = render is not None and any(s.needs_display for s in sinks)
    frames = 0
    reason, error = EndReason.END, None
    live = source.policy == "latest"
    depth = (pipeline.live_in_flight if live else pipeline.in_flight) if pipeline.pipelined else 1
    pending: deque = deque()
    ended = False
    try:
        while True:
            if controls.quit:
                reason = EndReason.QUIT
                break
            if max_frames is not None and frames >= max_frames:
                reason = EndReason.LIMIT
                break
            room = len(pending) < depth and (max_frames is None or frames + len(pending) < max_frames)
            # read ahead only what is already there: a finished frame never waits for the next capture
            if not ended and room and (not pending or source.frame_ready()):
                try:
                    packet = source.next_packet()
                except SourceError as exc:
                    reason, error, ended = EndReason.ERROR, str(exc), True
                    log.debug("%s", exc)
                    packet = None
                if packet is None:
                    ended = True
                else:
                    pending.append(pipeline.start(packet, overlap=depth > 1))
                continue
            if not pending:
                break
            packet = pipeline.complete(pending.popleft())
            if on_frame is not None:
                on_frame(packet)
            display = render(packet, controls.overlays) if wants_display else None
            # One frame's hand-over is atomic for a stop signal: it is held until every sink has the frame and
            # the frame is counted, so the MP4, the JSONL's rows and the end line's ``frames`` always agree.
            with finalising():
                for sink in sinks:
                    sink.write(packet, display)
                frames += 1
            for window in windows:
                _handle_keys(window, packet, controller, render)
    except SourceError as exc:
        reason, error = EndReason.ERROR, str(exc)
        log.debug("%s", exc)
    except SinkError as exc:
        reason, error = EndReason.OUTPUT_ERROR, str(exc)
        log.debug("%s", exc)
    except KeyboardInterrupt as exc:
        reason = EndReason(stop_reason(exc))
    finally:
        for item in pending:  # a run that stops early (quit, limit, error) leaves no stage running
            item.wait()
    with finalising():
        info = source.info
        expected = info.expected_frames
        # Damage is judged on what the reader read: a paced replay drops frames on purpose, and drops are not damage.
        delivered = source.stats.read
        if reason == EndReason.END and expected and max(delivered, frames) < expected:
            reason, error = EndReason.ERROR, (f"{info.description}: ended at frame {max(delivered, frames)} "
                                              f"of the {expected} its header announces (truncated or damaged file)")
            log.debug("%s", error)
        result = RunResult(frames=frames, reason=reason, error=error, expected_frames=expected)
        for sink in sinks:
            try:
                sink.finish(result)
            except SinkError as exc:
                log.debug("%s", exc)
                result = RunResult(frames=frames, reason=EndReason.OUTPUT_ERROR, error=str(exc),
                                   expected_frames=expected)
    return result


def _handle_keys(window: KeySink, packet: FramePacket, controller: KeyController, render: Render | None) -> None:
    """Keys from ``window`` after ``packet`` was shown. A key that changes the view redraws this frame at once (the
    notice, the pause banner); while paused, wait for keys, redrawing when the notice changes."""
    controls = controller.controls
    key = window.take_key()
    shown = controller.notice()
    while True:
        changed = controller.handle(key)
        if controls.quit:
            return
        if render is not None and (changed or controller.notice() != shown):
            shown = controller.notice()
            window.write(packet, render(packet, controls.overlays))
            key = window.take_key()
            continue
        if not controls.paused:
            return
        key = window.wait_key(50)
