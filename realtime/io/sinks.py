"""Where packets go: the :class:`Sink` protocol and the sinks for the MP4, the JSONL sidecar, the window, the
progress bar and the metrics (door mode adds its audit sink in ``realtime.door.mode``).

The run loop renders the overlay once per frame and hands every sink the packet and that one image
(``display_bgr``; ``None`` when no sink asked for it). The writers underneath (:class:`Mp4Writer`,
:class:`JsonlWriter`) write ``<name>.partial`` and rename on close, so a crash never leaves a half file under the
final name; an interrupted run still finalises (the loop's owner closes every sink in ``finally``). ``close()``
twice is safe everywhere.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np

from realtime.errors import SinkError
from realtime.types import FramePacket, RunResult

if TYPE_CHECKING:
    from realtime.metrics import Metrics


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


class Mp4Writer:
    """Browser-playable H.264 (yuv420p, +faststart) MP4. Frames must all have the size of the first one."""

    def __init__(self, path: Path | str, fps: float, crf: int = 23, preset: str = "veryfast", threads: int = 0):
        import av

        self.path = Path(path)
        self.fps = fps
        self.frames = 0
        if self.path.parent and not self.path.parent.exists():
            raise SinkError(f"output folder does not exist: {self.path.parent}")
        if "libx264" not in av.codecs_available:
            raise SinkError("this PyAV build has no libx264 encoder; reinstall 'av' from PyPI wheels")
        self._tmp = _partial(self.path)
        try:
            self._container = av.open(str(self._tmp), mode="w", format="mp4",
                                      options={"movflags": "+faststart"})
        except (av.error.FFmpegError, OSError) as exc:
            raise SinkError(f"cannot write {self.path}: {exc}") from exc
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(30, 1)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": preset}
        if threads:  # 0: libx264's own choice (about 1.5 per core)
            self._stream.codec_context.thread_count = int(threads)
        self._size: tuple[int, int] | None = None
        self._closed = False

    def write(self, frame_bgr: np.ndarray) -> None:
        """``frame_bgr``: uint8 (H, W, 3); odd sizes are padded by one pixel (yuv420p needs even sizes)."""
        import av

        h, w = frame_bgr.shape[:2]
        if self._size is None:
            self._size = (w + (w % 2), h + (h % 2))
            self._stream.width, self._stream.height = self._size
        if (w % 2) or (h % 2):
            frame_bgr = np.pad(frame_bgr, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if (frame_bgr.shape[1], frame_bgr.shape[0]) != self._size:
            raise SinkError(f"{self.path}: frame size {w}x{h} differs from the first frame's {self._size}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_bgr), format="bgr24")
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (av.error.FFmpegError, OSError) as exc:
            raise SinkError(f"writing {self.path} failed: {exc}") from exc
        self.frames += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._size is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
        if self.frames:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def packet_record(packet: FramePacket, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSONL object for one frame (schema: frame, t, detections, faces; plus timings and extras)."""
    record: dict[str, Any] = {
        "frame": packet.index,
        "t": round(packet.t_source, 4),
        "detections": packet.detections.to_json(),
        "faces": packet.faces.to_json(),
    }
    if packet.decisions:
        record["decisions"] = [d.to_json() if hasattr(d, "to_json") else d for d in packet.decisions]
    if packet.style:
        record["style"] = dict(packet.style)
    if packet.timings_ms:
        record["ms"] = {k: round(v, 2) for k, v in packet.timings_ms.items()}
    if extra:
        record.update(extra)
    return record


class JsonlWriter:
    """One JSON object per line; flushed every ``flush_every`` records so a killed run keeps what it wrote."""

    def __init__(self, path: Path | str, flush_every: int = 30):
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            raise SinkError(f"output folder does not exist: {self.path.parent}")
        self._tmp = _partial(self.path)
        try:
            self._handle = open(self._tmp, "w", encoding="utf-8")
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc}") from exc
        self._flush_every = flush_every
        self.records = 0

    def write(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.records += 1
        if self.records % self._flush_every == 0:
            self._handle.flush()

    def close(self) -> None:
        if self._handle.closed:
            return
        self._handle.close()
        os.replace(self._tmp, self.path)

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Sink(Protocol):
    """Receives every processed packet. ``needs_display``: the loop renders the overlay image for it.

    ``write(packet, display_bgr)``: one frame (``display_bgr`` is the rendered view, or None when no sink needs
    it; never modify it). ``finish(result)``: the run ended this way (the JSONL writes its end line). ``close()``:
    finalise; safe twice.
    """

    needs_display: bool

    def write(self, packet: FramePacket, display_bgr: np.ndarray | None) -> None: ...

    def finish(self, result: RunResult) -> None: ...

    def close(self) -> None: ...


class _SinkBase:
    needs_display = False

    def finish(self, result: RunResult) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Mp4Sink(_SinkBase):
    """The annotated view as H.264 (see :class:`Mp4Writer`)."""

    needs_display = True

    def __init__(self, path: Path | str, fps: float, crf: int = 23, preset: str = "veryfast", threads: int = 0):
        self.writer = Mp4Writer(path, fps=fps, crf=crf, preset=preset, threads=threads)

    def write(self, packet: FramePacket, display_bgr: np.ndarray | None) -> None:
        self.writer.write(display_bgr if display_bgr is not None else packet.frame_bgr)

    def close(self) -> None:
        self.writer.close()


def end_record(result: RunResult) -> dict[str, Any]:
    """The JSONL's last line: how the run ended and whether every frame the source announced was processed."""
    complete = result.reason == "end" and (not result.expected_frames or result.frames >= result.expected_frames)
    return {"end": {"frames": result.frames, "expected_frames": result.expected_frames or None,
                    "reason": str(result.reason), "complete": complete, "error": result.error}}


class JsonlSink(_SinkBase):
    """One :func:`packet_record` per frame, then :func:`end_record` when the run finishes."""

    def __init__(self, path: Path | str, record: Callable[[FramePacket], dict[str, Any]] = packet_record):
        self.writer = JsonlWriter(path)
        self._record = record

    def write(self, packet: FramePacket, display_bgr: np.ndarray | None) -> None:
        self.writer.write(self._record(packet))

    def finish(self, result: RunResult) -> None:
        self.writer.write(end_record(result))

    def close(self) -> None:
        self.writer.close()


class ProgressSink(_SinkBase):
    """A tqdm bar: one tick per frame (``total`` frames when known)."""

    def __init__(self, total: int | None, desc: str):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="frame", desc=desc, dynamic_ncols=True, leave=True)

    def write(self, packet: FramePacket, display_bgr: np.ndarray | None) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class MetricsSink(_SinkBase):
    """Records each frame's stage times and its capture-to-output latency (the loop adds it last)."""

    def __init__(self, metrics: "Metrics", source_stats: Any = None):
        self.metrics = metrics
        self.source_stats = source_stats

    def write(self, packet: FramePacket, display_bgr: np.ndarray | None) -> None:
        if self.source_stats is not None:
            self.metrics.dropped = self.source_stats.dropped
            self.metrics.reconnects = self.source_stats.reconnects
        self.metrics.record(packet.timings_ms, packet.t_capture)

    def finish(self, result: RunResult) -> None:
        if self.source_stats is not None:
            self.metrics.dropped = self.source_stats.dropped
            self.metrics.reconnects = self.source_stats.reconnects

    def close(self) -> None:
        pass


class WindowSink(_SinkBase):
    """Shows the rendered view in a window (``realtime.io.display.Window`` or anything with ``show``,
    ``wait_key``, ``closed_by_user``, ``close``) and keeps the last key for the loop's key controller."""

    needs_display = True

    def __init__(self, window: Any):
        self.window = window
        self.last_key = -1

    def write(self, packet: FramePacket, display_bgr: np.ndarray | None) -> None:
        self.last_key = self.window.show(display_bgr if display_bgr is not None else packet.frame_bgr)

    def take_key(self) -> int:
        """The key pressed with the last frame (-1/255: none); a closed window reads as quit."""
        key, self.last_key = self.last_key, -1
        return ord("q") if self.window.closed_by_user() else key

    def wait_key(self, wait_ms: int) -> int:
        return ord("q") if self.window.closed_by_user() else self.window.wait_key(wait_ms)

    def close(self) -> None:
        self.window.close()
