"""Concurrent stage branches give the sequential result; worker errors cross to the caller; files stay
deterministic (the `every` policy gives the same JSONL with stage workers as without)."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from realtime.config import ZOO_DIR, load_config
from realtime.errors import SinkError
from realtime.io.sinks import BackgroundSink
from realtime.pipeline import Pipeline, merge_packets
from realtime.io.capture import SourceStats
from realtime.types import Detections, FaceDetections, FaceIdentities, FramePacket, SourceInfo


def packet(index: int = 0) -> FramePacket:
    frame = np.full((32, 32, 3), index % 256, np.uint8)
    return FramePacket(index=index, t_capture=0.0, t_source=0.0, frame_bgr=frame)


class Detect:
    name = "detect"
    pure = False
    fail_soft = False

    def __init__(self):
        self.threads = set()

    def __call__(self, p):
        self.threads.add(threading.get_ident())
        time.sleep(0.01)
        v = float(p.frame_bgr[0, 0, 0])
        return dataclasses.replace(p, detections=Detections(np.array([[v, v, v + 5, v + 5]], np.float32),
                                                            np.array([0.9], np.float32), np.array([0]), ("x",)))

    def reset(self):
        pass

    def close(self):
        pass


class FaceDetect:
    name = "face_detect"
    pure = False
    fail_soft = False

    def __init__(self):
        self.saw_detections = []
        self.threads = set()

    def __call__(self, p):
        self.threads.add(threading.get_ident())
        self.saw_detections.append(len(p.detections))
        v = float(p.frame_bgr[0, 0, 0])
        return dataclasses.replace(p, faces=FaceDetections(np.array([[v, 0, v + 9, 9]], np.float32),
                                                           np.array([0.8], np.float32),
                                                           np.zeros((1, 5, 2), np.float32)))

    def reset(self):
        pass

    def close(self):
        pass


class Recognize:
    name = "recognize"
    pure = False
    fail_soft = False

    def __init__(self):
        self.seen = 0

    def __call__(self, p):
        self.seen += 1  # stateful, like the face tracker: must see frames in order
        names = (f"person{p.index}-{self.seen}",) * len(p.faces)
        return dataclasses.replace(p, identities=dataclasses.replace(FaceIdentities.unknown(len(p.faces)),
                                                                     names=names))

    def reset(self):
        pass

    def close(self):
        pass


class Tail:
    name = "style"
    pure = False
    fail_soft = False

    def __call__(self, p):
        assert len(p.detections) == 1 and len(p.faces) == 1, "the tail sees the merged packet"
        return dataclasses.replace(p, decisions=(len(p.detections) + len(p.faces),))

    def reset(self):
        pass

    def close(self):
        pass


def records(out):
    return [(len(o.detections), o.detections.boxes_xyxy.tolist(), o.faces.boxes_xyxy.tolist(), o.identities.names,
             o.decisions) for o in out]


def test_concurrent_branches_give_the_sequential_result_in_order():
    sequential = Pipeline([Detect(), FaceDetect(), Recognize(), Tail()])
    detect, faces = Detect(), FaceDetect()
    concurrent = Pipeline([detect, faces, Recognize(), Tail()],
                          branches=(("detect",), ("face_detect", "recognize")), workers=2)
    assert concurrent.concurrent and not sequential.concurrent
    with sequential, concurrent:
        a = [sequential(packet(i)) for i in range(6)]
        b = [concurrent(packet(i)) for i in range(6)]
    assert records(a) == records(b)
    assert b[5].identities.names == ("person5-6",)
    assert set(b[0].timings_ms) == {"detect", "face_detect", "recognize", "style"}
    assert threading.get_ident() in detect.threads and threading.get_ident() not in faces.threads  # a worker ran
    # the face branch: the two branches really ran on different threads
    assert faces.saw_detections == [0] * 6  # each branch starts from the original packet


def test_an_error_in_a_worker_is_raised_on_the_calling_thread_and_waits_for_the_others():
    class Broken(Detect):
        def __call__(self, p):
            raise RuntimeError("detector exploded")

    pipeline = Pipeline([FaceDetect(), Broken()], branches=(("face_detect",), ("detect",)), workers=2)
    with pipeline, pytest.raises(RuntimeError, match="exploded"):
        pipeline(packet())


def test_branches_that_write_the_same_field_are_refused():
    base = packet()
    one = dataclasses.replace(base, decisions=("a",))
    two = dataclasses.replace(base, decisions=("b",))
    with pytest.raises(ValueError, match="decisions"):
        merge_packets(base, [one, two])
    with pytest.raises(ValueError, match="distinct stages"):
        Pipeline([Detect()], branches=(("detect",), ("detect",)), workers=2)


def test_background_sink_writes_everything_in_order_and_reraises_errors():
    class Collect:
        needs_display = True

        def __init__(self, fail_at=None):
            self.got, self.fail_at, self.closed = [], fail_at, 0

        def write(self, p, display):
            if p.index == self.fail_at:
                raise OSError("disk full")
            self.got.append(p.index)

        def finish(self, result):
            pass

        def close(self):
            self.closed += 1

    inner = Collect()
    sink = BackgroundSink(inner, maxsize=2)
    assert sink.needs_display
    for i in range(50):
        sink.write(packet(i), None)
    sink.close()
    sink.close()
    assert inner.got == list(range(50)) and inner.closed == 1
    bad = BackgroundSink(Collect(fail_at=3), maxsize=1)
    with pytest.raises(SinkError, match="disk full"):
        for i in range(50):
            bad.write(packet(i), None)
    bad.close()


def _jsonl_without_timings(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        record.pop("ms", None)
        out.append(record)
    return out


@pytest.mark.skipif(not (ZOO_DIR / "centerface.onnx").is_file(), reason="needs the shipped face models")
def test_every_policy_gives_the_same_jsonl_with_stage_workers_as_in_sequence(tmp_path):
    from realtime.bench.clips import bench_frames, write_demo_clip
    from realtime.session import annotate

    clip = write_demo_clip(tmp_path / "clip.mp4", seconds=8 / 30, frames=bench_frames)
    common = ["faces.recognize=false", f"faces.gallery={tmp_path / 'g.sqlite'}"]
    if not any(ZOO_DIR.glob("yolo*.onnx")):
        pytest.skip("no shipped detector")
    outs = {}
    for label, workers in (("sequential", 1), ("concurrent", 2)):
        config = load_config(None, [*common, f"runtime.workers={workers}", "runtime.intra_op_threads=1"])
        jsonl = tmp_path / f"{label}.jsonl"
        annotate(config, str(clip), None, jsonl, progress=False)
        outs[label] = _jsonl_without_timings(jsonl)
    assert outs["sequential"] == outs["concurrent"]
    frames = [r for r in outs["sequential"] if "frame" in r]
    assert len(frames) == 8 and sum(len(r["faces"]) for r in frames) >= 8


def test_stages_before_the_branches_run_first_and_the_rest_after():
    seen = []

    class Watch:
        name = "gallery"
        pure = False
        fail_soft = False

        def __call__(self, p):
            seen.append("gallery")
            return dataclasses.replace(p, decisions=("alarm",))

        def reset(self):
            pass

        def close(self):
            pass

    class Check(FaceDetect):
        def __call__(self, p):
            assert p.decisions == ("alarm",), "a branch sees what the leading stage wrote"
            return super().__call__(p)

    class Policy:
        name = "door"
        pure = False
        fail_soft = False

        def __call__(self, p):
            assert len(p.faces) == 1 and len(p.detections) == 1
            return dataclasses.replace(p, decisions=(*p.decisions, "decided"))

        def reset(self):
            pass

        def close(self):
            pass

    with Pipeline([Watch(), Detect(), Check(), Policy()], branches=(("detect",), ("face_detect",)),
                  workers=2) as pipeline:
        out = pipeline(packet())
    assert out.decisions == ("alarm", "decided") and seen == ["gallery"]
    assert next(iter(out.timings_ms)) == "gallery"


class PureDetect(Detect):
    pure = True

    def __init__(self, gate=None):
        super().__init__()
        self.gate = gate
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()

    def __call__(self, p):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(0.02)
            return super().__call__(p)
        finally:
            with self.lock:
                self.active -= 1


class PureFaces(FaceDetect):
    pure = True


class ListSource:
    """Packets from a list, always ready (like an unpaced file)."""

    policy = "every"
    info = SourceInfo("list", "fake")

    def __init__(self, n):
        self.packets = [packet(i) for i in range(n)]
        self.stats = SourceStats()

    def frame_ready(self):
        return True

    def next_packet(self):
        return self.packets.pop(0) if self.packets else None


class Collect:
    needs_display = False

    def __init__(self):
        self.got = []

    def write(self, p, display):
        self.got.append(p)

    def finish(self, result):
        self.result = result

    def close(self):
        pass


def test_frames_overlap_but_complete_in_order_with_the_sequential_result():
    from realtime.pipeline import run_loop

    sequential = Pipeline([Detect(), FaceDetect(), Recognize(), Tail()])
    detect = PureDetect()
    overlapped = Pipeline([detect, PureFaces(), Recognize(), Tail()], workers=2, in_flight=3)
    assert overlapped.pipelined and not sequential.pipelined
    out = {}
    for label, pipeline in (("sequential", sequential), ("overlapped", overlapped)):
        sink = Collect()
        with pipeline:
            result = run_loop(ListSource(9), pipeline, [sink])
        assert result.frames == 9 and str(result.reason) == "end"
        out[label] = sink.got
    assert [p.index for p in out["overlapped"]] == list(range(9))
    assert records(out["sequential"]) == records(out["overlapped"])  # recognition saw frames in order
    assert detect.max_active >= 2  # two frames' detectors really ran at once
    assert set(out["overlapped"][0].timings_ms) == {"detect", "face_detect", "recognize", "style"}


def test_an_overlapped_run_stops_at_the_limit_and_reraises_worker_errors():
    from realtime.pipeline import run_loop

    detect = PureDetect()
    with Pipeline([detect, PureFaces()], workers=2, in_flight=2) as pipeline:
        sink = Collect()
        result = run_loop(ListSource(10), pipeline, [sink], max_frames=4)
    assert result.frames == 4 and len(sink.got) == 4 and str(result.reason) == "limit"
    assert detect.active == 0  # nothing left running after the loop

    class Broken(PureDetect):
        def __call__(self, p):
            if p.index == 2:
                raise RuntimeError("detector exploded")
            return super().__call__(p)

    with Pipeline([Broken(), PureFaces()], workers=2, in_flight=2) as pipeline:
        sink = Collect()
        with pytest.raises(RuntimeError, match="exploded"):
            run_loop(ListSource(6), pipeline, [sink])
    assert [p.index for p in sink.got] == [0, 1]


def test_a_detector_that_carries_boxes_is_not_pure():
    from realtime.detect.yolo import ObjectDetection

    class D:
        def detect(self, frame):
            return Detections()

        def close(self):
            pass

    assert ObjectDetection(D()).pure and not ObjectDetection(D(), every=2).pure
    from realtime.face.detector import FaceDetector

    assert FaceDetector.pure


def test_a_live_source_keeps_one_frame_in_flight_when_frames_in_flight_is_auto():
    from realtime.pipeline import run_loop
    from realtime.threads import plan_threads
    from realtime.config import RuntimeConfig

    auto = plan_threads(RuntimeConfig(), cores=2)
    assert (auto.in_flight, auto.live_in_flight) == (2, 1)
    explicit = plan_threads(RuntimeConfig(frames_in_flight=3), cores=2)
    assert (explicit.in_flight, explicit.live_in_flight) == (3, 3)

    class LiveSource(ListSource):
        policy = "latest"

    detect = PureDetect()
    with Pipeline([detect, PureFaces(), Recognize(), Tail()], workers=2, in_flight=3, live_in_flight=1) as pipeline:
        result = run_loop(LiveSource(6), pipeline, [Collect()])
    assert result.frames == 6 and detect.max_active == 1  # no second frame started while one was in flight
