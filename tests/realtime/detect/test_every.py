"""detector.every: the detector runs on one frame in N, boxes are carried between; the agreement measure."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.bench.every import interval_agreement, match_count
from realtime.config import load_config
from realtime.detect.yolo import ObjectDetection
from realtime.errors import ConfigError
from realtime.types import Detections, FramePacket


class CountingDetector:
    def __init__(self):
        self.calls = 0

    def detect(self, frame):
        self.calls += 1
        v = float(self.calls)
        return Detections(np.array([[v, v, v + 10, v + 10]], np.float32), np.array([0.9], np.float32),
                          np.array([0]), ("thing",))

    def close(self):
        pass


def packet(i, shape=(48, 64, 3)):
    return FramePacket(index=i, t_capture=0.0, t_source=0.0, frame_bgr=np.zeros(shape, np.uint8))


def test_every_n_runs_the_detector_on_one_frame_in_n_and_carries_the_boxes():
    det = CountingDetector()
    stage = ObjectDetection(det, every=3)
    out = [stage(packet(i)) for i in range(7)]
    assert det.calls == 3  # frames 0, 3, 6
    firsts = [float(o.detections.boxes_xyxy[0, 0]) for o in out]
    assert firsts == [1, 1, 1, 2, 2, 2, 3]
    stage(packet(7, shape=(96, 128, 3)))  # another frame size is always detected
    assert det.calls == 4
    one = ObjectDetection(CountingDetector())
    [one(packet(i)) for i in range(4)]
    assert one.detector.calls == 4
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError):
            ObjectDetection(CountingDetector(), every=bad)
    assert load_config(None, ["detector.every=5"]).detector.every == 5
    with pytest.raises(ConfigError, match="detector.every"):
        load_config(None, ["detector.every=0"])


def dets(boxes, classes):
    return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.ones(len(classes), np.float32),
                      np.asarray(classes, np.int64), ("a", "b"))


def test_agreement_counts_same_class_overlaps_one_to_one():
    ref = dets([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 1])
    assert match_count(ref, ref) == 2
    assert match_count(ref, dets([[0, 0, 10, 10]], [1])) == 0  # right box, wrong class
    assert match_count(ref, dets([[0, 0, 10, 10], [1, 1, 11, 11]], [0, 0])) == 1  # one-to-one
    assert match_count(ref, dets([[5, 0, 15, 10]], [0])) == 0  # IoU 1/3 < 0.5
    moving = [dets([[x, 0, x + 10, 10]], [0]) for x in (0, 1, 6, 7)]
    assert interval_agreement(moving, 1)["f1"] == 1.0
    r = interval_agreement(moving, 2)  # frame 1 carries frame 0 (IoU 0.82), frame 3 carries 2 (0.82)
    assert r["f1"] == 1.0 and r["frames_identical"] == 1.0
    r = interval_agreement(moving, 4)  # frames 2 and 3 carry frame 0: IoU 0.25 and 0.18
    assert r["precision"] == r["recall"] == 0.5 and r["detector_runs_per_frame"] == 0.25
