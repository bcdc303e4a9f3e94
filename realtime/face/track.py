"""A small IoU face tracker: stable ids across frames, and a schedule that says which faces need a new embedding.

Each :meth:`FaceTracker.update` associates this frame's boxes with the live tracks greedily by descending IoU.
A face needs (re-)embedding when its track has never been embedded, when ``reembed_every`` updates have passed since
its last embedding, or when its box has moved (IoU with the box at the last embedding below ``reembed_iou``).
The caller reports each embedding with :meth:`FaceTracker.remember`; that resets the schedule, so a face whose
embedding was skipped (or failed) is asked for again on the next frame.

A track's *identity* is voted from its recent results with hysteresis (:func:`vote_identity`, :class:`VoteRule`),
never taken from whichever embedding came last: ``name_votes`` of the last ``window`` results must agree to name a
track, and ``change_votes`` to change a named track's identity (to another person or back to unknown).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import cv2
import numpy as np

from realtime.boxes import box_iou
from realtime.checks import check_count, check_fraction
from realtime.detect.track import greedy_match
from realtime.errors import ConfigError


class Recollection(NamedTuple):
    """The last identity given to a track: name or None (unknown), its distance, and the frame it was computed."""

    identity: str | None
    distance: float
    frame_index: int


class HistoryEntry(NamedTuple):
    """One embedding result of a track: ``(frame_index, identity, distance, second_distance)``; the last is the
    second-best person's distance (``inf`` with one person enrolled, ``None`` when not given)."""

    frame_index: int
    identity: str | None
    distance: float
    second_distance: float | None = None


THUMB_SIZE = 8
# Mean absolute difference of two standardised thumbnails above which a box holds another face (a cut, or two
# people crossing). Measured on the identity clips of recipes/face_cohort.py: consecutive frames of one face 0.07
# median, 0.53 at the 99th percentile; swaps 0.71-1.29.
APPEARANCE_CHANGE = 0.6


def face_thumbnail(frame_bgr: np.ndarray, box_xyxy: np.ndarray) -> np.ndarray:
    """A tiny standardised grey picture of the box: float32 (8, 8), zero mean, about unit spread (zeros for an
    empty crop). Cheap enough for every face on every frame; compared with :func:`appearance_changed`."""
    h, w = frame_bgr.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in box_xyxy)
    crop = frame_bgr[max(0, y1):min(h, y2), max(0, x1):min(w, x2)]
    if crop.size == 0:
        return np.zeros((THUMB_SIZE, THUMB_SIZE), np.float32)
    small = cv2.resize(crop, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return (grey - grey.mean()) / (grey.std() + 4.0)


def appearance_changed(a: np.ndarray, b: np.ndarray, limit: float = APPEARANCE_CHANGE) -> bool:
    """Whether two :func:`face_thumbnail` results (float32 (8, 8)) differ by more than ``limit`` on average."""
    return bool(np.abs(np.asarray(a) - np.asarray(b)).mean() > limit)


@dataclass(frozen=True)
class VoteRule:
    """Hysteresis for a track's identity over its last ``window`` embedding results.

    An unnamed track is named when ``name_votes`` of those results name one person; a named track changes (to
    another person, or to unknown) only when ``change_votes`` of them say so. ``name_votes <= change_votes <=
    window``; ``VoteRule(1, 1, 1)`` is "the last embedding decides".
    """

    window: int = 5
    name_votes: int = 3
    change_votes: int = 4

    def __post_init__(self) -> None:
        for name in ("window", "name_votes", "change_votes"):
            check_count(f"faces.vote_{name}" if name == "window" else f"faces.{name}", getattr(self, name), minimum=1)
        if not self.name_votes <= self.change_votes <= self.window:
            raise ConfigError(f"identity votes need faces.name_votes ({self.name_votes}) <= faces.change_votes "
                              f"({self.change_votes}) <= vote_window ({self.window})")


class TrackIdentity(NamedTuple):
    """A track's voted identity: name or None (unknown), how many of the last ``voters`` results agree with it."""

    identity: str | None
    votes: int
    voters: int


def vote_identity(recent: Sequence[str | None], current: str | None, rule: VoteRule) -> TrackIdentity:
    """The identity a track holds after its newest result.

    ``recent``: per-embedding identities, oldest first (only the last ``rule.window`` count); ``current``: the
    identity the track held before. Unknown (None) is a candidate like a name, except that it needs no votes to be
    held: an unnamed track stays unknown until ``rule.name_votes`` results name one person. A named track keeps its
    name until another candidate (a person, or unknown) has ``rule.change_votes`` results. Ties between
    candidates go to the one seen most recently.
    """
    window = list(recent)[-rule.window:]
    counts = Counter(window)
    last_seen = {label: k for k, label in enumerate(window)}

    def strongest(labels) -> str | None:
        return max(labels, key=lambda label: (counts[label], last_seen[label]), default=None)

    identity = current
    if current is None:
        name = strongest([label for label in counts if label is not None])
        if name is not None and counts[name] >= rule.name_votes:
            identity = name
    else:
        rivals = [label for label in counts if label != current]
        if rivals:
            rival = strongest(rivals)
            if counts[rival] >= rule.change_votes:
                identity = rival
    return TrackIdentity(identity, counts[identity], len(window))


@dataclass(frozen=True)
class TrackUpdate:
    """Result of one :meth:`FaceTracker.update`.

    ``track_ids``: int64 (N,) one id per input box; ``needs_embedding``: bool (N,); ``dropped_ids``: int64 (K,)
    tracks that ended on this frame (unseen for more than ``max_missed`` updates); ``frame_index``: this frame.
    """

    track_ids: np.ndarray
    needs_embedding: np.ndarray
    dropped_ids: np.ndarray
    frame_index: int


class _Track:
    __slots__ = ("track_id", "box_xyxy", "missed", "embed_box_xyxy", "embed_update", "memory", "history",
                 "identity", "votes", "vector")

    def __init__(self, track_id: int, box_xyxy: np.ndarray, history_size: int, vote_window: int) -> None:
        self.track_id = track_id
        self.box_xyxy = box_xyxy
        self.missed = 0
        self.embed_box_xyxy: np.ndarray | None = None
        self.embed_update = 0
        self.memory: Recollection | None = None
        self.history: deque[HistoryEntry] = deque(maxlen=history_size)
        self.identity = TrackIdentity(None, 0, 0)
        self.votes: deque[str | None] = deque(maxlen=vote_window)
        self.vector: np.ndarray | None = None


class FaceTracker:
    """Greedy IoU tracker for face boxes. Plain object, one per video stream; not thread-safe.

    ``iou_threshold``: a box continues a track when their IoU is ``>= iou_threshold``.
    ``max_missed``: a track survives up to this many consecutive updates without a box, and is dropped on the next
    miss (its id is never reused). ``reembed_every``: updates between embeddings of a steady face.
    ``reembed_iou``: re-embed when the IoU between the box now and the box at the last embedding is below this.
    ``history_size``: how many :class:`HistoryEntry` each track keeps (oldest first out).
    ``vote``: the hysteresis that turns a track's recent results into its identity (:meth:`identity`).
    ``swap_distance``: two successive embeddings of a track further apart than this are two people (see
    :meth:`remember`).
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 5, reembed_every: int = 10,
                 reembed_iou: float = 0.6, history_size: int = 32, vote: VoteRule | None = None,
                 swap_distance: float = 0.6) -> None:
        self.iou_threshold = check_fraction("iou_threshold", iou_threshold, allow_zero=False)
        self.reembed_iou = check_fraction("reembed_iou", reembed_iou, allow_zero=True)
        self.max_missed = check_count("max_missed", max_missed, minimum=0)
        self.reembed_every = check_count("reembed_every", reembed_every, minimum=1)
        self.history_size = check_count("history_size", history_size, minimum=1)
        self.vote = vote or VoteRule()
        self.swap_distance = float(swap_distance)
        self._tracks: dict[int, _Track] = {}
        self._next_id = 1
        self._frame_index = -1
        self._updates = 0

    def update(self, boxes_xyxy: np.ndarray, frame_index: int | None = None) -> TrackUpdate:
        """Associate ``boxes_xyxy``: float (N, 4) source pixels with the tracks; see :class:`TrackUpdate`.

        ``frame_index``: the packet's index (must increase), or None to count updates from 0. Schedules
        (``max_missed``, ``reembed_every``) count updates, not frame indices, so dropped frames do not age tracks.
        """
        boxes = np.asarray(boxes_xyxy, dtype=np.float64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes_xyxy must be (N, 4), got shape {boxes.shape}")
        if frame_index is None:
            frame = self._frame_index + 1
        else:
            frame = int(frame_index)
            if frame <= self._frame_index:
                raise ValueError(f"frame_index must increase: got {frame} after {self._frame_index}")
        self._frame_index = frame
        self._updates += 1

        tracks = list(self._tracks.values())
        owner = self._associate(tracks, boxes)
        seen = set(owner.tolist())
        dropped = []
        for track in tracks:
            if track.track_id in seen:
                continue
            track.missed += 1
            if track.missed > self.max_missed:
                dropped.append(track.track_id)
                del self._tracks[track.track_id]
        track_ids = np.empty(len(boxes), dtype=np.int64)
        needs = np.zeros(len(boxes), dtype=bool)
        for i, box in enumerate(boxes):
            if owner[i] >= 0:
                track = self._tracks[int(owner[i])]
                track.box_xyxy = box
                track.missed = 0
            else:
                track = _Track(self._next_id, box, self.history_size, self.vote.window)
                self._tracks[track.track_id] = track
                self._next_id += 1
            track_ids[i] = track.track_id
            needs[i] = self._needs_embedding(track)
        return TrackUpdate(track_ids=track_ids, needs_embedding=needs,
                           dropped_ids=np.asarray(dropped, dtype=np.int64), frame_index=frame)

    def remember(self, track_id: int, identity: str | None, distance: float,
                 second_distance: float | None = None, vector: np.ndarray | None = None) -> None:
        """Record a fresh embedding result for a live track; resets its re-embedding schedule at its current box.

        ``vector``: float32 (D,) the embedding itself. When it is further than ``swap_distance`` from the track's
        previous embedding, the box now holds someone else (the IoU tracker carried the track over a cut or a
        crossing): the track's vote starts again from this result.
        """
        track = self._tracks.get(int(track_id))
        if track is None:
            raise KeyError(f"track {track_id} is not live (never made, or dropped); remember results right after "
                           "the update that returned it")
        distance = float(distance)
        track.embed_box_xyxy = track.box_xyxy
        track.embed_update = self._updates
        track.memory = Recollection(identity, distance, self._frame_index)
        track.history.append(HistoryEntry(self._frame_index, identity, distance,
                                          None if second_distance is None else float(second_distance)))
        if vector is not None:
            vector = np.asarray(vector, dtype=np.float32).reshape(-1)
            if track.vector is not None and float(np.linalg.norm(vector - track.vector)) > self.swap_distance:
                track.votes.clear()
                track.identity = TrackIdentity(None, 0, 0)
            track.vector = vector
        track.votes.append(identity)
        track.identity = vote_identity(track.votes, track.identity.identity, self.vote)

    def identity(self, track_id: int) -> TrackIdentity:
        """The live track's voted identity (``TrackIdentity(None, 0, 0)`` before any result or for an unknown id)."""
        track = self._tracks.get(int(track_id))
        return TrackIdentity(None, 0, 0) if track is None else track.identity

    def voting(self, track_id: int) -> bool:
        """Whether the live track has fewer than ``vote.window`` results yet (its identity is still forming)."""
        track = self._tracks.get(int(track_id))
        return track is not None and len(track.votes) < self.vote.window

    def unsettled(self, track_id: int) -> bool:
        """Whether the live track's newest result disagrees with its identity (a change may be coming)."""
        track = self._tracks.get(int(track_id))
        return track is not None and bool(track.votes) and track.votes[-1] != track.identity.identity

    def recall(self, track_id: int) -> Recollection | None:
        """The last remembered result of a live track, or None (unknown id, dropped, or never embedded)."""
        track = self._tracks.get(int(track_id))
        return None if track is None else track.memory

    def history(self, track_id: int) -> tuple[HistoryEntry, ...]:
        """The track's recent results, oldest first (at most ``history_size``); empty for an unknown id."""
        track = self._tracks.get(int(track_id))
        return () if track is None else tuple(track.history)

    @property
    def active_ids(self) -> tuple[int, ...]:
        """Ids of live tracks (seen, or missed at most ``max_missed`` times), oldest first."""
        return tuple(self._tracks)

    def reset(self) -> None:
        """Forget every track (e.g. after a source reconnects). Ids keep increasing."""
        self._tracks.clear()

    def _associate(self, tracks: list[_Track], boxes: np.ndarray) -> np.ndarray:
        """Track id per box (-1 for none): greedy over (track, box) pairs by descending IoU >= ``iou_threshold``.

        Ties in IoU go to the older track, then the lower box index, so results are deterministic (the object
        tracker's :func:`realtime.detect.track.greedy_match`).
        """
        if not tracks or not len(boxes):
            return np.full(len(boxes), -1, dtype=np.int64)
        rows = greedy_match(box_iou(np.stack([t.box_xyxy for t in tracks]), boxes), self.iou_threshold)
        track_ids = np.asarray([t.track_id for t in tracks], dtype=np.int64)
        return np.where(rows >= 0, track_ids[rows], -1)

    def _needs_embedding(self, track: _Track) -> bool:
        if track.embed_box_xyxy is None:
            return True
        if self._updates - track.embed_update >= self.reembed_every:
            return True
        moved = box_iou(track.box_xyxy[None], track.embed_box_xyxy[None])[0, 0]
        return bool(moved < self.reembed_iou)


