"""The annotated video: :class:`VideoWriter` (H.264 through PyAV; the container follows the file name's
extension) and :class:`VideoSink`."""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from realtime.errors import SinkError
from realtime.io.ffmpeg_errors import describe_av_error
from realtime.io.interrupts import finalising
from realtime.io.sink import SinkBase, partial_path, why
from realtime.types import FramePacket, RunResult

log = logging.getLogger(__name__)


class _CatchingFile:
    """The file object the MP4 muxer writes through. A failed write (disk full, device gone) is remembered and
    reported as written, so FFmpeg never runs on in an error state (it crashed with SIGSEGV at close on a full
    disk); :class:`VideoWriter` checks :attr:`error` after every call into the muxer and removes the file."""

    def __init__(self, path: Path):
        self._file = open(path, "w+b", buffering=0)  # FFmpeg buffers; unbuffered, a seek never flushes (or fails)
        self.name = str(path)  # FFmpeg reopens the file by name to move the index to the front (+faststart)
        self.error: OSError | None = None

    def write(self, data) -> int:
        if self.error is None:
            view = memoryview(data)
            try:
                while view:
                    view = view[self._file.write(view):]
            except OSError as exc:
                self.error = exc
        return len(data)

    def read(self, n: int = -1) -> bytes:
        return b"" if self.error is not None else self._file.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return self._file.seek(offset, whence)
        except OSError as exc:
            self.error = self.error or exc
            return self._file.tell()

    def tell(self) -> int:
        return self._file.tell()

    def flush(self) -> None:
        if self.error is None:
            try:
                self._file.flush()
            except OSError as exc:
                self.error = exc

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:
            self.error = self.error or exc


CONTAINERS: dict[str, tuple[str, dict[str, str]]] = {
    ".mp4": ("mp4", {"movflags": "+faststart"}),
    ".mov": ("mov", {"movflags": "+faststart"}),
    ".mkv": ("matroska", {}),
    ".avi": ("avi", {}),
}


def container_for(path: Path) -> tuple[str, dict[str, str]]:
    """The FFmpeg container (and its options) for ``path``'s extension (none: MP4); :class:`SinkError` naming
    the supported ones for any other."""
    suffix = path.suffix.lower() or ".mp4"
    if suffix not in CONTAINERS:
        raise SinkError(f"{path}: cannot write video as {suffix!r}; the supported extensions are "
                        f"{', '.join(CONTAINERS)} (H.264 video)")
    return CONTAINERS[suffix]


class VideoWriter:
    """H.264 (yuv420p) video in the container the file name's extension names (:data:`CONTAINERS`: MP4 and MOV
    with the index at the front, so browsers play them while they load; MKV; AVI).

    Every frame is stored at the first frame's size: a frame of another size (a camera that changes resolution
    mid-stream) is scaled to it. Written to ``<name>.partial`` and renamed by :meth:`finish` (or :meth:`close`).
    When a write fails (disk full) :meth:`write` raises :class:`SinkError` and the partial file is removed: a
    video is either finalised up to the last frame written or absent, never half-written under either name.
    """

    def __init__(self, path: Path | str, fps: float, crf: int = 23, preset: str = "veryfast", threads: int = 0):
        import av

        self.path = Path(path)
        self.fps = fps
        self.frames = 0
        self.resized = 0  # frames scaled to the first frame's size
        container_format, options = container_for(self.path)
        if self.path.parent and not self.path.parent.exists():
            raise SinkError(f"output folder does not exist: {self.path.parent}")
        if "libx264" not in av.codecs_available:
            raise SinkError("this PyAV build has no libx264 encoder; reinstall 'av' from PyPI wheels")
        self._tmp = partial_path(self.path)
        try:
            self._io = _CatchingFile(self._tmp)
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {why(exc)}") from exc
        try:
            self._container = av.open(self._io, mode="w", format=container_format, options=dict(options))
        except (av.error.FFmpegError, OSError) as exc:
            self._io.close()
            self._tmp.unlink(missing_ok=True)
            raise SinkError(f"cannot write {self.path}: {describe_av_error(exc)}") from exc
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(30, 1)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": preset}
        if threads:  # 0: libx264's own choice (about 1.5 per core)
            self._stream.codec_context.thread_count = int(threads)
        self._first_wh: tuple[int, int] | None = None
        self._closed = False

    def _check_io(self, doing: str) -> None:
        if self._io.error is not None:
            error = self._io.error
            self._abandon()
            raise SinkError(f"{doing} {self.path} failed: {why(error)}; the unfinished video was removed")

    def _abandon(self) -> None:
        """Drop the partial file (the muxer is closed against the catching file object, which cannot fail)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the file is being removed; FFmpeg's complaint changes nothing
            pass
        self._io.close()
        self._tmp.unlink(missing_ok=True)

    def write(self, frame_bgr: np.ndarray) -> None:
        """``frame_bgr``: uint8 (H, W, 3); a frame of another size than the first is scaled to it; odd sizes are
        padded by one pixel (yuv420p needs even sizes)."""
        import av
        import cv2

        if self._closed:
            raise SinkError(f"{self.path}: written after it was closed")
        h, w = frame_bgr.shape[:2]
        if self._first_wh is None:
            self._first_wh = (w, h)
            self._stream.width, self._stream.height = w + (w % 2), h + (h % 2)
        elif (w, h) != self._first_wh:
            if not self.resized:
                log.warning("%s: frame %d is %dx%d, the video is %dx%d: scaling such frames to the first size",
                            self.path, self.frames, w, h, *self._first_wh)
            self.resized += 1
            frame_bgr = cv2.resize(frame_bgr, self._first_wh, interpolation=cv2.INTER_AREA)
            w, h = self._first_wh
        if (w % 2) or (h % 2):
            frame_bgr = np.pad(frame_bgr, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_bgr), format="bgr24")
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (av.error.FFmpegError, OSError) as exc:
            self._abandon()
            raise SinkError(f"writing {self.path} failed: {describe_av_error(exc)}; the unfinished video was "
                            "removed") from exc
        self._check_io("writing")
        self.frames += 1

    def finish(self) -> None:
        """Flush the encoder, write the index and rename to the final name; with no frame written, remove the
        partial file. :class:`SinkError` when that fails (the partial file is removed). Safe twice."""
        import av

        if self._closed:
            return
        with finalising():
            try:
                if self._first_wh is not None:
                    for packet in self._stream.encode():
                        self._container.mux(packet)
                self._check_io("finalising")
                self._container.close()
            except (av.error.FFmpegError, OSError) as exc:
                self._abandon()
                raise SinkError(f"finalising {self.path} failed: {describe_av_error(exc)}; the unfinished video "
                                "was removed") from exc
            self._closed = True
            self._io.close()
            if self._io.error is not None or not self.frames:
                error = self._io.error
                self._tmp.unlink(missing_ok=True)
                if error is not None:
                    raise SinkError(f"finalising {self.path} failed: {why(error)}; the unfinished video was "
                                    "removed")
                return
            os.replace(self._tmp, self.path)

    def close(self) -> None:
        """:meth:`finish`; safe twice."""
        self.finish()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


Mp4Writer = VideoWriter  # the name older code uses


class VideoSink(SinkBase):
    """The annotated view as H.264 video (see :class:`VideoWriter`)."""

    needs_display = True

    def __init__(self, path: Path | str, fps: float, crf: int = 23, preset: str = "veryfast", threads: int = 0):
        self.writer = VideoWriter(path, fps=fps, crf=crf, preset=preset, threads=threads)

    def write(self, packet: FramePacket, display_bgr: np.ndarray | None) -> None:
        self.writer.write(display_bgr if display_bgr is not None else packet.frame_bgr)

    def finish(self, result: RunResult) -> None:
        self.writer.finish()

    def close(self) -> None:
        self.writer.close()


Mp4Sink = VideoSink  # the name older code uses
