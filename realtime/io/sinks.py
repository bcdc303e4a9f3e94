"""Where packets go: the :class:`Sink` protocol and the sinks for the MP4, the JSONL sidecar, the window, the
progress bar and the metrics (door mode adds its audit sink in ``realtime.door.mode``).

The run loop renders the overlay once per frame and hands every sink the packet and that one image
(``display_bgr``; ``None`` when no sink asked for it). The writers underneath (:class:`Mp4Writer`,
:class:`JsonlWriter`) write ``<name>.partial`` and rename on close, so a crash never leaves a half file under the
final name; an interrupted run still finalises (the loop's owner closes every sink in ``finally``). ``close()``
twice is safe everywhere.
"""

from __future__ import annotations

import errno
import json
import os
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from realtime.errors import SinkError
from realtime.io.interrupts import finalising
from realtime.serialize import DEFAULT_DECIMALS, end_record, packet_record
from realtime.types import FramePacket, RunResult

if TYPE_CHECKING:
    from realtime.metrics import Metrics


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


class _CatchingFile:
    """The file object the MP4 muxer writes through. A failed write (disk full, device gone) is remembered and
    reported as written, so FFmpeg never runs on in an error state (it crashed with SIGSEGV at close on a full
    disk); :class:`Mp4Writer` checks :attr:`error` after every call into the muxer and removes the file."""

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


class Mp4Writer:
    """Browser-playable H.264 (yuv420p, +faststart) MP4. Frames must all have the size of the first one.

    Written to ``<name>.partial`` and renamed by :meth:`finish` (or :meth:`close`). When a write fails (disk full)
    :meth:`write` raises :class:`SinkError` and the partial file is removed: an MP4 is either finalised up to the
    last frame written or absent, never half-written under either name.
    """

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
            self._io = _CatchingFile(self._tmp)
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {_why(exc)}") from exc
        try:
            self._container = av.open(self._io, mode="w", format="mp4", options={"movflags": "+faststart"})
        except (av.error.FFmpegError, OSError) as exc:
            self._io.close()
            self._tmp.unlink(missing_ok=True)
            raise SinkError(f"cannot write {self.path}: {exc}") from exc
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(30, 1)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": preset}
        if threads:  # 0: libx264's own choice (about 1.5 per core)
            self._stream.codec_context.thread_count = int(threads)
        self._size: tuple[int, int] | None = None
        self._closed = False

    def _check_io(self, doing: str) -> None:
        if self._io.error is not None:
            error = self._io.error
            self._abandon()
            raise SinkError(f"{doing} {self.path} failed: {_why(error)}; the unfinished MP4 was removed")

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
        """``frame_bgr``: uint8 (H, W, 3); odd sizes are padded by one pixel (yuv420p needs even sizes)."""
        import av

        if self._closed:
            raise SinkError(f"{self.path}: written after it was closed")
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
            self._abandon()
            raise SinkError(f"writing {self.path} failed: {exc}; the unfinished MP4 was removed") from exc
        self._check_io("writing")
        self.frames += 1

    def finish(self) -> None:
        """Flush the encoder, write the index (moov, moved to the front) and rename to the final name; with no
        frame written, remove the partial file. :class:`SinkError` when that fails (the partial file is removed).
        Safe twice."""
        import av

        if self._closed:
            return
        with finalising():
            try:
                if self._size is not None:
                    for packet in self._stream.encode():
                        self._container.mux(packet)
                self._check_io("finalising")
                self._container.close()
            except (av.error.FFmpegError, OSError) as exc:
                self._abandon()
                raise SinkError(f"finalising {self.path} failed: {exc}; the unfinished MP4 was removed") from exc
            self._closed = True
            self._io.close()
            if self._io.error is not None or not self.frames:
                error = self._io.error
                self._tmp.unlink(missing_ok=True)
                if error is not None:
                    raise SinkError(f"finalising {self.path} failed: {_why(error)}; the unfinished MP4 was "
                                    "removed")
                return
            os.replace(self._tmp, self.path)

    def close(self) -> None:
        """:meth:`finish`; safe twice."""
        self.finish()

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class JsonlWriter:
    """One JSON object per line, written to ``<name>.partial`` and renamed on close; flushed every ``flush_every``
    records so a killed run keeps what it wrote.

    A write that fails (disk full) raises :class:`SinkError` and cuts the file back to its last whole line. A
    small reserve file (``<name>.partial.reserve``, :data:`RESERVE_BYTES`) is held while writing and given back
    for the last line (:meth:`write_last`), so the end line can still be written on a full disk.
    """

    RESERVE_BYTES = 64 * 1024

    def __init__(self, path: Path | str, flush_every: int = 30):
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            raise SinkError(f"output folder does not exist: {self.path.parent}")
        self._tmp = _partial(self.path)
        self._reserve = self._tmp.with_name(self._tmp.name + ".reserve")
        try:
            self._handle = open(self._tmp, "wb")
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {_why(exc)}") from exc
        try:
            _allocate(self._reserve, self.RESERVE_BYTES)
        except OSError as exc:
            self._handle.close()
            self._tmp.unlink(missing_ok=True)
            raise SinkError(f"cannot write {self.path}: {_why(exc)} (no room for even {self.RESERVE_BYTES} "
                            "bytes)") from exc
        self._flush_every = flush_every
        self._pending: list[bytes] = []
        self._good = 0  # bytes of whole lines known to be written
        self.failed: str | None = None
        self.records = 0
        self._done = False

    def _flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        try:
            self._handle.write(data)
            self._handle.flush()
        except OSError as exc:
            self.failed = _why(exc)
            self._cut_back()
            raise SinkError(f"writing {self.path} failed: {self.failed}") from exc
        self._good += len(data)

    def _cut_back(self) -> None:
        """Back to the last whole line: a failed write may leave half a line, in Python's buffer or on disk."""
        try:
            self._handle.close()
        except OSError:
            pass
        try:
            os.truncate(self._tmp, self._good)
            self._handle = open(self._tmp, "ab")
        except OSError:
            self._handle = None

    def write(self, record: dict[str, Any]) -> None:
        if self.failed is not None:
            raise SinkError(f"writing {self.path} failed: {self.failed}")
        self._pending.append((json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8"))
        self.records += 1
        if self.records % self._flush_every == 0:
            self._flush()

    def write_last(self, record: dict[str, Any]) -> None:
        """The last line (the end record): written even after a failed write when the reserve makes room for it.
        :class:`SinkError` when even that fails (the file then ends with its last whole line)."""
        with finalising():
            self._reserve.unlink(missing_ok=True)
            if self._handle is None:
                raise SinkError(f"writing {self.path} failed: {self.failed}")
            if self.failed is not None:
                self._pending.clear()
            self._pending.append((json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8"))
            self.records += 1
            failed_before, self.failed = self.failed, None
            try:
                self._flush()
            finally:
                self.failed = self.failed or failed_before

    def close(self) -> None:
        """Write what is pending, rename to the final name; safe twice. A failed flush here still publishes the
        whole lines written before it, then raises :class:`SinkError`."""
        if self._done:
            return
        self._done = True
        with finalising():
            error = None
            try:
                self._flush()
            except SinkError as exc:
                error = exc
            if self._handle is not None:
                try:
                    self._handle.close()
                except OSError:
                    pass
            self._handle = None
            self._reserve.unlink(missing_ok=True)
            os.replace(self._tmp, self.path)
            if error is not None:
                raise error

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _allocate(path: Path, size: int) -> None:
    """A file of ``size`` bytes whose blocks are really allocated (OSError when the disk cannot hold it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except (AttributeError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            os.write(fd, b"\0" * size)
            os.fsync(fd)
    except OSError:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


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

    def finish(self, result: RunResult) -> None:
        self.writer.finish()

    def close(self) -> None:
        self.writer.close()


class JsonlSink(_SinkBase):
    """One :func:`realtime.serialize.packet_record` per frame (coordinates with ``decimals`` decimals:
    ``output.jsonl_decimals``), then :func:`realtime.serialize.end_record` when the run finishes."""

    def __init__(self, path: Path | str, decimals: int = DEFAULT_DECIMALS):
        self.writer = JsonlWriter(path)
        self.decimals = int(decimals)

    def write(self, packet: FramePacket, display_bgr: np.ndarray | None) -> None:
        self.writer.write(packet_record(packet, self.decimals))

    def finish(self, result: RunResult) -> None:
        self.writer.write_last(end_record(result))

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
        self._copy_source_counts()
        self.metrics.record(packet.timings_ms, packet.t_capture)

    def finish(self, result: RunResult) -> None:
        self._copy_source_counts()

    def _copy_source_counts(self) -> None:
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


class BackgroundSink(_SinkBase):
    """Runs another sink's ``write`` on its own thread behind a bounded queue, so slow output (H.264 encoding)
    leaves the frame loop. Every frame is written, in order: a full queue makes ``write`` wait (files lose
    nothing). An error in the thread is re-raised by the next ``write``, ``finish`` or ``close``. ``close()``
    drains the queue, closes the inner sink and is safe twice; a writer stuck longer than ``close_timeout_s``
    raises :class:`SinkError` instead of waiting forever.
    """

    _STOP = object()

    def __init__(self, inner: Sink, maxsize: int = 8, close_timeout_s: float = 60.0):
        import queue
        import threading

        if maxsize < 1:
            raise ValueError(f"BackgroundSink maxsize must be >= 1, got {maxsize}")
        self.inner = inner
        self.needs_display = bool(getattr(inner, "needs_display", False))
        self.close_timeout_s = float(close_timeout_s)
        self._queue: "queue.Queue" = queue.Queue(maxsize=maxsize)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=f"rtv-sink-{type(inner).__name__}", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._STOP:
                return
            if self._error is not None:
                continue  # keep draining so the producer never blocks on a dead writer
            try:
                self.inner.write(*item)
            except BaseException as exc:  # noqa: BLE001 - crosses to the main thread, re-raised there
                self._error = exc

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            if isinstance(error, SinkError):
                raise error
            raise SinkError(f"{type(self.inner).__name__}: {type(error).__name__}: {error}") from error

    def write(self, packet: FramePacket, display_bgr: np.ndarray | None) -> None:
        self._raise_pending()
        if self._closed:
            raise SinkError(f"{type(self.inner).__name__}: write after close")
        self._queue.put((packet, display_bgr))

    def _drain(self) -> None:
        if self._thread.is_alive():
            self._queue.put(self._STOP)
            self._thread.join(self.close_timeout_s)
            if self._thread.is_alive():
                raise SinkError(f"{type(self.inner).__name__}: writer still busy after {self.close_timeout_s:g} s")

    def finish(self, result: RunResult) -> None:
        self._drain()
        self._raise_pending()
        self.inner.finish(result)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._drain()
        finally:
            self.inner.close()
        self._raise_pending()
