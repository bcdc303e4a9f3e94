"""Thresholds mean what they say: one owner (realtime/detect/thresholds.py) for the detector and the tracker, one
comparison (score >= threshold), a lower class threshold never gives fewer boxes of that class, and the tracker's
low-score continuation neither depends on the shown thresholds nor is shown as a detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from realtime.build import build_pipeline, second_pass
from realtime.config import load_config
from realtime.detect.thresholds import score_thresholds
from realtime.errors import ConfigError
from realtime.types import FramePacket

VTEST = (Path.home() / ".cache" / "rtv" / "registry" / "debian-opencv-doc" / "root" / "usr" / "share" / "doc"
         / "opencv-doc" / "examples" / "data" / "vtest.avi")


def test_one_comparison_and_the_floor_covers_every_pass():
    t = score_thresholds(("person", "car"), 0.5, {"person": 0.4}, low_score_threshold=0.1)
    scores = np.array([0.4, 0.39, 0.5, 0.49, 0.1, 0.09], np.float32)
    classes = np.array([0, 0, 1, 1, 1, 0])
    assert t.shown(scores, classes).tolist() == [True, False, True, False, False, False]
    assert t.candidates(scores, classes).tolist() == [True, True, True, True, True, False]
    assert t.floor == pytest.approx(0.1)
    # a class threshold below the low threshold: the floor follows it, nothing of that class is lost
    assert score_thresholds(("person",), 0.5, {"person": 0.05}, low_score_threshold=0.1).floor == pytest.approx(0.05)
    with pytest.raises(ConfigError, match="dog"):
        score_thresholds(("person",), 0.5, {"dog": 0.3})


def test_the_second_pass_does_not_depend_on_a_lower_class_threshold():
    base = load_config(None)
    lower = load_config(None, ["detector.class_score_thresholds={person: 0.4}"])
    assert second_pass(base) == second_pass(lower) == pytest.approx(0.1)
    # a class threshold above the global one keeps a second pass for that class
    assert second_pass(load_config(None, ["detector.score_threshold=0.1",
                                          "detector.class_score_thresholds={person: 0.6}"])) == pytest.approx(0.1)


def _clip_frames(n: int) -> list[np.ndarray]:
    if VTEST.is_file():
        import cv2

        capture = cv2.VideoCapture(str(VTEST))
        frames = []
        while len(frames) < n:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        capture.release()
        if len(frames) == n:
            return frames
    from realtime.bench.clips import bench_frames

    return list(bench_frames(seconds=n / 30.0))


def _person_counts(overrides: list[str], frames: list[np.ndarray]) -> tuple[list[int], list[int]]:
    """Per frame: person boxes shown as detections, and person boxes kept only to continue a track."""
    config = load_config(None, ["faces.enabled=false", "runtime.providers=cpu", "runtime.workers=1", *overrides])
    shown, held = [], []
    with build_pipeline(config) as pipeline:
        for i, frame in enumerate(frames):
            det = pipeline(FramePacket(i, 0.0, i / 30.0, frame)).detections
            person = np.array([det.class_name(k) == "person" for k in range(len(det))], bool)
            shown.append(int((person & ~det.continued).sum()))
            held.append(int((person & det.continued).sum()))
            assert (det.scores[~det.continued] >= np.float32(config.detector.score_threshold) - 1e-6)[
                ~person[~det.continued]].all()
    return shown, held


def test_a_lower_class_threshold_never_gives_fewer_boxes_of_that_class_on_a_real_clip():
    frames = _clip_frames(12)  # vtest.avi (OpenCV's street clip) when cached, else the scikit-image bench clip
    base_shown, base_held = _person_counts([], frames)
    low_shown, low_held = _person_counts(["detector.class_score_thresholds={person: 0.4}"], frames)
    assert sum(base_shown) > 0
    assert all(lo >= b for lo, b in zip(low_shown, base_shown)), (base_shown, low_shown)
    assert sum(low_shown) + sum(low_held) >= sum(base_shown) + sum(base_held)
