"""Object tracking by IoU: stable track ids for detections across frames, so a video's people can be counted.

Each :meth:`ObjectTracker.update` predicts every track's box one frame ahead (its last box moved by its smoothed
velocity), then associates detections with tracks greedily by descending IoU, only within one class:

1. detections with ``score >= high_score_threshold`` against every live track;
2. (ByteTrack's second pass, when ``low_score_threshold`` is set) the remaining *confirmed* tracks against the
   low-score detections (``low_score_threshold <= score < high_score_threshold``). A low-score detection only
   continues a track, never starts one, so an occluded or blurred person keeps their id.

An unmatched high-score detection starts a *tentative* track. A tentative track is confirmed after ``min_hits``
consecutive frames with a detection (then, and only then, it gets its public id: 1, 2, 3, ... in order of
confirmation, so the largest id is the number of objects confirmed so far); a tentative track that misses a frame
is dropped. A confirmed track lives on through up to ``max_age`` consecutive frames without a detection and keeps
its id when it is found again. Ids are never reused.

Greedy association (not Hungarian) is what SORT-like IoU trackers converge to in practice when boxes of one class
rarely overlap twice; it is deterministic: ties go to the older track, then to the lower detection index.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from realtime.boxes import box_iou
from realtime.checks import check_count, check_fraction
from realtime.detect.thresholds import ScoreThresholds
from realtime.errors import ConfigError
from realtime.types import Detections, FramePacket

UNTRACKED = -1


def buffered(boxes_xyxy: np.ndarray, buffer: float) -> np.ndarray:
    """Boxes grown by ``buffer`` times their width and height on every side (same centre).

    ``boxes_xyxy``: float (N, 4) -> float64 (N, 4). Matching on grown boxes ("buffered IoU") lets small or fast
    objects whose boxes no longer overlap frame to frame still continue their tracks.
    """
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    if buffer == 0:
        return b
    pad = np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1) * buffer
    return np.concatenate([b[:, :2] - pad, b[:, 2:] + pad], axis=1)


def greedy_match(iou: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy one-to-one assignment by descending IoU.

    ``iou``: float (T, N) between T tracks and N detections (set an entry to 0 to forbid a pair) -> int64 (N,)
    the row (track) matched to each detection, -1 for none. Pairs with ``iou < iou_threshold`` never match.
    Ties go to the lower row, then the lower column.
    """
    iou = np.asarray(iou, dtype=np.float64)
    owner = np.full(iou.shape[1] if iou.ndim == 2 else 0, -1, dtype=np.int64)
    if iou.size == 0:
        return owner
    rows, cols = np.nonzero(iou >= iou_threshold)
    order = np.lexsort((cols, rows, -iou[rows, cols]))
    used = np.zeros(iou.shape[0], dtype=bool)
    for k in order:
        r, c = rows[k], cols[k]
        if used[r] or owner[c] >= 0:
            continue
        used[r] = True
        owner[c] = r
    return owner


class _Track:
    __slots__ = ("key", "track_id", "class_id", "box_xyxy", "velocity", "hits", "missed")

    def __init__(self, key: int, class_id: int, box_xyxy: np.ndarray) -> None:
        self.key = key
        self.track_id = UNTRACKED  # public id, given when confirmed
        self.class_id = class_id
        self.box_xyxy = box_xyxy
        self.velocity = np.zeros(4)
        self.hits = 1
        self.missed = 0

    @property
    def confirmed(self) -> bool:
        return self.track_id != UNTRACKED

    def predicted(self) -> np.ndarray:
        """The box expected on the next frame: last box plus velocity times the frames since it was seen."""
        return self.box_xyxy + self.velocity * (self.missed + 1)


class ObjectTracker:
    """IoU tracker for object detections. Plain object, one per video stream; not thread-safe.

    ``iou_threshold``: a detection continues a track when the IoU with the track's predicted box is at least this.
    ``max_age``: a confirmed track survives this many consecutive frames without a detection, then ends.
    ``min_hits``: consecutive detected frames before a track is confirmed and gets an id (1 = at once).
    ``high_score_threshold``: detections at least this confident start tracks.
    ``low_score_threshold``: ``None`` for one pass; else ByteTrack's second pass (see the module docstring).
    ``velocity_smoothing``: weight of the newest box motion in the velocity estimate (0 = no motion model).
    """

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 30, min_hits: int = 3,
                 high_score_threshold: float = 0.0, low_score_threshold: float | None = None,
                 velocity_smoothing: float = 0.5, buffer: float = 0.0) -> None:
        self.iou_threshold = check_fraction("tracking.iou_threshold", iou_threshold, allow_zero=False)
        self.max_age = check_count("tracking.max_age", max_age, minimum=0)
        self.min_hits = check_count("tracking.min_hits", min_hits, minimum=1)
        self.high_score_threshold = check_fraction("tracking.high_score_threshold", high_score_threshold, allow_zero=True)
        if low_score_threshold is not None:
            low_score_threshold = check_fraction("tracking.low_score_threshold", low_score_threshold, allow_zero=True)
            if low_score_threshold >= self.high_score_threshold:
                raise ConfigError(f"low_score_threshold ({low_score_threshold:g}) must be below "
                                  f"high_score_threshold ({self.high_score_threshold:g})")
        self.low_score_threshold = low_score_threshold
        self.velocity_smoothing = check_fraction("tracking.velocity_smoothing", velocity_smoothing, allow_zero=True)
        self.buffer = check_fraction("tracking.buffer", buffer, allow_zero=True)
        self._tracks: list[_Track] = []
        self._next_key = 0
        self._next_id = 1

    @property
    def confirmed_count(self) -> int:
        """How many tracks have been confirmed so far (the largest id given)."""
        return self._next_id - 1

    @property
    def active_ids(self) -> tuple[int, ...]:
        """Ids of the live confirmed tracks (seen, or missed at most ``max_age`` frames), oldest first."""
        return tuple(t.track_id for t in self._tracks if t.confirmed)

    def reset(self) -> None:
        """Forget every track (e.g. after a source reconnects). Ids keep increasing."""
        self._tracks.clear()

    def update(self, boxes_xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
               high: np.ndarray | None = None, low: np.ndarray | None = None) -> np.ndarray:
        """Associate one frame's detections with the tracks.

        ``boxes_xyxy``: float (N, 4) source pixels; ``scores``: float (N,); ``class_ids``: int (N,).
        ``high``/``low``: bool (N,) masks of the detections for the first and the second pass, when the caller
        decides them (per-class thresholds, :class:`realtime.detect.thresholds.ScoreThresholds`); left out, they
        come from ``high_score_threshold`` and ``low_score_threshold``.
        Returns int64 (N,): the confirmed track id of each detection, or -1 (:data:`UNTRACKED`) for a detection of
        a track not yet confirmed, or a low-score detection that continued no track.
        """
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        classes = np.asarray(class_ids, dtype=np.int64).reshape(-1)
        if not len(boxes) == len(scores) == len(classes):
            raise ValueError(f"boxes ({len(boxes)}), scores ({len(scores)}) and class_ids ({len(classes)}) "
                             "must have one entry per detection")
        if high is None:
            high = scores >= self.high_score_threshold
        high = np.asarray(high, dtype=bool).reshape(-1)
        if low is None:
            low = ~high & (scores >= self.low_score_threshold) if self.low_score_threshold is not None \
                else np.zeros(len(boxes), dtype=bool)
        low = np.asarray(low, dtype=bool).reshape(-1) & ~high
        if not len(high) == len(low) == len(boxes):
            raise ValueError(f"high ({len(high)}) and low ({len(low)}) masks must have one entry per detection")
        owner = np.full(len(boxes), -1, dtype=np.int64)  # index into self._tracks

        tracks = self._tracks
        first = np.flatnonzero(high)
        self._match(np.arange(len(tracks)), first, boxes, classes, owner)
        if low.any():
            taken = set(owner[owner >= 0].tolist())
            rest = np.asarray([k for k, t in enumerate(tracks) if t.confirmed and k not in taken], dtype=np.int64)
            self._match(rest, np.flatnonzero(low), boxes, classes, owner)

        matched = set(owner[owner >= 0].tolist())
        survivors: list[_Track] = []
        for k, track in enumerate(tracks):
            if k in matched:
                survivors.append(track)
                continue
            track.missed += 1
            if track.confirmed and track.missed <= self.max_age:
                survivors.append(track)
        ids = np.full(len(boxes), UNTRACKED, dtype=np.int64)
        for i in range(len(boxes)):
            if owner[i] >= 0:
                track = tracks[int(owner[i])]
                self._observe(track, boxes[i])
            elif high[i]:
                track = _Track(self._next_key, int(classes[i]), boxes[i].copy())
                self._next_key += 1
                survivors.append(track)
            else:
                continue
            if not track.confirmed and track.hits >= self.min_hits:
                track.track_id = self._next_id
                self._next_id += 1
            ids[i] = track.track_id
        survivors.sort(key=lambda t: t.key)
        self._tracks = survivors
        return ids

    def _match(self, track_rows: np.ndarray, det_rows: np.ndarray, boxes: np.ndarray, classes: np.ndarray,
               owner: np.ndarray) -> None:
        """Greedy IoU matching of ``self._tracks[track_rows]`` with ``boxes[det_rows]`` within a class; fills
        ``owner[det] = track row`` in place."""
        if not len(track_rows) or not len(det_rows):
            return
        tracks = [self._tracks[int(k)] for k in track_rows]
        predicted = np.stack([t.predicted() for t in tracks])
        iou = box_iou(buffered(predicted, self.buffer), buffered(boxes[det_rows], self.buffer))
        same_class = np.asarray([t.class_id for t in tracks])[:, None] == classes[det_rows][None, :]
        picked = greedy_match(np.where(same_class, iou, 0.0), self.iou_threshold)
        for j, row in enumerate(picked):
            if row >= 0:
                owner[det_rows[j]] = track_rows[row]

    def _observe(self, track: _Track, box: np.ndarray) -> None:
        step = (box - track.box_xyxy) / (track.missed + 1)
        a = self.velocity_smoothing
        track.velocity = (1.0 - a) * track.velocity + a * step
        track.box_xyxy = box.copy()
        track.hits = track.hits + 1 if track.missed == 0 else 1
        track.missed = 0


class ObjectTracking:
    """Pipeline stage ``track``: fills ``packet.detections.track_ids`` (after the ``detect`` stage).

    ``thresholds``: the detector's :class:`ScoreThresholds` (the one owner of what is shown). A detection at least
    its class's threshold is shown and may start a track; with a second pass, one below it (but at least the low
    threshold) is kept only when it continued a confirmed track, and is then marked ``continued`` (drawn as a
    held track, not as a detection). Without ``thresholds`` the tracker's own scalar thresholds decide.
    """

    name = "track"
    pure = False
    fail_soft = False

    def __init__(self, tracker: ObjectTracker, thresholds: ScoreThresholds | None = None):
        self.tracker = tracker
        self._tracker_as_built = copy.deepcopy(tracker)  # what reset() starts from
        self.thresholds = thresholds

    def reset(self) -> None:
        """Start over as for a new video: the tracker as it was built (no tracks; ids from 1 again)."""
        self.tracker = copy.deepcopy(self._tracker_as_built)

    def _passes(self, det: Detections) -> tuple[np.ndarray, np.ndarray]:
        """bool (N,) masks: shown (first pass) and second-pass candidates."""
        if self.thresholds is None:
            high = det.scores >= self.tracker.high_score_threshold
            low = self.tracker.low_score_threshold
            return high, (~high & (det.scores >= low)) if low is not None else np.zeros(len(det), bool)
        high = self.thresholds.shown(det.scores, det.class_ids)
        return high, ~high & self.thresholds.candidates(det.scores, det.class_ids)

    def __call__(self, packet: FramePacket) -> FramePacket:
        det = packet.detections
        high, low = self._passes(det)
        ids = self.tracker.update(det.boxes_xyxy, det.scores, det.class_ids, high=high, low=low)
        continued = ~high & (ids != UNTRACKED)
        keep = high | continued
        out = Detections(boxes_xyxy=det.boxes_xyxy[keep], scores=det.scores[keep], class_ids=det.class_ids[keep],
                         class_names=det.class_names, track_ids=ids[keep], continued=continued[keep])
        return dataclasses.replace(packet, detections=out)

    def close(self) -> None:
        pass
