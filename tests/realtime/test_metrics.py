"""Metrics stay bounded however long a run lasts."""

import tracemalloc

import numpy as np
import pytest

from realtime.metrics import Metrics
from realtime.pipeline import Pipeline
from realtime.session import run_session
from realtime.config import OverlayConfig
from realtime.types import FramePacket, SourceInfo

FRAME = np.zeros((4, 4, 3), np.uint8)


class Stats:
    read = 0
    dropped = 0
    reconnects = 0


class CountingSource:
    policy = "every"
    info = SourceInfo("counting", "fake")

    def __init__(self, n):
        self.n = n
        self.i = 0
        self.stats = Stats()

    def frame_ready(self):
        return True

    def next_packet(self):
        if self.i >= self.n:
            return None
        self.i += 1
        return FramePacket(index=self.i, t_capture=0.0, t_source=0.0, frame_bgr=FRAME)


class Timed:
    pure = False
    fail_soft = False

    def __init__(self, name):
        self.name = name

    def __call__(self, packet):
        return packet

    def reset(self):
        pass

    def close(self):
        pass


def _metrics_bytes(metrics: Metrics) -> int:
    return sum(len(d) for d in metrics.stage_ms.values()) + len(metrics.latency_ms) + len(metrics._recent)


def test_10k_frames_through_the_run_loop_keep_metrics_memory_flat():
    pipeline = Pipeline([Timed("a"), Timed("b")])
    small = run_session(CountingSource(5_000), pipeline, [], OverlayConfig())
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    big = run_session(CountingSource(10_000), pipeline, [], OverlayConfig())
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert big.summary["frames"] == 10_000 and small.summary["frames"] == 5_000
    assert big.summary["window_frames"] == small.summary["window_frames"] == Metrics().sample_window
    # An unbounded list of 3 floats per frame would hold ~10k x 3 x 32 B = 960 kB; the window stays flat (~10 kB here).
    assert grown < 300_000, grown


def test_percentiles_cover_the_recent_window_counts_cover_the_run():
    m = Metrics(sample_window=10)
    for i in range(100):
        m.record({"s": float(i)}, t_capture=0.0, t_output=float(i))
    s = m.summary()
    assert s["frames"] == 100 and s["stages"]["s"]["p50_ms"] == pytest.approx(94.5)
    assert len(m.stage_ms["s"]) == 10 and len(m.latency_ms) == 10
    assert m.live_fps() == pytest.approx(1.0)


def test_bad_windows_are_refused():
    with pytest.raises(ValueError):
        Metrics(fps_window=1)
