import threading
import time

import numpy as np
import pytest

from realtime.io.capture import ImageFolderReader, RawFrame, Source, VideoFileReader, make_reader
from realtime.config import SourceConfig
from realtime.errors import SourceError


class FakeReader:
    """A scriptable live or file reader: fails on given reads, can stall, counts opens."""

    def __init__(self, n_frames=10, live=True, fail_on=(), fail_opens=0, delay_s=0.0, stall_on=None):
        self.kind = "fake"
        self.live = live
        self.description = "fake source"
        self.n_frames = n_frames
        self.fail_on = set(fail_on)
        self.fail_opens = fail_opens
        self.delay_s = delay_s
        self.stall_on = stall_on
        self.opens = 0
        self.reads = 0
        self.produced = 0
        self.release = threading.Event()

    def open(self):
        self.opens += 1
        if self.opens > 1 and self.fail_opens > 0:
            self.fail_opens -= 1
            raise SourceError("fake source: open failed")

    def read(self):
        self.reads += 1
        if self.reads in self.fail_on:
            raise SourceError("fake source: read failed")
        if self.stall_on is not None and self.produced == self.stall_on:
            self.release.wait(5)
        if self.produced >= self.n_frames:
            return None
        if self.delay_s:
            time.sleep(self.delay_s)
        frame = np.full((4, 4, 3), self.produced % 256, np.uint8)
        self.produced += 1
        return RawFrame(frame, self.produced / 100.0)

    def close(self):
        pass


def test_every_policy_never_drops_and_keeps_order():
    reader = FakeReader(n_frames=50, live=False)
    with Source(reader, SourceConfig(policy="every", queue_size=2)) as source:
        packets = []
        for p in source:
            time.sleep(0.001)
            packets.append(p)
    assert [p.index for p in packets] == list(range(50))
    assert [int(p.frame_bgr[0, 0, 0]) for p in packets] == list(range(50))
    assert source.stats.dropped == 0


def test_latest_policy_drops_and_counts_when_consumer_is_slow():
    reader = FakeReader(n_frames=40, live=True, delay_s=0.002)
    with Source(reader, SourceConfig(policy="latest")) as source:
        got = []
        for p in source:
            got.append(p)
            time.sleep(0.02)
    assert source.stats.read == 40
    assert source.stats.dropped > 0
    assert len(got) + source.stats.dropped == 40
    assert all(b.index > a.index for a, b in zip(got, got[1:]))
    # Latency accounting: the newest frame is taken, so a delivered frame is never older than ~one consume step.
    assert got[-1].index == 39


def test_auto_policy_follows_reader():
    assert Source(FakeReader(live=True), SourceConfig()).policy == "latest"
    assert Source(FakeReader(live=False), SourceConfig()).policy == "every"
    assert Source(FakeReader(live=False), SourceConfig(pace=True)).policy == "latest"


def test_error_on_capture_thread_is_raised_on_main_thread():
    reader = FakeReader(n_frames=10, live=False, fail_on={4})
    with Source(reader, SourceConfig(policy="every")) as source:
        seen = []
        with pytest.raises(SourceError, match="read failed"):
            for p in source:
                seen.append(p.index)
    assert seen == [0, 1, 2]


def test_live_source_reconnects_with_backoff():
    sleeps = []
    reader = FakeReader(n_frames=6, live=True, fail_on={3}, fail_opens=1)
    config = SourceConfig(policy="every", reconnect_attempts=3, reconnect_backoff_s=0.5, reconnect_backoff_max_s=4)
    with Source(reader, config, sleep=sleeps.append) as source:
        frames = list(source)
    assert len(frames) == 6
    assert source.stats.reconnects == 1
    assert sleeps == [0.5, 1.0]  # first reopen failed, second succeeded: backoff doubled


def test_live_source_gives_up_after_attempts():
    reader = FakeReader(n_frames=6, live=True, fail_on={2}, fail_opens=10)
    config = SourceConfig(policy="every", reconnect_attempts=2, reconnect_backoff_s=0.01)
    with Source(reader, config, sleep=lambda s: None) as source:
        with pytest.raises(SourceError, match="gave up after 2"):
            list(source)


def test_stalled_source_times_out():
    reader = FakeReader(n_frames=5, live=True, stall_on=1)
    config = SourceConfig(policy="latest", read_timeout_s=0.2, reconnect_backoff_max_s=0.1, reconnect_attempts=1)
    source = Source(reader, config)
    with source:
        assert source.next_packet().index == 0
        with pytest.raises(SourceError, match="stalled"):
            source.next_packet()
        reader.release.set()


def test_close_twice_is_safe():
    source = Source(FakeReader(n_frames=100, live=False), SourceConfig(policy="every", queue_size=1))
    source.start()
    source.close()
    source.close()


def test_video_file_reader_reads_every_frame_with_timestamps(video_file):
    reader = VideoFileReader(video_file)
    reader.open()
    frames = []
    while (raw := reader.read()) is not None:
        frames.append(raw)
    reader.close()
    assert len(frames) == reader.expected_frames == 24
    assert frames[0].frame_bgr.shape == (120, 160, 3)
    assert frames[1].t_source == pytest.approx(1 / 25, abs=1e-3)


def test_image_folder(tmp_path, frame_factory):
    import cv2

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"img_{i:02d}.png"), frame_factory(i))
    (tmp_path / "notes.txt").write_text("not an image")
    reader = make_reader(str(tmp_path), SourceConfig(fps=10))
    assert isinstance(reader, ImageFolderReader)
    with Source(reader, SourceConfig(fps=10)) as source:
        packets = list(source)
    assert len(packets) == 3
    assert packets[2].t_source == pytest.approx(0.2)
    assert np.array_equal(packets[1].frame_bgr, frame_factory(1))


@pytest.mark.parametrize("make, match", [
    (lambda p: str(p / "missing.mp4"), "not found"),
    (lambda p: str(p), "no images found"),
    (lambda p: str(p / "*.png"), "no images found"),
])
def test_bad_sources(tmp_path, make, match):
    with pytest.raises(SourceError, match=match):
        make_reader(make(tmp_path), SourceConfig()).open()


def test_not_a_video(tmp_path):
    path = tmp_path / "fake.mp4"
    path.write_bytes(b"this is not a video" * 10)
    with pytest.raises(SourceError, match="not a readable video"):
        make_reader(str(path), SourceConfig()).open()


def test_camera_that_does_not_open():
    with pytest.raises(SourceError, match="camera index 97 does not open"):
        make_reader("97", SourceConfig()).open()
