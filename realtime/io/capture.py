"""Frame sources: camera, video file, stream URL, image folder/glob, on one capture thread each.

A *reader* does the blocking I/O (``open``, ``read`` -> ``RawFrame`` or ``None`` at the end, ``close``).
A :class:`Source` runs one reader on a capture thread and hands frames to the main thread under a policy:

- ``latest`` (live): a one-slot hand-over; a frame not yet taken is replaced by the newer one and counted dropped.
- ``every`` (files): a bounded queue; the reader waits when it is full, so no frame is ever dropped.

Errors on the thread cross over as values and are re-raised on the main thread. Nothing waits forever.
"""

from __future__ import annotations

import glob
import logging
import queue
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

import cv2
import numpy as np

from realtime.config import SourceConfig
from realtime.errors import SourceError
from realtime.io.ffmpeg_errors import describe_av_error
from realtime.preprocess import letterbox
from realtime.types import FramePacket, SourceInfo

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv")


@dataclass(frozen=True)
class RawFrame:
    """``frame_bgr``: uint8 (H, W, 3); ``t_source``: seconds from the source's start."""

    frame_bgr: np.ndarray
    t_source: float


class FrameReader(Protocol):
    """``fps`` (0: unknown), ``expected_frames`` (0: unknown) and ``size_wh`` ((0, 0): unknown) are known once
    :meth:`open` returned."""

    kind: str
    live: bool
    description: str
    fps: float
    expected_frames: int
    size_wh: tuple[int, int]

    def open(self) -> None: ...

    def read(self) -> RawFrame | None: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- readers


class CameraReader:
    """A local camera by index, or an RTSP/HTTP stream URL, through OpenCV."""

    live = True

    def __init__(self, target: int | str, width: int = 0, height: int = 0):
        self.target = target
        self.kind = "camera" if isinstance(target, int) else "stream"
        self.description = f"camera {target}" if isinstance(target, int) else f"stream {target}"
        self.width, self.height = width, height
        self.fps = 0.0
        self.expected_frames = 0
        self.size_wh: tuple[int, int] = (0, 0)
        self._cap: cv2.VideoCapture | None = None
        self._t0: float | None = None

    def open(self) -> None:
        self.close()
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            what = f"camera index {self.target} does not open (is a camera attached, and free?)" \
                if self.kind == "camera" else f"stream {self.target} does not answer"
            raise SourceError(what)
        if self.width and self.height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps < 1000 else 0.0
        self.size_wh = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0))
        self._cap = cap

    def read(self) -> RawFrame | None:
        if self._cap is None:
            raise SourceError(f"{self.description} is not open")
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise SourceError(f"{self.description}: reading a frame failed")
        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = now
        return RawFrame(frame, now - self._t0)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class VideoFileReader:
    """A video file decoded with PyAV: exact timestamps, and damage reported instead of silently ending."""

    live = False
    kind = "file"

    def __init__(self, path: Path, threads: int = 0):
        self.path = Path(path)
        self.threads = int(threads)  # decoder threads; 0: FFmpeg's choice (about one per core)
        self.description = f"video {self.path}"
        self._container = None
        self._frames: Iterator | None = None
        self.expected_frames: int = 0
        self.fps: float = 0.0
        self.size_wh: tuple[int, int] = (0, 0)

    def open(self) -> None:
        import av

        if not self.path.is_file():
            raise SourceError(f"video file not found: {self.path}")
        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceError(f"{self.path}: not a readable video ({describe_av_error(exc)})") from exc
        if not self._container.streams.video:
            self.close()
            raise SourceError(f"{self.path}: has no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        if self.threads:
            stream.codec_context.thread_count = self.threads
        self.expected_frames = int(stream.frames or 0)
        rate = stream.average_rate or stream.guessed_rate or Fraction(30, 1)
        self.fps = float(rate)
        self.size_wh = (stream.codec_context.width, stream.codec_context.height)
        self._frames = self._container.decode(stream)

    def read(self) -> RawFrame | None:
        import av

        if self._frames is None:
            raise SourceError(f"{self.description} is not open")
        try:
            frame = next(self._frames)
        except StopIteration:
            return None
        except (av.error.FFmpegError, ValueError) as exc:
            raise SourceError(f"{self.path}: damaged video data ({describe_av_error(exc)})") from exc
        t = float(frame.time) if frame.time is not None else 0.0
        return RawFrame(frame.to_ndarray(format="bgr24"), t)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
            self._frames = None


class ImageFolderReader:
    """Images from a folder (sorted by name) or a glob, played at ``fps`` for their timestamps.

    Every frame has the size of the first readable image: an image of another size is letterboxed (scaled to fit,
    black borders, centred) to it, so one run makes one video. Unreadable images are skipped with a warning; a
    folder where none can be read is a :class:`SourceError`, not an empty run.
    """

    live = False
    kind = "images"

    def __init__(self, pattern: str, fps: float = 30.0):
        self.pattern = pattern
        self.fps = fps
        self.expected_frames = 0  # unreadable images are skipped, so the count is not announced
        self.description = f"images {pattern}"
        self.paths: list[Path] = []
        self._i = 0
        self._size_wh: tuple[int, int] | None = None
        self.frames_read = 0
        self.skipped = 0
        self.letterboxed = 0

    def open(self) -> None:
        base = Path(self.pattern)
        if base.is_dir():
            paths = sorted(p for p in base.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths = sorted(Path(p) for p in glob.glob(self.pattern) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise SourceError(f"no images found in {self.pattern} (looked for {', '.join(IMAGE_SUFFIXES)})")
        self.paths = paths
        self._i = 0

    def read(self) -> RawFrame | None:
        while self._i < len(self.paths):
            path = self.paths[self._i]
            t = self._i / self.fps
            self._i += 1
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None or frame.size == 0:
                self.skipped += 1
                log.warning("skipping unreadable image %s", path)
                continue
            size_wh = (frame.shape[1], frame.shape[0])
            if self._size_wh is None:
                self._size_wh = size_wh
            elif size_wh != self._size_wh:
                frame, _mapping = letterbox(frame, self._size_wh, pad_value=0, center=True)
                self.letterboxed += 1
                if self.letterboxed == 1:
                    log.warning("%s is %dx%d, the first image was %dx%d: letterboxed to the first size (and any "
                                "later image of another size)", path, *size_wh, *self._size_wh)
            self.frames_read += 1
            return RawFrame(frame, t)
        if self.frames_read == 0 and self.paths:
            raise SourceError(f"none of the {len(self.paths)} image(s) in {self.pattern} could be read "
                              "(damaged or not images)")
        return None

    @property
    def size_wh(self) -> tuple[int, int]:
        """The first readable image's size ((0, 0) before it was read)."""
        return self._size_wh or (0, 0)

    def close(self) -> None:
        self._i = len(self.paths)


def read_image(path: Path | str) -> np.ndarray:
    """A photo as uint8 (H, W, 3) BGR at its own size, turned upright by its EXIF orientation (OpenCV's
    ``IMREAD_COLOR`` applies it). :class:`SourceError` when the file is missing or not a readable image."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise SourceError(f"{path}: not a readable image")
    return image


def as_image(image: np.ndarray) -> np.ndarray:
    """``image`` checked to be uint8 (H, W, 3) BGR (a (H, W) grey image is converted); :class:`SourceError`
    otherwise."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise SourceError(f"an image must be uint8 (H, W, 3) BGR, got dtype {array.dtype}")
    if array.ndim == 2:
        array = cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise SourceError(f"an image must be uint8 (H, W, 3) BGR, got shape {array.shape}")
    return np.ascontiguousarray(array)


def is_image(path: Path | str) -> bool:
    """Whether ``path`` names a photo (by its suffix)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_video(path: Path | str) -> bool:
    """Whether ``path`` names a video file (by its suffix)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def expand_inputs(inputs: str | Path | Sequence[str | Path], videos: bool = True) -> list[Path]:
    """Files named by ``inputs``: a file, a folder (its photos and, with ``videos``, its videos, sorted by name,
    not recursive), a glob (``photos/*.jpg``), or a list of these, in the order given. A named file is kept
    whatever its suffix (reading it says what is wrong); a folder or glob that matches nothing usable, or a file
    that does not exist, is a :class:`SourceError`."""
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    wanted = IMAGE_SUFFIXES + (VIDEO_SUFFIXES if videos else ())
    found: list[Path] = []
    for item in items:
        text = str(item)
        path = Path(text).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in wanted)
            if not files:
                raise SourceError(f"no images found in folder {path} "
                                  f"(looked for {', '.join(wanted)})")
            found.extend(files)
        elif path.is_file():
            found.append(path)
        elif any(ch in text for ch in "*?["):
            files = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file()
                           and Path(p).suffix.lower() in wanted)
            if not files:
                raise SourceError(f"nothing matches {text} (looked for {', '.join(wanted)})")
            found.extend(files)
        else:
            raise SourceError(f"{'image' if is_image(path) else 'file'} not found: {path}")
    return found


def make_reader(uri: str, config: SourceConfig) -> FrameReader:
    """Pick the reader for ``uri``: digits -> camera, scheme:// -> stream, folder/glob -> images, else video file."""
    text = str(uri).strip()
    if text.isdigit():
        return CameraReader(int(text), config.width, config.height)
    if "://" in text:
        return CameraReader(text, config.width, config.height)
    path = Path(text).expanduser()
    if path.is_dir() or any(ch in text for ch in "*?["):
        return ImageFolderReader(text, config.fps)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        if not path.is_file():
            raise SourceError(f"image not found: {path}")
        return ImageFolderReader(str(path), config.fps)
    if not path.exists():
        raise SourceError(f"source not found: {text} (give a camera index, a video file, a URL or an image folder)")
    return VideoFileReader(path, config.decode_threads)


# ---------------------------------------------------------------- the capture thread


@dataclass(frozen=True)
class _End:
    error: BaseException | None = None


@dataclass
class SourceStats:
    """Counters the capture thread keeps: frames read, dropped (``latest`` only), reconnects."""

    read: int = 0
    dropped: int = 0
    reconnects: int = 0
    error: str | None = None


class Source:
    """One reader on one capture thread. Iterate to get :class:`FramePacket` objects; a context manager.

    ``policy``: ``latest`` or ``every`` (``auto`` picks ``latest`` for cameras, streams and paced files, ``every``
    otherwise).
    ``pace``: replay a file at its own frame rate, as a camera would deliver it (for live-like benchmarks).
    Streams and cameras that fail mid-run reopen with exponential backoff up to ``reconnect_attempts`` times.
    """

    def __init__(self, reader: FrameReader, config: SourceConfig, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep):
        self.reader = reader
        self.config = config
        policy = config.policy
        if policy == "auto":  # a paced file stands in for a camera, so it is treated like one
            policy = "latest" if (reader.live or config.pace) else "every"
        self.policy = policy
        self.stats = SourceStats()
        self._clock = clock
        self._sleep = sleep
        size = 1 if policy == "latest" else max(1, config.queue_size)
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._ended = False
        self._t_start = 0.0

    # -- lifecycle
    def start(self) -> "Source":
        """Open the reader (errors raise here, on the caller's thread) and start the capture thread."""
        if self._thread is not None:
            return self
        self.reader.open()
        self._t_start = self._clock()
        self._thread = threading.Thread(target=self._run, name=f"capture:{self.reader.kind}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        # Unblock a producer waiting on a full queue.
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self.reader.close()

    def __enter__(self) -> "Source":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- consumer side
    def __iter__(self) -> Iterator[FramePacket]:
        while True:
            packet = self.next_packet()
            if packet is None:
                return
            yield packet

    @property
    def info(self) -> SourceInfo:
        """What the reader says (fps, frames announced, size: known once started)."""
        r = self.reader
        return SourceInfo(description=r.description, kind=r.kind, live=r.live, paced=bool(self.config.pace),
                          fps=float(r.fps or 0.0), expected_frames=int(r.expected_frames or 0),
                          size_wh=(int(r.size_wh[0]), int(r.size_wh[1])))

    def frame_ready(self) -> bool:
        """Whether :meth:`next_packet` would return at once (a frame, the end or an error is waiting)."""
        return self._ended or not self._queue.empty()

    def next_packet(self) -> FramePacket | None:
        """The next packet, ``None`` at the end; re-raises a capture-thread error here."""
        if self._ended:
            return None
        deadline = self.config.read_timeout_s + self.config.reconnect_backoff_max_s * max(
            1, self.config.reconnect_attempts)
        try:
            item = self._queue.get(timeout=deadline)
        except queue.Empty:
            self._ended = True
            raise SourceError(f"{self.reader.description}: no frame for {deadline:.0f} s (stalled)") from None
        if isinstance(item, _End):
            self._ended = True
            if item.error is not None:
                raise item.error
            return None
        return item

    # -- producer side (capture thread)
    def _run(self) -> None:
        index = 0
        pace_t0: float | None = None
        try:
            while not self._stop.is_set():
                raw = self._read_with_reconnect()
                if raw is None:
                    break
                now = self._clock()
                if self.config.pace and not self.reader.live:
                    if pace_t0 is None:
                        pace_t0 = now - raw.t_source
                    wait = pace_t0 + raw.t_source - now
                    if wait > 0:
                        self._sleep(wait)
                    now = self._clock()
                packet = FramePacket(index=index, t_capture=now, t_source=raw.t_source, frame_bgr=raw.frame_bgr)
                index += 1
                self.stats.read += 1
                self._hand_over(packet)
            self._put_end(_End())
        except Exception as exc:  # crosses to the main thread as a value, re-raised there
            self.stats.error = str(exc)
            self._put_end(_End(exc if isinstance(exc, SourceError) else
                               SourceError(f"{self.reader.description}: {type(exc).__name__}: {exc}")))

    def _hand_over(self, packet: FramePacket) -> None:
        if self.policy == "latest":
            with self._lock:
                try:
                    self._queue.get_nowait()
                    self.stats.dropped += 1
                except queue.Empty:
                    pass
                self._queue.put_nowait(packet)
            return
        while not self._stop.is_set():
            try:
                self._queue.put(packet, timeout=0.1)
                return
            except queue.Full:
                continue

    def _put_end(self, end: _End) -> None:
        while True:
            try:
                self._queue.put(end, timeout=0.1)
                return
            except queue.Full:
                if self._stop.is_set():
                    return
                if self.policy == "latest":
                    with self._lock:
                        try:
                            self._queue.get_nowait()
                        except queue.Empty:
                            pass

    def _read_with_reconnect(self) -> RawFrame | None:
        try:
            return self.reader.read()
        except SourceError as first_error:
            if not self.reader.live or self.config.reconnect_attempts == 0:
                raise
            error: SourceError = first_error
            delay = self.config.reconnect_backoff_s
            for attempt in range(1, self.config.reconnect_attempts + 1):
                if self._stop.is_set():
                    return None
                log.warning("%s; reconnecting (%d/%d) in %.1f s", error, attempt,
                            self.config.reconnect_attempts, delay)
                self._sleep(delay)
                delay = min(delay * 2, self.config.reconnect_backoff_max_s)
                try:
                    self.reader.open()
                    raw = self.reader.read()
                except SourceError as exc:
                    error = exc
                    continue
                self.stats.reconnects += 1
                log.info("%s: reconnected after %d attempt(s)", self.reader.description, attempt)
                return raw
            raise SourceError(f"{error} (gave up after {self.config.reconnect_attempts} reconnect attempts)"
                              ) from first_error


def open_source(config: SourceConfig, uri: str | None = None) -> Source:
    """A not-yet-started :class:`Source` for ``uri`` (default: ``config.uri``)."""
    return Source(make_reader(uri if uri is not None else config.uri, config), config)
