"""The pipeline (stages in order, each timed) and the one run loop that feeds it from a source into sinks."""

from __future__ import annotations

import dataclasses
import logging
import time

from typing import Callable, Sequence

import numpy as np

from realtime.controls import Controls, KeyController
from realtime.errors import SinkError, SourceError
from realtime.io.interrupts import finalising, stop_reason
from realtime.io.sinks import Sink
from realtime.types import EndReason, FramePacket, RunResult, Stage

log = logging.getLogger(__name__)


class Pipeline:
    """Runs stages in order on a packet and records each stage's wall time in ``packet.timings_ms``.

    A stage with ``fail_soft = True`` (an effect such as style) that raises is removed with a logged message and
    the run goes on; any other stage's error propagates. A context manager; ``close()`` closes every stage once.
    """

    def __init__(self, stages: Sequence[Stage]):
        self.stages: tuple[Stage, ...] = tuple(stages)
        self.disabled: list[str] = []
        self._closed = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)

    def __call__(self, packet: FramePacket) -> FramePacket:
        timings: dict[str, float] = {}
        for stage in self.stages:
            t0 = time.perf_counter()
            try:
                packet = stage(packet)
            except Exception as exc:  # noqa: BLE001 - only fail-soft effects are swallowed, see below
                if not getattr(stage, "fail_soft", False):
                    raise
                self.disable(stage, f"{type(exc).__name__}: {exc}")
                continue
            timings[stage.name] = (time.perf_counter() - t0) * 1000.0
        return dataclasses.replace(packet, timings_ms=timings)

    def disable(self, stage: Stage, reason: str) -> None:
        """Take ``stage`` out between frames (a live toggle or a failed effect)."""
        log.error("stage %r failed and is turned off: %s", stage.name, reason)
        self.disabled.append(f"{stage.name}: {reason}")
        self.stages = tuple(s for s in self.stages if s is not stage)
        stage.close()

    def find(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stage in self.stages:
            stage.close()

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


Render = Callable[[FramePacket, bool], np.ndarray]


def run_loop(source, pipeline: Pipeline, sinks: Sequence[Sink], render: Render | None = None,
             controller: KeyController | None = None, max_frames: int | None = None) -> RunResult:
    """The one run loop: every packet from ``source`` through ``pipeline``, rendered once (``render(packet,
    show_overlays)``, only when a sink ``needs_display``), then to every sink in order; keys from window sinks go
    to ``controller``. Then each sink's ``finish(result)``.

    A source error ends the run with reason ERROR (outputs stay valid up to the damage); an output that cannot be
    written (disk full) with OUTPUT_ERROR; Ctrl-C with INTERRUPTED, SIGTERM/SIGHUP with TERMINATED. Sinks finish
    in order and a stop signal waits until they have (a sink whose ``finish`` fails turns the result into
    OUTPUT_ERROR for the sinks after it, so the JSONL's end line tells). The caller closes the sinks and the source
    (``finally``/``ExitStack``).
    """
    controller = controller or KeyController(Controls())
    controls = controller.controls
    windows = [s for s in sinks if hasattr(s, "take_key")]
    wants_display = render is not None and any(s.needs_display for s in sinks)
    frames = 0
    reason, error = EndReason.END, None
    try:
        while True:
            if controls.quit:
                reason = EndReason.QUIT
                break
            if max_frames is not None and frames >= max_frames:
                reason = EndReason.LIMIT
                break
            packet = source.next_packet()
            if packet is None:
                break
            packet = pipeline(packet)
            display = render(packet, controls.overlays) if wants_display else None
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
    with finalising():
        expected = int(getattr(source.reader, "expected_frames", 0) or 0)
        # Damage is judged on what the reader read: a paced replay drops frames on purpose, and drops are not damage.
        stats = getattr(source, "stats", None)
        read = getattr(stats, "read", None)
        delivered = read if isinstance(read, int) else frames + int(getattr(stats, "dropped", 0) or 0)
        if reason == EndReason.END and expected and max(delivered, frames) < expected:
            reason, error = EndReason.ERROR, (f"{source.reader.description}: ended at frame {max(delivered, frames)} "
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


def _handle_keys(window, packet: FramePacket, controller: KeyController, render: Render | None) -> None:
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
