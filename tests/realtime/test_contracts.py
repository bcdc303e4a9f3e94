"""The run loop's contracts are explicit: a source, a stage and a sink that implement only their protocols
(realtime.types.FrameSource, realtime.types.Stage, realtime.io.sinks.Sink / KeySink) are enough; pipelines
compose; stages hand each other data through methods."""

import dataclasses

import numpy as np

from realtime.face.recognition import FaceRecognition
from realtime.face.track import FaceTracker
from realtime.io.sinks import KeySink, Sink, WindowSink
from realtime.pipeline import Pipeline, run_loop
from realtime.types import EndReason, FramePacket, FrameSource, RunResult, SourceInfo, Stage


class Counts:
    def __init__(self):
        self.read = 0
        self.dropped = 0
        self.reconnects = 0


class MinimalSource:
    """Only what FrameSource declares: policy, stats, info, frame_ready, next_packet."""

    policy = "every"

    def __init__(self, n, expected=0):
        self.n = n
        self.stats = Counts()
        self.info = SourceInfo("minimal", "fake", expected_frames=expected)

    def frame_ready(self):
        return True

    def next_packet(self):
        if self.stats.read >= self.n:
            return None
        self.stats.read += 1
        return FramePacket(self.stats.read - 1, 0.0, 0.0, np.zeros((4, 4, 3), np.uint8))


class MinimalStage:
    """Only what Stage declares: name, pure, fail_soft, __call__, reset, close."""

    name = "mark"
    pure = False
    fail_soft = False

    def __init__(self):
        self.seen = 0
        self.resets = 0

    def __call__(self, packet):
        self.seen += 1
        return dataclasses.replace(packet, style={"seen": self.seen})

    def reset(self):
        self.resets += 1
        self.seen = 0

    def close(self):
        pass


class MinimalSink:
    """Only what Sink declares: needs_display, write, finish, close."""

    needs_display = False

    def __init__(self):
        self.got = []
        self.result = None

    def write(self, packet, display_bgr):
        self.got.append(packet.style["seen"])

    def finish(self, result):
        self.result = result

    def close(self):
        pass


def test_the_run_loop_needs_nothing_beyond_the_protocols():
    source, stage, sink = MinimalSource(5), MinimalStage(), MinimalSink()
    assert isinstance(sink, Sink) and not isinstance(sink, KeySink)
    typed_source: FrameSource = source  # structural types: a type checker holds them to the protocols
    typed_stage: Stage = stage
    counted = []
    with Pipeline([typed_stage]) as pipeline:
        result = run_loop(typed_source, pipeline, [sink], on_frame=lambda p: counted.append(p.index))
    assert result == RunResult(5, EndReason.END) and sink.result == result
    assert sink.got == [1, 2, 3, 4, 5] and counted == [0, 1, 2, 3, 4]


def test_a_source_that_ends_before_its_announced_frames_is_an_error():
    with Pipeline([MinimalStage()]) as pipeline:
        result = run_loop(MinimalSource(3, expected=5), pipeline, [MinimalSink()])
    assert result.reason == EndReason.ERROR and "ended at frame 3 of the 5" in result.error


def test_a_window_is_a_key_sink():
    class Window:
        def show(self, image):
            return -1

        def wait_key(self, ms):
            return -1

        def closed_by_user(self):
            return False

        def close(self):
            pass

    assert isinstance(WindowSink(Window()), KeySink)


def test_pipelines_compose_with_stages_before_and_after_and_reset_every_stage():
    first, middle, last = MinimalStage(), MinimalStage(), MinimalStage()
    first.name, last.name = "first", "last"
    base = Pipeline([middle], workers=2, in_flight=2)
    composed = base.extended(after=[last], before=[first])
    assert composed.names == ("first", "mark", "last") and base.names == ("mark",)
    assert (composed.workers, composed.in_flight) == (2, 2)
    composed(FramePacket(0, 0.0, 0.0, np.zeros((4, 4, 3), np.uint8)))
    composed.reset()
    assert (first.resets, middle.resets, last.resets) == (1, 1, 1)


class StubEmbedder:
    def close(self):
        pass


def test_a_new_gallery_reaches_the_recogniser_through_a_method_and_forgets_its_tracks():
    tracker = FaceTracker()
    stage = FaceRecognition(StubEmbedder(), np.zeros((0, 4), np.float32), np.zeros(0, str), tracker,
                            match_threshold=0.5, match_margin=0.0)
    box = np.array([[0, 0, 10, 10]], np.float32)
    assert tracker.update(box, 0).track_ids.tolist() == [1] and tracker.update(box, 1).track_ids.tolist() == [1]
    stage.replace_gallery(np.eye(2, 4, dtype=np.float32), np.array(["ann", "bob"]))
    assert stage.gallery_labels.tolist() == ["ann", "bob"] and stage.gallery_vectors.shape == (2, 4)
    # the old track is gone (no vote cast against the old gallery counts): the same box starts a new track
    assert stage.tracker.update(box, 2).track_ids.tolist() == [2]


def test_every_shipped_stage_and_source_declares_its_whole_protocol():
    from realtime.detect.track import ObjectTracking
    from realtime.detect.yolo import ObjectDetection
    from realtime.door.camera import ResilientSource
    from realtime.door.live_gallery import GalleryWatch
    from realtime.door.policy import DoorPolicy
    from realtime.face.detector import FaceDetector
    from realtime.io.capture import Source
    from realtime.style.stage import StyleTransfer

    for cls in (ObjectDetection, ObjectTracking, FaceDetector, FaceRecognition, StyleTransfer, GalleryWatch,
                DoorPolicy):
        for member in ("name", "pure", "fail_soft", "reset", "close", "__call__"):
            assert hasattr(cls, member), f"{cls.__name__} lacks {member}"
    for cls in (Source, ResilientSource):  # ``policy`` and ``stats`` are set per instance (see the run-loop tests)
        for member in ("info", "frame_ready", "next_packet"):
            assert hasattr(cls, member), f"{cls.__name__} lacks {member}"
