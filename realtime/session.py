"""Runs: a source, a pipeline and sinks through the one run loop. ``annotate`` (files, every frame) and
``run_live`` (camera or stream, newest frame) are each a few lines that choose a source policy and sinks; door mode
(``realtime.door.mode``), the demo and the pipeline benchmark use :func:`run_session` too."""

from __future__ import annotations

import dataclasses
import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from realtime.build import build_pipeline
from realtime.config import Config, OverlayConfig
from realtime.controls import Controls, KeyController
from realtime.io.capture import open_source
from realtime.io.jsonl_sink import JsonlSink, JsonlWriter
from realtime.io.sink import BackgroundSink, Sink
from realtime.io.status_sinks import MetricsSink, ProgressSink, WindowSink
from realtime.io.video import VideoSink
from realtime.metrics import Metrics
from realtime.overlay import Hud, render, window_view
from realtime.pipeline import Pipeline, Render, run_loop
from realtime.serialize import RunHeader
from realtime.types import FramePacket, FrameSource, RunResult, SourceInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """A finished run: how it ended and its metrics summary."""

    result: RunResult
    summary: dict[str, Any]


def current_hud(metrics: Metrics, pipeline: Pipeline, controller: KeyController | None = None) -> Hud:
    """The status bar's content now: FPS, drops, stages turned off and, from the key ``controller``, the pause
    banner and the last key's notice."""
    extra = tuple(f"off: {d}" for d in pipeline.disabled[-2:])
    return Hud(fps=metrics.live_fps(), dropped=metrics.dropped, extra=extra,
               notice=controller.notice() if controller is not None else "",
               paused=controller is not None and controller.controls.paused)


def hud_renderer(overlay: OverlayConfig, metrics: Metrics, pipeline: Pipeline,
                 controller: KeyController | None = None) -> Render:
    """``render(packet, show_overlays)`` for every sink: the status bar only when ``overlay.hud`` asks (the live
    window adds its own, above the picture: :func:`attach_window_hud`)."""
    def render_packet(packet, show_overlays: bool):
        hud = current_hud(metrics, pipeline, controller) if overlay.hud else None
        return render(packet, hud, overlay, show_overlays)
    return render_packet


def attach_window_hud(sinks: Sequence[Sink], overlay: OverlayConfig, metrics: Metrics, pipeline: Pipeline,
                      controller: KeyController) -> None:
    """Window sinks show the status bar above the picture, with the key notices (never in recordings)."""
    def view(packet, image):
        hud = current_hud(metrics, pipeline, controller)
        if overlay.hud:  # already inside the frame
            hud = Hud(notice=hud.notice, paused=hud.paused)
            return window_view(image, packet, hud, dataclasses.replace(overlay, enabled=False))
        return window_view(image, packet, hud, overlay, controller.controls.overlays)
    for sink in sinks:
        if isinstance(sink, WindowSink):
            sink.set_view(view)


def run_session(source: FrameSource, pipeline: Pipeline, sinks: Sequence[Sink], overlay: OverlayConfig,
                max_frames: int | None = None, render: Render | None = None,
                controls: Controls | None = None, on_frame: Callable[[FramePacket], None] | None = None) -> Outcome:
    """Run the loop with ``sinks`` plus a metrics sink (last, so latency is capture to the end of output).
    ``render``: the overlay renderer (default :func:`hud_renderer`); ``on_frame``: see :func:`run_loop`. The
    caller owns and closes everything."""
    from realtime.style.stage import StyleTransfer

    metrics = Metrics()
    style = pipeline.find("style")
    controller = KeyController(controls or Controls(), style.cycle if isinstance(style, StyleTransfer) else None)
    attach_window_hud(sinks, overlay, metrics, pipeline, controller)
    result = run_loop(source, pipeline, [*sinks, MetricsSink(metrics, source.stats)],
                      render or hud_renderer(overlay, metrics, pipeline, controller), controller, max_frames,
                      on_frame)
    return Outcome(result, {**metrics.summary(), "capture_to_output": capture_to_output_kind(source.info)})


def capture_to_output_kind(info: SourceInfo) -> str:
    """``latency`` when frames arrive in real time (a camera, a stream, a paced file), else ``queueing``: an unpaced
    file is read ahead as fast as possible, so capture-to-output then measures time spent waiting in the source
    queue, not latency."""
    return "latency" if info.live or info.paced else "queueing"


def source_fps(source: FrameSource, config: Config) -> float:
    return source.info.fps or config.source.fps


def jsonl_header(config: Config, source: FrameSource, pipeline: Pipeline) -> RunHeader:
    """The JSONL's header for this run (models and their sha256, thresholds, config fingerprint, source)."""
    from realtime.provenance import run_header

    return run_header(config, source.info, pipeline.stages)


def file_sinks(stack: ExitStack, config: Config, fps: float, out_mp4: Path | None,
               out_jsonl: Path | None, header: RunHeader | None = None,
               source_name: str | None = None) -> list[Sink]:
    """The MP4 and JSONL sinks asked for, entered on ``stack`` (finalised when it unwinds). The H.264 encoder
    runs on its own thread behind a bounded queue (:class:`BackgroundSink`), off the frame loop. ``header``: the
    JSONL's first line."""
    sinks: list[Sink] = []
    if out_mp4 is not None:
        mp4 = stack.enter_context(VideoSink(out_mp4, fps=fps, crf=config.output.crf, preset=config.output.preset,
                                          threads=config.output.encode_threads))
        sinks.append(stack.enter_context(BackgroundSink(mp4)))
    if out_jsonl is not None:
        # every row names its file when ``source_name`` is given
        sinks.append(stack.enter_context(JsonlSink(out_jsonl, decimals=config.output.jsonl_decimals,
                                                   header=header, source=source_name)))
    return sinks


def annotate(config: Config, input_uri: str, out_mp4: Path | None, out_jsonl: Path | None,
             progress: bool = True, max_frames: int | None = None, pipeline: Pipeline | None = None,
             on_frame: Callable[[FramePacket], None] | None = None, source_name: str | None = None,
             extra_sinks: Sequence[Sink] = ()) -> Outcome:
    """Every frame of ``input_uri`` (policy ``every``, unpaced) into the MP4 and/or JSONL; the JSONL's first line
    says what produced it, its last line how the run ended. A pipeline may be passed in (the API, benchmarks and
    batch workers reuse one; the caller resets its state); ``on_frame(packet)`` is called as each frame completes
    (a batch counts frames there). ``source_name``: the ``source`` each JSONL row carries (none when None).
    ``extra_sinks``: more sinks (the caller owns them)."""
    from realtime.style.stage import offline_style

    config = offline_style(config)
    with ExitStack() as stack:
        source = stack.enter_context(open_source(dataclasses.replace(config.source, policy="every", pace=False),
                                                 input_uri))
        if pipeline is None:
            pipeline = stack.enter_context(build_pipeline(config))
        header = jsonl_header(config, source, pipeline) if out_jsonl is not None else None
        sinks = file_sinks(stack, config, source_fps(source, config), out_mp4, out_jsonl, header, source_name)
        sinks.extend(extra_sinks)
        if progress:
            total = source.info.expected_frames or None
            if total and max_frames:
                total = min(total, max_frames)
            sinks.append(stack.enter_context(ProgressSink(total or max_frames, Path(str(input_uri)).name)))
        return run_session(source, pipeline, sinks, config.overlay, max_frames, on_frame=on_frame)


def run_live(config: Config, source_uri: str | None, show_window: bool = True, out_mp4: Path | None = None,
             out_jsonl: Path | None = None, max_frames: int | None = None) -> Outcome:
    """Live view: newest frame only (unless the config says otherwise), overlays, keys q/Esc, space, o, s."""
    from realtime.io.display import Window

    with ExitStack() as stack:
        source = stack.enter_context(open_source(config.source, source_uri))
        pipeline = stack.enter_context(build_pipeline(config))
        header = jsonl_header(config, source, pipeline) if out_jsonl is not None else None
        sinks = file_sinks(stack, config, source_fps(source, config), out_mp4, out_jsonl, header)
        if show_window:
            sinks.append(stack.enter_context(WindowSink(Window("rtv"))))
        return run_session(source, pipeline, sinks, config.overlay, max_frames)


# ---------------------------------------------------------------- photos and many files


@dataclass(frozen=True)
class FileJob:
    """One input of :func:`annotate_files` and where its annotated copy goes (an image for a photo, an MP4 for a
    video; None: not asked)."""

    input: Path
    output: Path | None


@dataclass(frozen=True)
class FilesOutcome:
    """How :func:`annotate_files` ended: ``result`` (frames = photos + video frames), ``photos`` and ``videos``
    done, ``failed``: (input, reason) for inputs that could not be read or annotated, ``written``: outputs."""

    result: RunResult
    photos: int
    videos: int
    failed: tuple[tuple[str, str], ...]
    written: tuple[Path, ...]


class _RowSink:
    """A video's rows in a JSONL shared by several inputs (the caller owns the writer): each row, and the video's
    end row, with its ``source``."""

    needs_display = False

    def __init__(self, writer, source: str, decimals: int):
        self.writer = writer
        self.source = source
        self.decimals = decimals

    def write(self, packet, display_bgr) -> None:
        from realtime.results import result_record

        self.writer.write(result_record(packet, self.source, self.decimals))

    def finish(self, result: RunResult) -> None:
        from realtime.serialize import end_record

        self.writer.write({**end_record(result), "source": self.source})

    def close(self) -> None:
        """Nothing to close: the shared JSONL is the caller's."""

    def __enter__(self) -> "_RowSink":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_image(path: Path, image_bgr) -> Path:
    """``image_bgr`` encoded by ``path``'s suffix (JPEG, PNG, ...), written to ``<name>.partial`` and renamed."""
    import cv2

    from realtime.errors import SinkError
    from realtime.io.paths import partial_path

    path = Path(path)
    ok, data = cv2.imencode(path.suffix.lower() or ".png", image_bgr)
    if not ok:
        raise SinkError(f"cannot encode {path} as {path.suffix or 'an image'}")
    tmp = partial_path(path)
    try:
        tmp.write_bytes(data.tobytes())
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SinkError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def annotate_photo(config: Config, pipeline: Pipeline, photo: Path | str, out_image: Path | None,
                   out_jsonl: Path | None, source: str | None = None) -> RunResult:
    """One photo as :meth:`realtime.api.Vision.predict` sees it (EXIF orientation applied, its own size, nothing
    carried over from before) through ``pipeline`` (built from :func:`realtime.api.stills_config` of ``config``):
    its annotated copy written to ``out_image`` (encoded by its suffix) and a JSONL of its own to ``out_jsonl`` (the
    header, the photo's row with ``source``, the end line). ``source``: the name the row carries (default: the path
    as given). An unreadable photo raises :class:`realtime.errors.SourceError` and writes nothing. ``rtv batch``
    annotates each photo input here."""
    from realtime.api import predict_still, stills_config
    from realtime.media import read_image
    from realtime.provenance import run_header
    from realtime.serialize import end_record, header_record
    from realtime.types import EndReason

    frame = read_image(photo)
    result = predict_still(pipeline, frame, str(photo) if source is None else source, config)
    if out_image is not None:
        write_image(Path(out_image), result.plot())
    ended = RunResult(frames=1, reason=EndReason.END, expected_frames=1)
    if out_jsonl is not None:
        height, width = frame.shape[:2]
        info = SourceInfo(description=f"image {photo}", kind="image", expected_frames=1, size_wh=(width, height))
        header = run_header(stills_config(config), info, pipeline.stages)
        with JsonlWriter(out_jsonl) as writer:
            writer.write(header_record(header))
            writer.write(result.to_json())
            writer.write_last(end_record(ended))
    return ended


def annotate_files(vision, jobs: Sequence[FileJob], out_jsonl: Path | None, progress: bool = True) -> FilesOutcome:
    """Annotate photos and videos with ``vision`` (:class:`realtime.api.Vision`): each photo on its own, at its
    own size (:meth:`Vision.predict`), its annotated copy written as an image; each video through the run loop into
    its MP4. ``out_jsonl``: one JSONL for all of them, every row with its ``source``; a video's end is a row
    with its ``source``, and the last line says how the whole run ended. A photo that cannot be read is a row
    ``{"source", "error"}`` and the run goes on."""
    from realtime.errors import RtvError, SourceError
    from realtime.io.capture import is_image
    from realtime.io.interrupts import stop_reason
    from realtime.io.sinks import JsonlWriter
    from realtime.serialize import end_record
    from realtime.types import EndReason

    frames = photos = videos = 0
    failed: list[tuple[str, str]] = []
    written: list[Path] = []
    reason, error = EndReason.END, None
    with ExitStack() as stack:
        writer = stack.enter_context(JsonlWriter(out_jsonl)) if out_jsonl is not None else None
        bar = None
        if progress and len(jobs) > 1:
            from tqdm import tqdm

            bar = stack.enter_context(tqdm(total=len(jobs), unit="file", desc="annotate", dynamic_ncols=True))
        try:
            for job in jobs:
                name = str(job.input)
                if is_image(job.input):
                    try:
                        result = vision.predict(job.input)
                    except SourceError as exc:
                        failed.append((name, str(exc)))
                        log.warning("%s", exc)
                        if writer is not None:
                            writer.write({"source": name, "error": str(exc)})
                    else:
                        if job.output is not None:
                            written.append(write_image(job.output, result.plot()))
                        if writer is not None:
                            writer.write(result.to_json())
                        frames += 1
                        photos += 1
                else:
                    decimals = vision.config.output.jsonl_decimals
                    sinks = [_RowSink(writer, name, decimals)] if writer is not None else []
                    try:
                        vision.video_pipeline().reset()  # tracks start over for each video
                        outcome = annotate(vision.config, name, job.output, None, progress=progress and bar is None,
                                           pipeline=vision.video_pipeline(), extra_sinks=sinks)
                    except RtvError as exc:
                        failed.append((name, str(exc)))
                        if writer is not None:
                            writer.write({"source": name, "error": str(exc)})
                    else:
                        frames += outcome.result.frames
                        videos += 1
                        if job.output is not None and job.output.is_file():
                            written.append(job.output)
                        if outcome.result.reason in (EndReason.INTERRUPTED, EndReason.TERMINATED,
                                                     EndReason.OUTPUT_ERROR):
                            reason, error = outcome.result.reason, outcome.result.error
                            break
                        if outcome.result.reason == EndReason.ERROR:
                            failed.append((name, outcome.result.error or "damaged"))
                if bar is not None:
                    bar.update(1)
        except KeyboardInterrupt as exc:
            reason = EndReason(stop_reason(exc))
        if reason == EndReason.END and failed:
            reason, error = EndReason.ERROR, f"{len(failed)} of {len(jobs)} input(s) failed: {failed[0][0]}: " \
                                             f"{failed[0][1]}"
        result = RunResult(frames=frames, reason=reason, error=error)
        if writer is not None:
            writer.write_last(end_record(result))
    if out_jsonl is not None:
        written.append(Path(out_jsonl))
    return FilesOutcome(result, photos, videos, tuple(failed), tuple(written))


def new_run_dir(base: Path | str, task: str) -> Path:
    """A new numbered folder ``base/task/N`` (N = 1 + the highest number there), made now, so two runs never
    share one and nothing existing is written over."""
    parent = Path(base) / task
    parent.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name) for p in parent.iterdir() if p.name.isdigit()]
    n = max(numbers, default=0) + 1
    while True:
        folder = parent / str(n)
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            n += 1
