"""Outputs: an H.264 MP4 writer (PyAV + libx264) and a JSON Lines sidecar. Context managers; ``close()`` twice is safe.

Both write to ``<name>.partial`` and rename on close, so a crash never leaves a half file under the final name
(an interrupted run still finalises: ``close()`` is called from ``finally``).
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from realtime.errors import SinkError
from realtime.types import FramePacket


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


class Mp4Writer:
    """Browser-playable H.264 (yuv420p, +faststart) MP4. Frames must all have the size of the first one."""

    def __init__(self, path: Path | str, fps: float, crf: int = 23, preset: str = "veryfast"):
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
