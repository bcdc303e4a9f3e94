"""The :class:`Sink` protocol every output follows, the base the sinks share, and :class:`BackgroundSink` (a sink's
writes on their own thread). The run loop renders the overlay once per frame and hands every sink the packet and
that one image (``display_bgr``; ``None`` when no sink asked for it). Writers write ``<name>.partial`` and
rename on close, so a crash never leaves a half file under the final name. ``close()`` twice is safe everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from realtime.errors import SinkError
from realtime.types import FramePacket, RunResult


def partial_path(path: Path) -> Path:
    """Where ``path`` is written until it is finalised."""
    return path.with_name(path.name + ".partial")


def why(exc: OSError) -> str:
    return exc.strerror or str(exc)


@runtime_checkable
class Sink(Protocol):
    """Receives every processed packet; everything the run loop uses of a sink. ``needs_display``: the loop
    renders the overlay image for it.

    ``write(packet, display_bgr)``: one frame (``display_bgr`` is the rendered view, or None when no sink needs
    it; never modify it). ``finish(result)``: the run ended this way (the JSONL writes its end line). ``close()``:
    finalise; safe twice.
    """

    needs_display: bool

    def write(self, packet: FramePacket, display_bgr: np.ndarray | None) -> None: ...

    def finish(self, result: RunResult) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class KeySink(Sink, Protocol):
    """A sink that shows frames to a person and takes their keys (a window): the run loop hands its keys to the
    key controller. ``take_key()``: the key pressed with the last frame written (-1: none; a closed window reads
    as ``q``); ``wait_key(ms)``: wait up to ``ms`` for a key (while paused)."""

    def take_key(self) -> int: ...

    def wait_key(self, wait_ms: int) -> int: ...


class SinkBase:
    """Defaults for a sink: no display, nothing to do at the end, a context manager."""

    needs_display = False

    def finish(self, result: RunResult) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class BackgroundSink(SinkBase):
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
        self.needs_display = bool(inner.needs_display)
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
