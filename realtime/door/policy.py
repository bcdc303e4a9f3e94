"""Door decisions over a face track: quality gates per frame, votes, majority, cooldowns, access windows.

Never from one frame. The recognition stage ("recognize") embeds tracked faces and says so in the packet
(``identities.embedded``, with ``names``, ``distances`` and ``second_distances`` of that embedding); a name is
already subject to the door's match threshold and margin (door mode builds the recogniser with them).
:class:`DoorPolicy` reads only the packet: per track, an embedding on a frame that passed the quality gates (size,
sharpness, roughly frontal from the 5 landmarks) is a *vote*; votes since the track's last decision count. Then
:func:`decide_votes`:

- fewer than ``min_frames`` votes: wait ("hold still");
- one enrolled person named in at least ``majority`` of the last ``window_frames`` votes: that person is
  recognised; GRANT if the gallery allows them now, else DENY with the reason (not allowed, outside window);
- at least ``majority`` of the votes are confident non-matches (no name and distance ``>= deny_threshold``, or an
  empty gallery): DENY, unknown person;
- anything else: no decision yet.

After a decision the track is not decided again for ``track_cooldown_s`` and the person not for ``cooldown_s``
(both on the source clock, ``packet.t_source``); the decision stays on screen meanwhile. Fail secure: an access
lookup that fails gives an alarm and never a GRANT, and while an alarm stands in the packet (put there by an
earlier stage, e.g. the gallery watch) no face is decided at all. There is no liveness check.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np

from realtime.door.events import DENY, GRANT, WAIT, DoorAlarm, DoorDecision
from realtime.errors import ConfigError, RtvError
from realtime.gallery.schedule import schedule_allows
from realtime.types import FaceIdentities, FramePacket

SHARPNESS_SIZE = 96


@dataclass(frozen=True)
class DoorRules:
    """The decision rules (from ``door`` config plus the threshold in use).

    ``match_threshold``/``match_margin``: what the recogniser used to name a face (the audit records the threshold
    and the margin the votes actually achieved: median second-best minus best distance);
    ``deny_threshold``: a frame with no name whose best distance is at least this is a confident non-match.
    """

    min_frames: int = 5
    window_frames: int = 10
    majority: float = 0.6
    min_face_px: float = 60.0
    min_sharpness: float = 20.0
    max_yaw: float = 0.35
    max_roll_deg: float = 20.0
    match_threshold: float = 0.6
    match_margin: float = 0.04
    deny_threshold: float = 0.7
    cooldown_s: float = 10.0
    track_cooldown_s: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.min_frames, int) or self.min_frames < 1:
            raise ConfigError(f"door.min_frames={self.min_frames!r}: must be an integer >= 1")
        if not isinstance(self.window_frames, int) or self.window_frames < self.min_frames:
            raise ConfigError(f"door.window_frames={self.window_frames!r}: must be an integer >= door.min_frames "
                              f"({self.min_frames})")
        if not 0.5 < self.majority <= 1.0:
            raise ConfigError(f"door.majority={self.majority!r}: must be in (0.5, 1] (a strict majority)")
        for name in ("min_face_px", "min_sharpness", "max_yaw", "max_roll_deg", "cooldown_s", "track_cooldown_s",
                     "match_margin"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"door.{name}={value!r}: must be a finite number >= 0")
        if not 0 < self.match_threshold <= self.deny_threshold:
            raise ConfigError(f"door.deny_threshold={self.deny_threshold!r} must be >= the match threshold in use "
                              f"({self.match_threshold:g}) and that must be > 0; raise door.deny_threshold")


@dataclass(frozen=True)
class FaceQuality:
    """Quality of one face in one frame. ``yaw``: nose offset from the face's midline over the eye distance
    (0 frontal, ~0.5 half profile); ``roll_deg``: tilt of the eye line; ``sharpness``: variance of the Laplacian of
    the grey face crop scaled to 96x96."""

    height_px: float
    sharpness: float
    yaw: float
    roll_deg: float
    ok: bool
    problem: str = ""


def landmark_pose(landmarks5: np.ndarray) -> tuple[float, float]:
    """``(yaw, roll_deg)`` from ``landmarks5``: float (5, 2) (eyes, nose, mouth corners; image left first).

    Roll is the eye line's angle. Yaw: with the points rotated so the eyes are level, the nose's horizontal offset
    from the midline (mean of the eye and mouth-corner midpoints) divided by the eye distance, absolute value.
    Degenerate landmarks (eyes on one point) give ``(inf, 0)``.
    """
    p = np.asarray(landmarks5, dtype=np.float64).reshape(5, 2)
    eye_l, eye_r, nose, mouth_l, mouth_r = p
    d = eye_r - eye_l
    eye_dist = float(np.hypot(*d))
    if eye_dist < 1e-6:
        return math.inf, 0.0
    roll = math.atan2(d[1], d[0])
    c, s = math.cos(-roll), math.sin(-roll)
    rot = np.array([[c, -s], [s, c]])
    q = (p - eye_l) @ rot.T
    midline = 0.5 * (0.5 * (q[0, 0] + q[1, 0]) + 0.5 * (q[3, 0] + q[4, 0]))
    yaw = abs(q[2, 0] - midline) / eye_dist
    return float(yaw), float(math.degrees(roll))


def face_sharpness(frame_bgr: np.ndarray, box_xyxy: np.ndarray) -> float:
    """Variance of the Laplacian of the face crop (grey, resized to 96x96); 0 for an empty crop."""
    h, w = frame_bgr.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in box_xyxy)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return 0.0
    crop = cv2.cvtColor(np.ascontiguousarray(frame_bgr[y1:y2, x1:x2]), cv2.COLOR_BGR2GRAY)
    crop = cv2.resize(crop, (SHARPNESS_SIZE, SHARPNESS_SIZE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(crop, cv2.CV_64F).var())


def face_quality(frame_bgr: np.ndarray, box_xyxy: np.ndarray, landmarks5: np.ndarray, rules: DoorRules
                 ) -> FaceQuality:
    """Size, sharpness and pose of one face against the rules; ``problem`` says the first gate that failed."""
    height = float(box_xyxy[3] - box_xyxy[1])
    yaw, roll = landmark_pose(landmarks5)
    sharpness = face_sharpness(frame_bgr, box_xyxy)
    problem = ""
    if height < rules.min_face_px:
        problem = "come closer"
    elif yaw > rules.max_yaw or abs(roll) > rules.max_roll_deg:
        problem = "face the camera"
    elif sharpness < rules.min_sharpness:
        problem = "hold still"
    return FaceQuality(height, sharpness, yaw, roll, not problem, problem)


@dataclass(frozen=True)
class Vote:
    """One embedding of a good frame: the name the recogniser gave (None: no match) and the best distance."""

    frame_index: int
    identity: str | None
    distance: float
    second_distance: float | None = None


@dataclass(frozen=True)
class Verdict:
    """What the votes say: ``kind`` GRANT-candidate ("match"), "unknown" (confident non-match) or "wait"."""

    kind: str
    person: str | None
    distance: float
    used: int
    agreeing: int
    reason: str
    margin: float = math.nan


def decide_votes(votes: Sequence[Vote], rules: DoorRules) -> Verdict:
    """Pure rule over a track's votes (oldest first); only the last ``window_frames`` count. See module doc."""
    window = list(votes)[-rules.window_frames:]
    n = len(window)
    if n < rules.min_frames:
        return Verdict("wait", None, math.nan, n, 0, f"hold still ({n}/{rules.min_frames} good frames)")
    needed = rules.majority * n
    names = Counter(v.identity for v in window if v.identity is not None)
    if names:
        person, count = names.most_common(1)[0]
        if count >= needed:
            agreeing = [v for v in window if v.identity == person]
            dist = float(np.median([v.distance for v in agreeing]))
            gaps = [v.second_distance - v.distance for v in agreeing if v.second_distance is not None]
            margin = float(np.median(gaps)) if gaps else math.nan
            return Verdict("match", person, dist, n, count, f"{count}/{n} frames match {person}", margin)
    unknown = [v for v in window if v.identity is None and (math.isnan(v.distance) or
                                                            v.distance >= rules.deny_threshold)]
    if len(unknown) >= needed:
        finite = [v.distance for v in unknown if not math.isnan(v.distance)]
        dist = float(np.median(finite)) if finite else math.nan
        return Verdict("unknown", None, dist, n, len(unknown),
                       f"unknown person ({len(unknown)}/{n} frames match nobody)")
    return Verdict("wait", None, math.nan, n, 0, "hold still (not sure yet)")


@dataclass(frozen=True)
class Access:
    """A person's door access from the gallery: allowed flag and schedule windows (None: any time)."""

    allowed: bool
    schedule: Sequence[Mapping[str, str]] | None = None


class _TrackState:
    __slots__ = ("votes", "since", "blocked_until", "shown", "last_seen")

    def __init__(self, max_votes: int) -> None:
        self.votes: deque[Vote] = deque(maxlen=max_votes)
        self.since = -1
        self.blocked_until = -math.inf
        self.shown: DoorDecision | None = None
        self.last_seen = -1


class DoorPolicy:
    """Stage "door", placed after "recognize": one :class:`DoorDecision` per face in ``packet.decisions``.

    Everything it needs comes in the packet (see the module doc). ``access(name) -> Access``: read from the gallery at decision time; a
    :class:`RtvError` there gives a :class:`DoorAlarm` and a DENY. ``now()``: local wall-clock time for schedules.
    """

    name = "door"
    pure = False
    fail_soft = False
    FORGET_AFTER_FRAMES = 300

    def __init__(self, rules: DoorRules, access: Callable[[str], Access],
                 now: Callable[[], datetime] = datetime.now) -> None:
        self.rules = rules
        self._access = access
        self._now = now
        self._tracks: dict[int, _TrackState] = {}
        self._person_until: dict[str, tuple[float, DoorDecision]] = {}

    def __call__(self, packet: FramePacket) -> FramePacket:
        faces = packet.faces
        ids = packet.identities if packet.identities is not None else FaceIdentities.unknown(len(faces))
        t = float(packet.t_source)
        out: list[Any] = []
        alarm = next((d for d in packet.decisions if isinstance(d, DoorAlarm)), None)
        if alarm is not None:  # fail secure: while an alarm stands (e.g. the gallery), nothing is decided
            self._tracks.clear()
            for i in range(len(faces)):
                track_id = int(ids.track_ids[i])
                out.append(DoorDecision(WAIT, track_id, None, f"door locked: {alarm.kind} alarm",
                                        tuple(float(v) for v in faces.boxes_xyxy[i]), frame_index=packet.index))
            return dataclasses.replace(packet, decisions=tuple(packet.decisions) + tuple(out))
        for i in range(len(faces)):
            track_id = int(ids.track_ids[i])
            box = tuple(float(v) for v in faces.boxes_xyxy[i])
            if track_id < 0:
                out.append(DoorDecision(WAIT, -1, None, "not tracked", box, frame_index=packet.index))
                continue
            state = self._tracks.get(track_id)
            if state is None:
                state = self._tracks[track_id] = _TrackState(2 * self.rules.window_frames)
            state.last_seen = packet.index
            quality = face_quality(packet.frame_bgr, faces.boxes_xyxy[i], faces.landmarks5[i], self.rules)
            if quality.ok and ids.embedded[i]:
                state.votes.append(Vote(packet.index, ids.names[i], float(ids.distances[i]),
                                        float(ids.second_distances[i])))
            if t < state.blocked_until and state.shown is not None:
                out.append(dataclasses.replace(state.shown, box_xyxy=box, new=False, frame_index=packet.index))
                continue
            out.extend(self._decide(packet, track_id, state, box, quality, t))
        self._forget(packet.index)
        return dataclasses.replace(packet, decisions=tuple(packet.decisions) + tuple(out))

    def _decide(self, packet: FramePacket, track_id: int, state: _TrackState, box: tuple[float, ...],
                quality: FaceQuality, t: float) -> list[Any]:
        rules = self.rules
        votes = [v for v in state.votes if v.frame_index > state.since]
        verdict = decide_votes(votes, rules)
        common = dict(track_id=track_id, box_xyxy=box, distance=verdict.distance, frames_used=verdict.used,
                      frames_agreeing=verdict.agreeing, threshold=rules.match_threshold, frame_index=packet.index)
        if verdict.kind == "wait":
            reason = verdict.reason if quality.ok or verdict.used >= rules.min_frames else \
                f"{quality.problem} ({verdict.used}/{rules.min_frames} good frames)"
            return [DoorDecision(WAIT, person=None, reason=reason, **common)]
        extra: list[Any] = []
        if verdict.kind == "unknown":
            decision = DoorDecision(DENY, person=None, reason="unknown person", new=True, **common)
        else:
            person = verdict.person
            held = self._person_until.get(person)
            if held is not None and t < held[0]:
                # A repeat for the same person inside the cooldown: show the standing decision, decide nothing.
                return [dataclasses.replace(held[1], track_id=track_id, box_xyxy=box, new=False,
                                            frame_index=packet.index)]
            common["margin"] = verdict.margin  # achieved: median second-best minus best over the agreeing votes
            try:
                access = self._access(person)
                allowed = access.allowed
                in_window = schedule_allows(access.schedule, self._now())
            except RtvError as exc:
                extra.append(DoorAlarm("gallery", f"access of {person!r} unreadable: {exc}", packet.index))
                allowed, in_window = False, False
                reason = "gallery unreadable"
            else:
                reason = "" if allowed and in_window else ("not allowed" if not allowed else "outside time window")
            verdict_text = GRANT if allowed and in_window else DENY
            decision = DoorDecision(verdict_text, person=person, reason=reason or "recognised", new=True, **common)
            self._person_until[person] = (t + rules.cooldown_s, decision)
        state.since = packet.index
        state.blocked_until = t + rules.track_cooldown_s
        state.shown = decision
        return [decision, *extra]

    def _forget(self, frame_index: int) -> None:
        stale = [k for k, s in self._tracks.items() if frame_index - s.last_seen > self.FORGET_AFTER_FRAMES]
        for k in stale:
            del self._tracks[k]

    def reset(self) -> None:
        """Forget every track's votes and the cooldowns, as for a new video."""
        self._tracks.clear()
        self._person_until.clear()

    def close(self) -> None:
        self._tracks.clear()


