"""The pipeline: stages in order, each timed, and the loop that feeds it from a source into the outputs."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from realtime.errors import SourceError
from realtime.metrics import Metrics
from realtime.types import FramePacket, Stage

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


@dataclass
class Controls:
    """Live toggles changed by keys between frames."""

    overlays: bool = True
    paused: bool = False
    quit: bool = False


@dataclass(frozen=True)
class RunResult:
    """How a run ended: ``reason`` is "end", "limit", "quit", "interrupted" or "error" (a source error, or a file
    that ended before the frame count its header announces); ``error`` says what happened."""

    frames: int
    reason: str
    error: str | None = None
    expected_frames: int = 0


OnPacket = Callable[[FramePacket, Metrics], None]


def run_loop(source, pipeline: Pipeline, metrics: Metrics, on_packet: Sequence[OnPacket] = (),
             max_frames: int | None = None, controls: Controls | None = None) -> RunResult:
    """Feed every packet from ``source`` through ``pipeline`` and then each ``on_packet`` callback (outputs).

    A source error ends the run with reason "error" (outputs stay valid up to the damage); Ctrl-C ends it with
    "interrupted". The caller closes the outputs (in ``finally``), so both still get finalised.
    """
    controls = controls or Controls()
    frames = 0
    reason, error = "end", None
    try:
        while True:
            if controls.quit:
                reason = "quit"
                break
            if max_frames is not None and frames >= max_frames:
                reason = "limit"
                break
            packet = source.next_packet()
            if packet is None:
                break
            packet = pipeline(packet)
            for callback in on_packet:
                callback(packet, metrics)
            metrics.dropped = source.stats.dropped
            metrics.reconnects = source.stats.reconnects
            metrics.record(dict(packet.timings_ms), packet.t_capture)
            frames += 1
    except SourceError as exc:
        reason, error = "error", str(exc)
        log.debug("%s", exc)
    except KeyboardInterrupt:
        reason = "interrupted"
    metrics.dropped = source.stats.dropped
    metrics.reconnects = source.stats.reconnects
    expected = int(getattr(source.reader, "expected_frames", 0) or 0)
    if reason == "end" and 0 < frames < expected or (reason == "end" and frames == 0 and expected):
        reason, error = "error", (f"{source.reader.description}: ended at frame {frames} of the {expected} its "
                                  "header announces (truncated or damaged file)")
        log.debug("%s", error)
    return RunResult(frames=frames, reason=reason, error=error, expected_frames=expected)
