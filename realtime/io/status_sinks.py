"""Sinks that show how a run goes: the live window (with the status bar the session gives it), the progress bar,
and the metrics recorder."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from realtime.io.sink import SinkBase
from realtime.types import FramePacket, RunResult

if TYPE_CHECKING:
    from realtime.metrics import Metrics


class ProgressSink(SinkBase):
    """A tqdm bar: one tick per frame (``total`` frames when known)."""

    def __init__(self, total: int | None, desc: str):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="frame", desc=desc, dynamic_ncols=True, leave=True)

    def write(self, packet: FramePacket, display_bgr: np.ndarray | None) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class MetricsSink(SinkBase):
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


class WindowSink(SinkBase):
    """Shows the rendered view in a window (``realtime.io.display.Window`` or anything with ``show``,
    ``wait_key``, ``closed_by_user``, ``close``) and keeps the last key for the loop's key controller."""

    needs_display = True

    def __init__(self, window: Any):
        self.window = window
        self.last_key = -1
        self._view: Callable[[FramePacket, np.ndarray], np.ndarray] | None = None

    def set_view(self, view: Callable[[FramePacket, np.ndarray], np.ndarray]) -> None:
        """``view(packet, rendered) -> shown``: what the window adds to the rendered frame (the status bar)."""
        self._view = view

    def write(self, packet: FramePacket, display_bgr: np.ndarray | None) -> None:
        image = display_bgr if display_bgr is not None else packet.frame_bgr
        self.last_key = self.window.show(image if self._view is None else self._view(packet, image))

    def take_key(self) -> int:
        """The key pressed with the last frame (-1/255: none); a closed window reads as quit."""
        key, self.last_key = self.last_key, -1
        return ord("q") if self.window.closed_by_user() else key

    def wait_key(self, wait_ms: int) -> int:
        return ord("q") if self.window.closed_by_user() else self.window.wait_key(wait_ms)

    def close(self) -> None:
        self.window.close()
