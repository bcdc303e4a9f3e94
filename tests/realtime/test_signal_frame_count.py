"""A stop signal that lands while a frame is handed to the outputs never splits it: the MP4's frames, the JSONL's
frame rows and the end line's ``frames`` agree wherever the signal arrives (before the first output, between two
outputs, after the last one before the frame is counted). Real signals to this process, real MP4 and JSONL files
read back."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import av
import pytest

from realtime.config import SourceConfig
from realtime.io.capture import open_source
from realtime.io.interrupts import stop_signals
from realtime.io.jsonl_sink import JsonlSink
from realtime.io.sink import BackgroundSink
from realtime.io.video import VideoSink
from realtime.pipeline import Pipeline, run_loop
from realtime.serialize import read_result_lines
from realtime.types import EndReason

SIGNAL_AT = 5  # the frame (0-based) whose hand-over is interrupted


@pytest.fixture(autouse=True)
def _restore_handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


class SignalSink:
    """An output that sends ``signum`` to this process while it is handed frame ``at`` (the handler runs inside
    ``os.kill``, so the interrupt lands exactly here)."""

    needs_display = False

    def __init__(self, signum: int, at: int):
        self.signum, self.at, self.seen = signum, at, 0

    def write(self, packet, display_bgr):
        if self.seen == self.at:
            os.kill(os.getpid(), self.signum)
        self.seen += 1

    def finish(self, result):
        pass

    def close(self):
        pass


def _decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("position", ["before the video", "between video and jsonl", "after the jsonl"])
def test_the_outputs_and_the_end_line_agree_wherever_the_signal_lands(video_factory, tmp_path, position, signum):
    clip = video_factory(tmp_path / "clip.mp4", 12)
    out_mp4, out_jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    video = BackgroundSink(VideoSink(out_mp4, fps=25.0, preset="ultrafast"))
    jsonl = JsonlSink(out_jsonl)
    hook = SignalSink(signum, SIGNAL_AT)
    order = {"before the video": [hook, video, jsonl], "between video and jsonl": [video, hook, jsonl],
             "after the jsonl": [video, jsonl, hook]}[position]
    with stop_signals():
        try:
            with open_source(SourceConfig(policy="every"), str(clip)) as source, Pipeline([]) as pipeline:
                result = run_loop(source, pipeline, order)
        finally:
            video.close()
            jsonl.close()
    lines = read_result_lines(out_jsonl)
    assert result.reason == (EndReason.INTERRUPTED if signum == signal.SIGINT else EndReason.TERMINATED)
    written = _decoded_frames(out_mp4)
    assert (written, len(lines.frames), lines.end["frames"], result.frames) == (written,) * 4, position
    assert SIGNAL_AT <= written <= SIGNAL_AT + 1  # the run stopped at the signal, not at the end of the clip
    assert [row["frame"] for row in lines.frames] == list(range(written))
