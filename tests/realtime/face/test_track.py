"""The IoU face tracker: stable ids, greedy association, the re-embedding schedule, dropped tracks, memory."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.errors import ConfigError
from realtime.face.track import FaceTracker, HistoryEntry, Recollection


def _box(x: float, y: float, size: float = 100.0) -> list[float]:
    return [x, y, x + size, y + size]


def _boxes(*items) -> np.ndarray:
    return np.array(items, dtype=np.float32).reshape(-1, 4)


def test_stable_ids_for_moving_faces():
    tracker = FaceTracker()
    ids = []
    for step in range(12):
        # two faces drifting 5 px a frame in opposite directions, given in alternating order
        a, b = _box(100 + 5 * step, 100), _box(600 - 5 * step, 300)
        order = (a, b) if step % 2 == 0 else (b, a)
        update = tracker.update(_boxes(*order))
        assert update.track_ids.dtype == np.int64 and update.needs_embedding.dtype == bool
        got = update.track_ids if step % 2 == 0 else update.track_ids[::-1]
        ids.append(tuple(int(v) for v in got))
    assert set(ids) == {(1, 2)}


def test_new_face_gets_new_id_and_ids_are_not_reused():
    tracker = FaceTracker(max_missed=0)
    assert tracker.update(_boxes(_box(0, 0))).track_ids.tolist() == [1]
    assert tracker.update(_boxes(_box(0, 0), _box(500, 500))).track_ids.tolist() == [1, 2]
    update = tracker.update(_boxes(_box(500, 500)))
    assert update.track_ids.tolist() == [2] and update.dropped_ids.tolist() == [1]
    assert tracker.update(_boxes(_box(0, 0))).track_ids.tolist() == [3]  # same place, but track 1 is gone


def test_greedy_association_prefers_highest_iou():
    tracker = FaceTracker(iou_threshold=0.3)
    tracker.update(_boxes(_box(0, 0), _box(60, 0)))  # tracks 1 (x 0..100) and 2 (x 60..160), overlapping
    # Box A at x=50 overlaps track 1 (IoU 50/150) and track 2 (IoU 90/110); box B at x=0 equals track 1.
    update = tracker.update(_boxes(_box(50, 0), _box(0, 0)))
    assert update.track_ids.tolist() == [2, 1]
    # One box that fits both tracks goes to the better one; the other track is missed, not stolen.
    # Box x=30 has IoU 70/130 with track 1 (x 0..100) and 80/120 with track 2 (now x 50..150).
    update = tracker.update(_boxes(_box(30, 0)))
    assert update.track_ids.tolist() == [2]


def test_iou_threshold_boundary():
    tracker = FaceTracker(iou_threshold=0.5)
    tracker.update(_boxes([0, 0, 100, 100]))
    # [0, 0, 100, 50] has IoU exactly 0.5 with the track: continues it (>=)
    assert tracker.update(_boxes([0, 0, 100, 50])).track_ids.tolist() == [1]
    # [0, 0, 100, 24]: IoU 24/50 < 0.5 -> new track
    assert tracker.update(_boxes([0, 0, 100, 24])).track_ids.tolist() == [2]


def test_lost_tracks_survive_max_missed_then_drop():
    tracker = FaceTracker(max_missed=3)
    face = _boxes(_box(10, 10))
    tracker.update(face)
    for _ in range(3):
        update = tracker.update(_boxes())
        assert update.track_ids.shape == (0,) and update.dropped_ids.size == 0
    assert tracker.active_ids == (1,)
    assert tracker.update(face).track_ids.tolist() == [1]  # back after exactly max_missed misses: same id
    for _ in range(3):
        tracker.update(_boxes())
    update = tracker.update(_boxes())  # the 4th miss drops it
    assert update.dropped_ids.tolist() == [1] and tracker.active_ids == ()
    assert tracker.update(face).track_ids.tolist() == [2]


def test_missing_face_does_not_lose_the_other():
    tracker = FaceTracker(max_missed=2)
    tracker.update(_boxes(_box(0, 0), _box(400, 0)))
    tracker.update(_boxes(_box(400, 0)))
    update = tracker.update(_boxes(_box(2, 0), _box(400, 0)))
    assert update.track_ids.tolist() == [1, 2]


def _embed_all(tracker: FaceTracker, update, name: str = "alice", distance: float = 0.3) -> None:
    for tid, needed in zip(update.track_ids, update.needs_embedding):
        if needed:
            tracker.remember(int(tid), name, distance)


def test_reembed_schedule_every_n_frames():
    tracker = FaceTracker(reembed_every=4)
    flags = []
    for _ in range(10):
        update = tracker.update(_boxes(_box(100, 100)))
        flags.append(bool(update.needs_embedding[0]))
        _embed_all(tracker, update)
    assert flags == [True, False, False, False, True, False, False, False, True, False]


def test_reembed_when_the_box_moved():
    tracker = FaceTracker(iou_threshold=0.3, reembed_every=100, reembed_iou=0.6)
    update = tracker.update(_boxes(_box(0, 0)))
    _embed_all(tracker, update)
    flags = []
    for x in (10, 20, 30):  # IoU with the embedded box: 90/110 = .82, 80/120 = .67, 70/130 = .54
        update = tracker.update(_boxes(_box(x, 0)))
        flags.append(bool(update.needs_embedding[0]))
        assert update.track_ids.tolist() == [1]
    assert flags == [False, False, True]
    _embed_all(tracker, update)  # embedded at x=30: the reference box moves with it
    assert not tracker.update(_boxes(_box(35, 0))).needs_embedding[0]


def test_face_stays_flagged_until_remembered():
    tracker = FaceTracker(reembed_every=100)
    for _ in range(3):
        update = tracker.update(_boxes(_box(0, 0)))
        assert update.needs_embedding.tolist() == [True]  # no result was ever reported for this track
    tracker.remember(1, None, 0.9)
    assert tracker.update(_boxes(_box(0, 0))).needs_embedding.tolist() == [False]


def test_remember_recall_and_history():
    tracker = FaceTracker(history_size=3)
    assert tracker.recall(1) is None and tracker.history(1) == ()
    for frame in (10, 11, 12, 15):
        update = tracker.update(_boxes(_box(0, 0)), frame_index=frame)
        assert update.frame_index == frame
        tracker.remember(1, "bob" if frame % 2 else None, frame / 100)
    assert tracker.recall(1) == Recollection("bob", 0.15, 15)
    identity, distance, _ = tracker.recall(1)
    assert (identity, distance) == ("bob", 0.15)
    assert tracker.history(1) == (HistoryEntry(11, "bob", 0.11), HistoryEntry(12, None, 0.12),
                                  HistoryEntry(15, "bob", 0.15))  # bounded: frame 10 fell out
    with pytest.raises(KeyError, match="track 99"):
        tracker.remember(99, "x", 0.1)
    with pytest.raises(ValueError, match="must increase"):
        tracker.update(_boxes(), frame_index=15)


def test_dropped_track_forgets_identity():
    tracker = FaceTracker(max_missed=0)
    tracker.update(_boxes(_box(0, 0)))
    tracker.remember(1, "carol", 0.2)
    tracker.update(_boxes())
    assert tracker.recall(1) is None and tracker.history(1) == ()


def test_two_trackers_share_nothing():
    a, b = FaceTracker(), FaceTracker()
    a.update(_boxes(_box(0, 0), _box(300, 0)))
    assert b.update(_boxes(_box(0, 0))).track_ids.tolist() == [1]


def test_reset_keeps_ids_increasing():
    tracker = FaceTracker()
    tracker.update(_boxes(_box(0, 0)))
    tracker.reset()
    assert tracker.active_ids == ()
    assert tracker.update(_boxes(_box(0, 0))).track_ids.tolist() == [2]


def test_empty_and_malformed_input():
    tracker = FaceTracker()
    update = tracker.update(np.zeros((0, 4), np.float32))
    assert update.track_ids.shape == (0,) and update.needs_embedding.shape == (0,)
    assert tracker.update([]).track_ids.shape == (0,)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        tracker.update(np.zeros((2, 5)))


@pytest.mark.parametrize("kwargs", [{"iou_threshold": 0.0}, {"iou_threshold": 1.5}, {"reembed_iou": -0.1},
                                    {"max_missed": -1}, {"reembed_every": 0}, {"reembed_every": 2.5},
                                    {"history_size": 0}, {"iou_threshold": "x"}])
def test_bad_settings(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        FaceTracker(**kwargs)


def test_random_walk_ids_follow_true_identity():
    rng = np.random.default_rng(0)
    starts = np.array([[50, 50], [400, 60], [200, 350]], dtype=np.float64)
    tracker = FaceTracker()
    seen: dict[int, int] = {}
    pos = starts.copy()
    for _ in range(60):
        pos += rng.normal(scale=3.0, size=pos.shape)
        perm = rng.permutation(3)
        update = tracker.update(np.array([_box(*pos[j]) for j in perm]))
        for j, tid in zip(perm, update.track_ids):
            assert seen.setdefault(int(j), int(tid)) == int(tid)
    assert sorted(seen.values()) == [1, 2, 3]


# --- identity votes with hysteresis -------------------------------------------------------------------------------

from realtime.face.track import TrackIdentity, VoteRule, vote_identity  # noqa: E402


def _run_votes(results, rule):
    current, out = None, []
    for k in range(len(results)):
        state = vote_identity(results[:k + 1], current, rule)
        current = state.identity
        out.append(state)
    return out


def test_vote_names_a_track_only_when_enough_results_agree():
    rule = VoteRule(window=5, name_votes=3, change_votes=4)
    states = _run_votes(["ann", None, "ann", "bob", "ann"], rule)
    assert [s.identity for s in states] == [None, None, None, None, "ann"]
    assert states[-1] == TrackIdentity("ann", 3, 5)
    assert states[1] == TrackIdentity(None, 1, 2)  # unknown, and one result said so


def test_vote_keeps_a_name_until_a_rival_has_change_votes():
    rule = VoteRule(window=5, name_votes=3, change_votes=4)
    results = ["ann"] * 5 + ["bob"] * 3
    states = _run_votes(results, rule)
    assert [s.identity for s in states[5:]] == ["ann", "ann", "ann"]  # 3 of 5 say bob: not enough to change
    assert states[-1] == TrackIdentity("ann", 2, 5)
    states = _run_votes(results + ["bob"], rule)
    assert states[-1] == TrackIdentity("bob", 4, 5)


def test_vote_falls_back_to_unknown_only_with_change_votes():
    rule = VoteRule(window=5, name_votes=3, change_votes=4)
    states = _run_votes(["ann"] * 5 + [None] * 4, rule)
    assert [s.identity for s in states[5:]] == ["ann", "ann", "ann", None]


def test_vote_flicker_is_absorbed():
    """Per-frame decisions that alternate between a name and unknown never flip the track's identity."""
    rule = VoteRule(window=5, name_votes=3, change_votes=4)
    results = ["ann", "ann", "ann"] + ["ann", None] * 10
    identities = [s.identity for s in _run_votes(results, rule)]
    assert identities[2:] == ["ann"] * (len(results) - 2)


def test_vote_rule_of_one_is_the_last_embedding():
    rule = VoteRule(1, 1, 1)
    assert [s.identity for s in _run_votes(["a", None, "b", "b"], rule)] == ["a", None, "b", "b"]


def test_vote_rule_is_validated():
    with pytest.raises(ConfigError, match="name_votes"):
        VoteRule(window=5, name_votes=4, change_votes=3)
    with pytest.raises(ConfigError, match="vote_window"):
        VoteRule(window=0, name_votes=1, change_votes=1)
    with pytest.raises(ConfigError):
        VoteRule(window=3, name_votes=2, change_votes=4)


def test_tracker_votes_per_track_and_forgets_with_the_track():
    tracker = FaceTracker(max_missed=0, vote=VoteRule(window=3, name_votes=2, change_votes=3))
    tracker.update(_boxes(_box(0, 0)))
    assert tracker.voting(1)
    for name in ("ann", "ann", "ann"):
        tracker.remember(1, name, 0.3)
    assert tracker.identity(1) == TrackIdentity("ann", 3, 3) and not tracker.voting(1)
    tracker.update(_boxes())
    assert tracker.identity(1) == TrackIdentity(None, 0, 0)  # dropped


def test_remember_with_a_far_embedding_restarts_the_vote():
    tracker = FaceTracker(vote=VoteRule(window=3, name_votes=2, change_votes=3), swap_distance=0.6)
    tracker.update(_boxes(_box(0, 0)))
    a, b = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    for vector in (a, a * 0.9):  # 0.1 apart: the same person
        tracker.remember(1, "ann", 0.3, vector=vector)
    assert tracker.identity(1).identity == "ann"
    tracker.remember(1, None, 0.8, vector=b)  # 1.35 from the last one: someone else now
    assert tracker.identity(1) == TrackIdentity(None, 1, 1) and tracker.voting(1)
    assert len(tracker.history(1)) == 3  # the door's history keeps everything
