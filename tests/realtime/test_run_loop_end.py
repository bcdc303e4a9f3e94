"""How the run loop ends: a paced replay that drops frames is not a damaged file; an output that fails ends the run
with output-error and the sinks after it still finish."""

from __future__ import annotations

import time

from realtime.config import SourceConfig
from realtime.errors import SinkError
from realtime.io.capture import open_source
from realtime.pipeline import Pipeline, run_loop
from realtime.types import EndReason


class SlowSink:
    """A consumer slower than the clip's frame rate, so the newest-frame policy drops frames."""

    needs_display = False

    def __init__(self, delay_s: float):
        self.delay_s = delay_s
        self.frames = 0
        self.result = None

    def write(self, packet, display_bgr):
        self.frames += 1
        time.sleep(self.delay_s)

    def finish(self, result):
        self.result = result

    def close(self):
        pass


def test_a_paced_replay_that_drops_frames_ends_normally(video_factory, tmp_path):
    clip = video_factory(tmp_path / "clip.mp4", 30, fps=50.0)
    config = SourceConfig(pace=True, policy="latest")
    sink = SlowSink(0.06)
    with open_source(config, str(clip)) as source, Pipeline([]) as pipeline:
        result = run_loop(source, pipeline, [sink])
        dropped = source.stats.dropped
    assert dropped > 0 and result.frames + dropped == 30
    assert result.reason == EndReason.END and result.error is None  # was ERROR: "truncated or damaged file"
    assert sink.result == result


class FailingSink(SlowSink):
    def write(self, packet, display_bgr):
        if self.frames == 3:
            raise SinkError("writing out.mp4 failed: No space left on device")
        self.frames += 1


def test_a_failing_output_ends_the_run_with_output_error_and_later_sinks_finish(video_factory, tmp_path):
    clip = video_factory(tmp_path / "clip.mp4", 10)
    failing, after = FailingSink(0), SlowSink(0)
    with open_source(SourceConfig(policy="every"), str(clip)) as source, Pipeline([]) as pipeline:
        result = run_loop(source, pipeline, [failing, after])
    assert result.reason == EndReason.OUTPUT_ERROR and "No space left" in result.error
    assert result.frames == 3 and after.result == result
