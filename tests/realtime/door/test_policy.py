"""Door policy: pose from landmarks, quality gates, the vote rule, cooldowns, access windows, fail secure."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime

import numpy as np
import pytest

from realtime.door.policy import (DENY, GRANT, WAIT, Access, DoorAlarm, DoorPolicy, DoorRules, Vote, decide_votes,
                                  face_quality, landmark_pose)
from realtime.errors import ConfigError, GalleryError

from realtime.serialize import event_json
from realtime.types import FaceDetections, FaceIdentities, FramePacket

FRONTAL = np.array([[40, 40], [80, 40], [60, 60], [45, 80], [75, 80]], np.float32)


def _rotate(points, degrees, center=(60, 60)):
    a = math.radians(degrees)
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (points - center) @ r.T + center


def test_pose_of_a_frontal_face_is_zero_and_roll_is_the_eye_angle():
    yaw, roll = landmark_pose(FRONTAL)
    assert yaw == pytest.approx(0.0, abs=1e-9) and roll == pytest.approx(0.0, abs=1e-9)
    yaw, roll = landmark_pose(_rotate(FRONTAL, 15))
    assert yaw == pytest.approx(0.0, abs=1e-9) and roll == pytest.approx(15.0)


def test_yaw_is_the_nose_offset_over_the_eye_distance_and_ignores_roll():
    turned = FRONTAL.copy()
    turned[2, 0] += 12  # nose 12 px off the midline, eyes 40 px apart
    assert landmark_pose(turned)[0] == pytest.approx(0.3)
    assert landmark_pose(_rotate(turned, -25))[0] == pytest.approx(0.3)
    assert landmark_pose(np.zeros((5, 2)))[0] == math.inf


def test_quality_gates_name_the_first_problem():
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    flat = np.full((200, 200, 3), 128, np.uint8)
    rules = DoorRules(min_face_px=60)
    box = np.array([20, 20, 120, 120], np.float32)
    assert face_quality(sharp, box, FRONTAL, rules).ok
    assert face_quality(sharp, np.array([20, 20, 60, 60], np.float32), FRONTAL, rules).problem == "come closer"
    turned = FRONTAL.copy()
    turned[2, 0] += 20
    assert face_quality(sharp, box, turned, rules).problem == "face the camera"
    assert face_quality(sharp, box, _rotate(FRONTAL, 30), rules).problem == "face the camera"
    q = face_quality(flat, box, FRONTAL, rules)
    assert q.problem == "hold still" and q.sharpness == 0.0


def _votes(*items):
    return [Vote(i, name, dist) for i, (name, dist) in enumerate(items)]


def test_vote_rule_needs_min_frames_then_a_majority():
    rules = DoorRules(min_frames=5, window_frames=10, majority=0.6)
    assert decide_votes(_votes(*[("ann", 0.3)] * 4), rules).kind == "wait"
    v = decide_votes(_votes(*[("ann", 0.3)] * 3, (None, 0.65), ("bob", 0.4)), rules)
    assert (v.kind, v.person, v.agreeing, v.used) == ("match", "ann", 3, 5)
    assert v.distance == pytest.approx(0.3)
    # 2 of 5 is no majority; an uncertain frame (no name, distance under deny_threshold) is not a DENY vote either.
    assert decide_votes(_votes(("ann", 0.3), ("ann", 0.3), ("bob", .4), (None, .65), (None, .65)), rules).kind == \
        "wait"


def test_vote_rule_denies_confident_non_matches_and_empty_galleries():
    rules = DoorRules(min_frames=3, window_frames=5, majority=0.6, deny_threshold=0.7)
    v = decide_votes(_votes((None, 0.9), (None, 0.8), (None, 0.75), ("ann", 0.5)), rules)
    assert v.kind == "unknown" and v.agreeing == 3 and v.distance == pytest.approx(0.8)
    assert decide_votes(_votes(*[(None, math.nan)] * 3), rules).kind == "unknown"
    assert decide_votes(_votes(*[(None, 0.69)] * 3), rules).kind == "wait"


def test_only_the_last_window_counts():
    rules = DoorRules(min_frames=3, window_frames=4, majority=0.6)
    votes = _votes(*[("ann", 0.3)] * 6, *[("bob", 0.3)] * 3)
    assert decide_votes(votes, rules).person == "bob"


@pytest.mark.parametrize("bad", [dict(min_frames=0), dict(window_frames=3), dict(majority=0.5),
                                 dict(deny_threshold=0.5), dict(cooldown_s=-1.0)])
def test_rules_reject_bad_values_naming_the_key(bad):
    with pytest.raises(ConfigError, match="door."):
        DoorRules(**bad)


class FakeHistory:
    """What the recogniser embedded per (track, frame); the packets carry it (identities.embedded and friends)."""

    def __init__(self):
        self.entries: dict[tuple[int, int], tuple[str | None, float]] = {}

    def add(self, track, frame, identity, distance):
        self.entries[(track, frame)] = (identity, distance)


SHARP = np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)
BOX = np.array([[100, 50, 200, 150]], np.float32)
LANDMARKS = (FRONTAL + [90, 40])[None]


def _packet(index, t, track, frame=SHARP, history=None):
    identity, distance = (None, np.nan)
    embedded = False
    if history is not None and (track, index) in history.entries:
        (identity, distance), embedded = history.entries[(track, index)], True
    faces = FaceDetections(boxes_xyxy=BOX, scores=np.ones(1, np.float32), landmarks5=LANDMARKS.astype(np.float32))
    identities = dataclasses.replace(FaceIdentities.unknown(1), names=(identity,),
                                     distances=np.full(1, distance, np.float32),
                                     second_distances=np.full(1, np.inf if embedded else np.nan, np.float32),
                                     embedded=np.array([embedded]), track_ids=np.array([track], np.int64))
    return FramePacket(index=index, t_capture=t, t_source=t, frame_bgr=frame, faces=faces, identities=identities)


def _run(policy, history, frames, track=1, name="ann", dist=0.3, t0=0.0, start=0):
    out = []
    for k in range(frames):
        i = start + k
        history.add(track, i, name, dist)
        out.append(policy(_packet(i, t0 + 0.1 * k, track, history=history)).decisions[0])
    return out


def test_policy_grants_after_min_frames_then_holds_for_the_cooldowns():
    history = FakeHistory()
    rules = DoorRules(min_frames=3, window_frames=5, cooldown_s=10.0, track_cooldown_s=2.0)
    policy = DoorPolicy(rules, lambda name: Access(True), now=lambda: datetime(2025, 1, 8, 12))
    first = _run(policy, history, 6)
    assert [d.verdict for d in first] == [WAIT, WAIT, GRANT, GRANT, GRANT, GRANT]
    assert [d.new for d in first] == [False, False, True, False, False, False]
    assert first[2].person == "ann" and first[2].frames_used == 3 and first[2].liveness == "none"
    # A new track of the same person within the person cooldown: the standing decision, nothing new.
    again = _run(policy, history, 5, track=2, t0=3.0, start=10)
    assert not any(d.new for d in again) and again[-1].verdict == GRANT and again[-1].track_id == 2
    # After the person cooldown, a fresh track is decided again.
    later = _run(policy, history, 4, track=3, t0=11.0, start=20)
    assert [d.new for d in later] == [False, False, True, False]


def test_policy_never_decides_on_blurred_frames():
    history = FakeHistory()
    policy = DoorPolicy(DoorRules(min_frames=3, window_frames=5), lambda name: Access(True))
    flat = np.full_like(SHARP, 90)
    for i in range(8):
        history.add(1, i, "ann", 0.3)
        d = policy(_packet(i, 0.1 * i, 1, frame=flat, history=history)).decisions[0]
        assert d.verdict == WAIT and d.reason.startswith("hold still")


def test_policy_denies_outside_window_and_not_allowed():
    history = FakeHistory()
    window = [{"days": "mon-fri", "start": "07:00", "end": "20:00"}]
    sunday = DoorPolicy(DoorRules(min_frames=3, window_frames=5), lambda n: Access(True, window),
                        now=lambda: datetime(2025, 1, 12, 12))
    d = _run(sunday, history, 3)[-1]
    assert (d.verdict, d.person, d.reason, d.new) == (DENY, "ann", "outside time window", True)
    history2 = FakeHistory()
    barred = DoorPolicy(DoorRules(min_frames=3, window_frames=5), lambda n: Access(False))
    assert _run(barred, history2, 3)[-1].reason == "not allowed"


def test_policy_fails_secure_when_the_gallery_cannot_be_read():
    history = FakeHistory()

    def broken(name):
        raise GalleryError("gallery is locked")

    policy = DoorPolicy(DoorRules(min_frames=3, window_frames=5), broken)
    for i in range(3):
        history.add(1, i, "ann", 0.3)
        decisions = policy(_packet(i, 0.1 * i, 1, history=history)).decisions
    assert decisions[0].verdict == DENY and decisions[0].reason == "gallery unreadable"
    assert isinstance(decisions[1], DoorAlarm) and "locked" in decisions[1].reason
    assert event_json(decisions[1])["type"] == "alarm"


def test_match_verdict_reports_the_achieved_margin():
    rules = DoorRules(min_frames=3, window_frames=5, majority=0.6)
    votes = [Vote(0, "ann", 0.30, 0.80), Vote(1, "ann", 0.20, 0.90), Vote(2, "ann", 0.25, 0.65),
             Vote(3, None, 0.70, 0.75)]
    verdict = decide_votes(votes, rules)
    assert verdict.kind == "match" and verdict.person == "ann"
    assert verdict.margin == pytest.approx(0.5)  # median of 0.50, 0.70, 0.40
    assert math.isnan(decide_votes(_votes(("ann", 0.3), ("ann", 0.3), ("ann", 0.3)), rules).margin)
