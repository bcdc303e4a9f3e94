"""The three ways frames flow: annotate files, run live (window), and the headless pipeline benchmark."""

from __future__ import annotations

import dataclasses
import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from realtime.build import build_pipeline
from realtime.io.capture import open_source
from realtime.config import Config
from realtime.io.display import KEY_OVERLAYS, KEY_PAUSE, KEY_QUIT, KEY_STYLE, Window
from realtime.metrics import Metrics
from realtime.overlay import Hud, render
from realtime.pipeline import Controls, OnPacket, Pipeline, RunResult, run_loop
from realtime.io.sinks import JsonlWriter, Mp4Writer, packet_record
from realtime.types import FramePacket

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """A finished run: how it ended and its metrics summary."""

    result: RunResult
    summary: dict[str, Any]


def _end_record(result: RunResult) -> dict[str, Any]:
    complete = result.reason == "end" and (not result.expected_frames or result.frames >= result.expected_frames)
    return {"end": {"frames": result.frames, "expected_frames": result.expected_frames or None,
                    "reason": result.reason, "complete": complete, "error": result.error}}


def _mp4_callback(writer: Mp4Writer, config: Config, controls: Controls) -> Callable[[FramePacket, Metrics], None]:
    def write(packet: FramePacket, metrics: Metrics) -> None:
        hud = Hud(fps=metrics.live_fps(), dropped=metrics.dropped)
        writer.write(render(packet, hud, config.overlay, controls.overlays))
    return write


def open_file_outputs(stack: ExitStack, config: Config, fps: float, out_mp4: Path | None, out_jsonl: Path | None,
                      controls: Controls) -> tuple[list[OnPacket], JsonlWriter | None]:
    """The MP4 and JSONL writers asked for, entered on ``stack`` (closed, i.e. finalised, when it unwinds), and
    the callbacks that feed them."""
    callbacks: list[OnPacket] = []
    jsonl = None
    if out_mp4 is not None:
        mp4 = stack.enter_context(Mp4Writer(out_mp4, fps=fps, crf=config.output.crf, preset=config.output.preset))
        callbacks.append(_mp4_callback(mp4, config, controls))
    if out_jsonl is not None:
        jsonl = stack.enter_context(JsonlWriter(out_jsonl))
        callbacks.append(lambda packet, _m: jsonl.write(packet_record(packet)))
    return callbacks, jsonl


def source_fps(source, config: Config) -> float:
    return float(getattr(source.reader, "fps", 0) or config.source.fps)


def annotate(config: Config, input_uri: str, out_mp4: Path | None, out_jsonl: Path | None,
             progress: bool = True, max_frames: int | None = None, pipeline: Pipeline | None = None) -> Outcome:
    """Process every frame of ``input_uri``; write the annotated H.264 MP4 and/or the JSONL sidecar.

    Outputs are finalised whatever happens (end, damage in the input, Ctrl-C); the JSONL's last line says how the
    run ended. A pipeline may be passed in (benchmarks reuse one); otherwise it is built and closed here.
    """
    source_config = dataclasses.replace(config.source, policy="every", pace=False)
    metrics = Metrics()
    controls = Controls()
    with ExitStack() as stack:
        source = stack.enter_context(open_source(source_config, input_uri))
        if pipeline is None:
            pipeline = stack.enter_context(build_pipeline(config))
        callbacks, jsonl = open_file_outputs(stack, config, source_fps(source, config), out_mp4, out_jsonl,
                                             controls)
        if progress:
            from tqdm import tqdm

            total = int(getattr(source.reader, "expected_frames", 0) or 0) or None
            bar = stack.enter_context(tqdm(total=min(total, max_frames) if (total and max_frames) else
                                           (max_frames or total), unit="frame", desc=Path(str(input_uri)).name,
                                           dynamic_ncols=True, leave=True))
            callbacks.append(lambda _p, _m: bar.update(1))
        result = run_loop(source, pipeline, metrics, callbacks, max_frames=max_frames, controls=controls)
        if jsonl is not None:
            jsonl.write(_end_record(result))
    return Outcome(result, metrics.summary())


def run_live(config: Config, source_uri: str | None, show_window: bool = True, out_mp4: Path | None = None,
             out_jsonl: Path | None = None, max_frames: int | None = None) -> Outcome:
    """Live view: newest frame only (unless the config says otherwise), overlays, keys q/Esc, space, o, s."""
    metrics = Metrics()
    controls = Controls()
    with ExitStack() as stack:
        source = stack.enter_context(open_source(config.source, source_uri))
        pipeline = stack.enter_context(build_pipeline(config))
        callbacks, jsonl = open_file_outputs(stack, config, source_fps(source, config), out_mp4, out_jsonl,
                                             controls)
        if show_window:
            window = stack.enter_context(Window("rtv"))
            callbacks.append(_window_callback(window, config, controls, pipeline))
        result = run_loop(source, pipeline, metrics, callbacks, max_frames=max_frames, controls=controls)
        if jsonl is not None:
            jsonl.write(_end_record(result))
    return Outcome(result, metrics.summary())


def _window_callback(window: Window, config: Config, controls: Controls, pipeline: Pipeline):
    def show(packet: FramePacket, metrics: Metrics) -> None:
        extra = tuple(f"off: {d}" for d in pipeline.disabled[-2:])
        image = render(packet, Hud(fps=metrics.live_fps(), dropped=metrics.dropped, extra=extra), config.overlay,
                       controls.overlays)
        key = window.show(image)
        while True:
            if key in KEY_QUIT or window.closed_by_user():
                controls.quit = True
                return
            if key == KEY_OVERLAYS:
                controls.overlays = not controls.overlays
            elif key == KEY_STYLE:
                cycle = getattr(pipeline.find("style"), "cycle", None)
                if cycle is not None:
                    cycle()
            elif key == KEY_PAUSE:
                controls.paused = not controls.paused
            if not controls.paused:
                return
            key = window.wait_key(50)
    return show


def bench_pipeline(config: Config, clip: Path) -> dict[str, Any]:
    """Two headless runs of the configured pipeline on ``clip``.

    ``throughput``: every frame, as fast as possible (per-stage ms, FPS the pipeline can sustain).
    ``live``: the clip replayed at its own frame rate with the ``latest`` policy, as a camera would deliver it,
    overlays rendered as in a live view: FPS delivered, frames dropped, capture-to-output latency.
    """
    with build_pipeline(config) as pipeline:
        throughput = annotate(config, str(clip), None, None, progress=False, pipeline=pipeline)
    # A fresh pipeline for the second run: trackers and caches start empty, as in a real live session.
    live_source = dataclasses.replace(config.source, policy="latest", pace=True)
    metrics = Metrics()
    controls = Controls()

    def draw(packet: FramePacket, m: Metrics) -> None:
        render(packet, Hud(fps=m.live_fps(), dropped=m.dropped), config.overlay, controls.overlays)

    with build_pipeline(config) as pipeline, open_source(live_source, str(clip)) as source:
        run_loop(source, pipeline, metrics, [draw], controls=controls)
        stages = list(pipeline.names)
    return {"clip": str(clip), "stages": stages, "threads": dataclasses.asdict(config.runtime),
            "throughput": throughput.summary, "live": metrics.summary()}
