"""Run metrics: per-stage latency, capture-to-output latency, FPS, dropped frames. Printed and written as JSON."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np


def percentile(values_ms: list[float] | np.ndarray, q: float) -> float:
    """``q``-th percentile of ``values_ms`` (NaN when empty)."""
    if len(values_ms) == 0:
        return float("nan")
    return float(np.percentile(np.asarray(values_ms, dtype=np.float64), q))


@dataclass
class Metrics:
    """Collects timings on the main thread; ``summary()`` gives the report.

    Memory stays flat however long a run lasts: percentiles are over the last ``sample_window`` frames (a live
    door runs for weeks), counts and wall time over the whole run, and the live FPS over the last ``fps_window``.
    """

    fps_window: int = 30
    sample_window: int = 2048
    stage_ms: dict[str, deque] = field(default_factory=dict)
    latency_ms: deque = field(default_factory=deque)
    frames: int = 0
    dropped: int = 0
    reconnects: int = 0
    t_first: float | None = None
    t_last: float | None = None
    _recent: deque = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.fps_window < 2 or self.sample_window < 1:
            raise ValueError(f"Metrics windows must be fps_window >= 2 and sample_window >= 1, got "
                             f"{self.fps_window}, {self.sample_window}")
        self.latency_ms = deque(self.latency_ms, maxlen=self.sample_window)
        self._recent = deque(self._recent, maxlen=self.fps_window)

    def record(self, timings_ms: Mapping[str, float], t_capture: float, t_output: float | None = None) -> None:
        """One frame done: its per-stage times and its capture time (``time.perf_counter`` clock)."""
        now = time.perf_counter() if t_output is None else t_output
        if self.t_first is None:
            self.t_first = now
        self.t_last = now
        self.frames += 1
        for name, ms in timings_ms.items():
            samples = self.stage_ms.get(name)
            if samples is None:
                samples = self.stage_ms[name] = deque(maxlen=self.sample_window)
            samples.append(ms)
        self.latency_ms.append((now - t_capture) * 1000.0)
        self._recent.append(now)

    def live_fps(self) -> float:
        """FPS over the last ``window`` frames (0 before two frames)."""
        if len(self._recent) < 2:
            return 0.0
        span = self._recent[-1] - self._recent[0]
        return (len(self._recent) - 1) / span if span > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """Counts and FPS over the whole run; per-stage and capture-to-output percentiles over the last
        ``sample_window`` frames."""
        wall = (self.t_last - self.t_first) if (self.t_first is not None and self.t_last is not None) else 0.0
        fps = (self.frames - 1) / wall if wall > 0 and self.frames > 1 else 0.0
        stages = {
            name: {"p50_ms": round(percentile(v, 50), 3), "p95_ms": round(percentile(v, 95), 3),
                   "mean_ms": round(float(np.mean(v)), 3)}
            for name, v in self.stage_ms.items() if v
        }
        return {
            "frames": self.frames,
            "dropped": self.dropped,
            "reconnects": self.reconnects,
            "wall_s": round(wall, 3),
            "fps": round(fps, 2),
            "stages": stages,
            "latency": {"p50_ms": round(percentile(self.latency_ms, 50), 3),
                        "p95_ms": round(percentile(self.latency_ms, 95), 3)},
            "window_frames": min(self.frames, self.sample_window),
        }


def format_summary(summary: dict[str, Any], title: str = "run") -> str:
    """A small fixed-width table of a :meth:`Metrics.summary`."""
    lines = [
        f"{title}: {summary['frames']} frames, {summary['fps']:.1f} FPS, dropped {summary['dropped']}, "
        f"reconnects {summary['reconnects']}",
        f"  {'stage':<22}{'p50 ms':>10}{'p95 ms':>10}",
    ]
    for name, s in summary["stages"].items():
        lines.append(f"  {name:<22}{s['p50_ms']:>10.2f}{s['p95_ms']:>10.2f}")
    lat = summary["latency"]
    lines.append(f"  {'capture->output':<22}{lat['p50_ms']:>10.2f}{lat['p95_ms']:>10.2f}")
    return "\n".join(lines)
