"""Runs: a source, a pipeline and sinks through the one run loop. ``annotate`` (files, every frame) and
``run_live`` (camera or stream, newest frame) are each a few lines that choose a source policy and sinks; door mode
(``realtime.door.mode``), the demo and the pipeline benchmark use :func:`run_session` too."""

from __future__ import annotations

import dataclasses
import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from realtime.build import build_pipeline
from realtime.config import Config, OverlayConfig
from realtime.controls import Controls, KeyController
from realtime.io.capture import open_source
from realtime.io.sinks import BackgroundSink, JsonlSink, MetricsSink, Mp4Sink, ProgressSink, Sink, WindowSink
from realtime.metrics import Metrics
from realtime.overlay import Hud, render
from realtime.pipeline import Pipeline, Render, run_loop
from realtime.types import RunResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """A finished run: how it ended and its metrics summary."""

    result: RunResult
    summary: dict[str, Any]


def hud_renderer(overlay: OverlayConfig, metrics: Metrics, pipeline: Pipeline,
                 controller: KeyController | None = None) -> Render:
    """``render(packet, show_overlays)`` with the status panel (FPS, drops, stages turned off) and, from the key
    ``controller``, the pause banner and the last key's notice."""
    def render_packet(packet, show_overlays: bool):
        extra = tuple(f"off: {d}" for d in pipeline.disabled[-2:])
        hud = Hud(fps=metrics.live_fps(), dropped=metrics.dropped, extra=extra,
                  notice=controller.notice() if controller is not None else "",
                  paused=controller is not None and controller.controls.paused)
        return render(packet, hud, overlay, show_overlays)
    return render_packet


def run_session(source, pipeline: Pipeline, sinks: Sequence[Sink], overlay: OverlayConfig,
                max_frames: int | None = None, render: Render | None = None,
                controls: Controls | None = None) -> Outcome:
    """Run the loop with ``sinks`` plus a metrics sink (last, so latency is capture to the end of output).
    ``render``: the overlay renderer (default :func:`hud_renderer`). The caller owns and closes everything."""
    metrics = Metrics()
    style = pipeline.find("style")
    controller = KeyController(controls or Controls(), getattr(style, "cycle", None))
    result = run_loop(source, pipeline, [*sinks, MetricsSink(metrics, source.stats)],
                      render or hud_renderer(overlay, metrics, pipeline, controller), controller, max_frames)
    return Outcome(result, {**metrics.summary(), "capture_to_output": capture_to_output_kind(source)})


def capture_to_output_kind(source) -> str:
    """``latency`` when frames arrive in real time (a camera, a stream, a paced file), else ``queueing``: an unpaced
    file is read ahead as fast as possible, so capture-to-output then measures time spent waiting in the source
    queue, not latency."""
    live = bool(getattr(getattr(source, "reader", None), "live", False))
    paced = bool(getattr(getattr(source, "config", None), "pace", False))
    return "latency" if live or paced else "queueing"


def source_fps(source, config: Config) -> float:
    return float(getattr(source.reader, "fps", 0) or config.source.fps)


def file_sinks(stack: ExitStack, config: Config, fps: float, out_mp4: Path | None,
               out_jsonl: Path | None) -> list[Sink]:
    """The MP4 and JSONL sinks asked for, entered on ``stack`` (finalised when it unwinds). The H.264 encoder
    runs on its own thread behind a bounded queue (:class:`BackgroundSink`), off the frame loop."""
    sinks: list[Sink] = []
    if out_mp4 is not None:
        mp4 = stack.enter_context(Mp4Sink(out_mp4, fps=fps, crf=config.output.crf, preset=config.output.preset,
                                          threads=config.output.encode_threads))
        sinks.append(stack.enter_context(BackgroundSink(mp4)))
    if out_jsonl is not None:
        sinks.append(stack.enter_context(JsonlSink(out_jsonl, decimals=config.output.jsonl_decimals)))
    return sinks


def annotate(config: Config, input_uri: str, out_mp4: Path | None, out_jsonl: Path | None,
             progress: bool = True, max_frames: int | None = None, pipeline: Pipeline | None = None) -> Outcome:
    """Every frame of ``input_uri`` (policy ``every``, unpaced) into the MP4 and/or JSONL; the JSONL's last line
    says how the run ended. A pipeline may be passed in (benchmarks and batch workers reuse one)."""
    with ExitStack() as stack:
        source = stack.enter_context(open_source(dataclasses.replace(config.source, policy="every", pace=False),
                                                 input_uri))
        if pipeline is None:
            pipeline = stack.enter_context(build_pipeline(config))
        sinks = file_sinks(stack, config, source_fps(source, config), out_mp4, out_jsonl)
        if progress:
            total = int(getattr(source.reader, "expected_frames", 0) or 0) or None
            if total and max_frames:
                total = min(total, max_frames)
            sinks.append(stack.enter_context(ProgressSink(total or max_frames, Path(str(input_uri)).name)))
        return run_session(source, pipeline, sinks, config.overlay, max_frames)


def run_live(config: Config, source_uri: str | None, show_window: bool = True, out_mp4: Path | None = None,
             out_jsonl: Path | None = None, max_frames: int | None = None) -> Outcome:
    """Live view: newest frame only (unless the config says otherwise), overlays, keys q/Esc, space, o, s."""
    from realtime.io.display import Window

    with ExitStack() as stack:
        source = stack.enter_context(open_source(config.source, source_uri))
        pipeline = stack.enter_context(build_pipeline(config))
        sinks = file_sinks(stack, config, source_fps(source, config), out_mp4, out_jsonl)
        if show_window:
            sinks.append(stack.enter_context(WindowSink(Window("rtv"))))
        return run_session(source, pipeline, sinks, config.overlay, max_frames)
