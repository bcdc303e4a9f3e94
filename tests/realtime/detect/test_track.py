"""The object tracker: golden association cases, confirmation, misses, max age, class switches, ByteTrack's pass."""

import numpy as np
import pytest

from realtime.detect.track import UNTRACKED, ObjectTracker, ObjectTracking, greedy_match
from realtime.errors import ConfigError
from realtime.serialize import detections_json
from realtime.types import Detections, FramePacket

PERSON, CAR = 0, 2


def box(x, y, w=40, h=80):
    return [x, y, x + w, y + h]


def step(tracker, boxes, classes=None, scores=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    classes = np.zeros(n, np.int64) if classes is None else np.asarray(classes, np.int64)
    scores = np.full(n, 0.9, np.float32) if scores is None else np.asarray(scores, np.float32)
    return tracker.update(boxes, scores, classes).tolist()


def test_greedy_match_takes_the_best_pair_first_and_respects_the_threshold():
    iou = np.array([[0.9, 0.6, 0.0],
                    [0.8, 0.7, 0.0],
                    [0.0, 0.0, 0.2]])
    # (0,0) first at 0.9, then row 1 cannot take column 0 and takes column 1 (0.7); 0.2 is below 0.3
    assert greedy_match(iou, 0.3).tolist() == [0, 1, -1]
    assert greedy_match(iou, 0.15).tolist() == [0, 1, 2]
    assert greedy_match(np.zeros((0, 3)), 0.3).tolist() == [-1, -1, -1]
    assert greedy_match(np.zeros((2, 0)), 0.3).tolist() == []


def test_greedy_match_ties_go_to_the_lower_row_then_column():
    iou = np.array([[0.5, 0.5], [0.5, 0.5]])
    assert greedy_match(iou, 0.3).tolist() == [0, 1]


def test_min_hits_then_ids_in_order_of_confirmation():
    tracker = ObjectTracker(min_hits=3)
    assert step(tracker, [box(0, 0), box(200, 0)]) == [UNTRACKED, UNTRACKED]
    assert step(tracker, [box(2, 0), box(202, 0)]) == [UNTRACKED, UNTRACKED]
    assert step(tracker, [box(4, 0), box(204, 0)]) == [1, 2]
    assert step(tracker, [box(206, 0), box(6, 0)]) == [2, 1]  # order of detections does not matter
    assert tracker.confirmed_count == 2


def test_min_hits_one_confirms_at_once():
    tracker = ObjectTracker(min_hits=1)
    assert step(tracker, [box(0, 0)]) == [1]


def test_a_tentative_track_that_misses_a_frame_is_forgotten():
    tracker = ObjectTracker(min_hits=2)
    step(tracker, [box(0, 0)])
    step(tracker, [])
    assert step(tracker, [box(0, 0)]) == [UNTRACKED]  # starts over: one hit
    assert step(tracker, [box(0, 0)]) == [1]


def test_id_is_stable_through_misses_up_to_max_age():
    tracker = ObjectTracker(min_hits=1, max_age=3, velocity_smoothing=0.0)
    assert step(tracker, [box(100, 100)]) == [1]
    for _ in range(3):
        assert step(tracker, []) == []
    assert tracker.active_ids == (1,)
    assert step(tracker, [box(101, 100)]) == [1]


def test_a_track_unseen_for_more_than_max_age_ends_and_its_id_is_not_reused():
    tracker = ObjectTracker(min_hits=1, max_age=2)
    assert step(tracker, [box(100, 100)]) == [1]
    for _ in range(3):
        step(tracker, [])
    assert tracker.active_ids == ()
    assert step(tracker, [box(100, 100)]) == [2]


def test_max_age_zero_ends_a_track_on_its_first_miss():
    tracker = ObjectTracker(min_hits=1, max_age=0)
    step(tracker, [box(0, 0)])
    step(tracker, [])
    assert step(tracker, [box(0, 0)]) == [2]


def test_class_switch_starts_a_new_track_and_the_old_one_ages():
    tracker = ObjectTracker(min_hits=1, max_age=1)
    assert step(tracker, [box(0, 0)], [PERSON]) == [1]
    assert step(tracker, [box(0, 0)], [CAR]) == [2]  # same place, another class: never the person's track
    assert tracker.active_ids == (1, 2)
    step(tracker, [box(0, 0)], [CAR])
    assert tracker.active_ids == (2,)  # the person's track missed twice > max_age
    assert step(tracker, [box(0, 0)], [PERSON]) == [3]


def test_two_objects_crossing_keep_their_ids_with_the_motion_model():
    tracker = ObjectTracker(min_hits=1, iou_threshold=0.3)
    a, b = [], []
    for t in range(12):
        xa, xb = 0 + 16 * t, 180 - 16 * t  # they pass each other around t = 5.6
        ids = step(tracker, [box(xa, 0), box(xb, 10)])
        a.append(ids[0])
        b.append(ids[1])
    assert set(a) == {1} and set(b) == {2}


def test_a_moving_object_skipping_a_frame_is_found_where_it_went():
    tracker = ObjectTracker(min_hits=1, iou_threshold=0.5, velocity_smoothing=1.0)
    for t in range(4):
        assert step(tracker, [box(10 * t, 0)]) == [1]
    step(tracker, [])  # missed at x = 40
    assert step(tracker, [box(50, 0)]) == [1]  # IoU with the last seen box (x = 30) is 1/3
    frozen = ObjectTracker(min_hits=1, iou_threshold=0.5, velocity_smoothing=0.0)
    for t in range(4):
        step(frozen, [box(10 * t, 0)])
    step(frozen, [])
    assert step(frozen, [box(50, 0)]) == [2]


def test_greedy_association_prefers_the_higher_overlap():
    tracker = ObjectTracker(min_hits=1, velocity_smoothing=0.0)
    assert step(tracker, [box(0, 0), box(30, 0)]) == [1, 2]
    # one detection overlaps both tracks; it goes to the one it overlaps more (track 2 at x=30)
    assert step(tracker, [box(26, 0)]) == [2]


def test_bytetrack_low_score_detections_continue_tracks_but_never_start_them():
    tracker = ObjectTracker(min_hits=1, high_score_threshold=0.5, low_score_threshold=0.1)
    assert step(tracker, [box(0, 0)], scores=[0.9]) == [1]
    assert step(tracker, [box(1, 0), box(300, 0)], scores=[0.2, 0.2]) == [1, UNTRACKED]
    assert step(tracker, [box(300, 0)], scores=[0.2]) == [UNTRACKED]
    assert step(tracker, [box(2, 0)], scores=[0.05]) == [UNTRACKED]  # below the low threshold: ignored
    one_pass = ObjectTracker(min_hits=1, high_score_threshold=0.5)
    step(one_pass, [box(0, 0)], scores=[0.9])
    assert step(one_pass, [box(1, 0)], scores=[0.2]) == [UNTRACKED]


def test_bytetrack_first_pass_takes_high_scores_before_low_ones():
    tracker = ObjectTracker(min_hits=1, high_score_threshold=0.5, low_score_threshold=0.1)
    step(tracker, [box(0, 0)], scores=[0.9])
    # a low-score box overlapping more and a high-score one overlapping less: the high one wins the track
    assert step(tracker, [box(0, 0), box(8, 0)], scores=[0.3, 0.8]) == [UNTRACKED, 1]


def test_bad_settings_and_inputs():
    with pytest.raises(ConfigError, match="iou_threshold"):
        ObjectTracker(iou_threshold=0)
    with pytest.raises(ConfigError, match="min_hits"):
        ObjectTracker(min_hits=0)
    with pytest.raises(ConfigError, match="max_age"):
        ObjectTracker(max_age=-1)
    with pytest.raises(ConfigError, match="low_score_threshold"):
        ObjectTracker(high_score_threshold=0.3, low_score_threshold=0.5)
    with pytest.raises(ValueError, match="one entry per detection"):
        ObjectTracker().update(np.zeros((2, 4)), np.zeros(1), np.zeros(2))


def _packet(index, boxes, scores, classes=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    classes = np.zeros(len(boxes), np.int64) if classes is None else np.asarray(classes, np.int64)
    det = Detections(boxes, np.asarray(scores, np.float32), classes, ("person", "bicycle", "car"))
    return FramePacket(index=index, t_capture=0.0, t_source=0.0, frame_bgr=np.zeros((8, 8, 3), np.uint8),
                       detections=det)


def test_stage_fills_track_ids_and_json_has_track():
    stage = ObjectTracking(ObjectTracker(min_hits=2))
    first = stage(_packet(0, [box(0, 0)], [0.9]))
    assert first.detections.track_ids.tolist() == [UNTRACKED]
    assert "track" not in detections_json(first.detections)[0]
    second = stage(_packet(1, [box(1, 0)], [0.9]))
    assert second.detections.track_ids.dtype == np.int64
    assert detections_json(second.detections)[0] == {"box": [1.0, 0.0, 41.0, 80.0], "score": 0.9, "class": "person",
                                              "track": 1}


def test_stage_with_bytetrack_drops_low_score_detections_that_continue_nothing():
    from realtime.detect.thresholds import score_thresholds

    stage = ObjectTracking(ObjectTracker(min_hits=1), score_thresholds(("person",), 0.5, low_score_threshold=0.1))
    stage(_packet(0, [box(0, 0)], [0.9]))
    out = stage(_packet(1, [box(1, 0), box(300, 0)], [0.3, 0.3])).detections
    assert len(out) == 1 and out.track_ids.tolist() == [1] and out.scores.tolist() == [pytest.approx(0.3)]
    # the box kept only to continue the track is marked, in the arrays and in the JSONL
    assert out.continued.tolist() == [True] and detections_json(out)[0]["continued"] is True


def test_untracked_detections_get_minus_one_ids_by_default():
    det = Detections(np.zeros((2, 4), np.float32), np.ones(2, np.float32), np.zeros(2, np.int64), ("person",))
    assert det.track_ids.tolist() == [-1, -1] and det.track_ids.dtype == np.int64
    assert len(Detections().track_ids) == 0


def test_buffered_boxes_grow_around_the_centre():
    from realtime.detect.track import buffered

    np.testing.assert_allclose(buffered(np.array([[10, 20, 30, 60]]), 0.5), [[0, 0, 40, 80]])
    np.testing.assert_allclose(buffered(np.array([[10, 20, 30, 60]]), 0.0), [[10, 20, 30, 60]])


def test_buffered_iou_keeps_a_small_fast_object_on_its_track():
    # a 10x20 box moving 8 px a frame: IoU 0.11 frame to frame, 0.43 with the boxes grown by half
    plain = ObjectTracker(min_hits=1, velocity_smoothing=0.0)
    grown = ObjectTracker(min_hits=1, velocity_smoothing=0.0, buffer=0.5)
    plain_ids = [step(plain, [box(8 * t, 0, 10, 20)])[0] for t in range(5)]
    grown_ids = [step(grown, [box(8 * t, 0, 10, 20)])[0] for t in range(5)]
    assert plain_ids == [1, 2, 3, 4, 5] and grown_ids == [1, 1, 1, 1, 1]


def test_second_pass_is_off_when_its_threshold_is_not_below_the_detectors():
    from realtime.build import second_pass
    from realtime.config import load_config

    assert second_pass(load_config(None)) == pytest.approx(0.1)
    assert second_pass(load_config(None, ["detector.score_threshold=0.1"])) is None
    assert second_pass(load_config(None, ["tracking.low_score_threshold=null"])) is None
    assert second_pass(load_config(None, ["tracking.enabled=false"])) is None
