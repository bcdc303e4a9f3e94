"""The data that flows through the pipeline: a frozen frame packet and its results.

Stages never mutate a packet; they return ``dataclasses.replace(packet, ...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

import numpy as np


def _empty(shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


@dataclass(frozen=True)
class Detections:
    """Object detections in source pixels.

    ``boxes_xyxy``: float32 (N, 4); ``scores``: float32 (N,); ``class_ids``: int64 (N,);
    ``class_names``: the model's class list (index with ``class_ids``); ``track_ids``: int64 (N,) the object
    tracker's confirmed track id, -1 where untracked (left empty, it is filled with -1).
    """

    boxes_xyxy: np.ndarray = field(default_factory=lambda: _empty((0, 4)))
    scores: np.ndarray = field(default_factory=lambda: _empty((0,)))
    class_ids: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))
    class_names: tuple[str, ...] = ()
    track_ids: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))

    def __post_init__(self) -> None:
        if len(self.track_ids) == 0 and len(self.scores):
            object.__setattr__(self, "track_ids", np.full(len(self.scores), -1, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.scores)

    def class_name(self, i: int) -> str:
        cid = int(self.class_ids[i])
        return self.class_names[cid] if 0 <= cid < len(self.class_names) else str(cid)

    def to_json(self) -> list[dict[str, Any]]:
        out = []
        for i in range(len(self)):
            entry: dict[str, Any] = {"box": [round(float(v), 2) for v in self.boxes_xyxy[i]],
                                     "score": round(float(self.scores[i]), 4), "class": self.class_name(i)}
            if i < len(self.track_ids) and self.track_ids[i] >= 0:
                entry["track"] = int(self.track_ids[i])
            out.append(entry)
        return out


@dataclass(frozen=True)
class Faces:
    """Faces in source pixels.

    ``boxes_xyxy``: float32 (N, 4); ``scores``: float32 (N,); ``landmarks5``: float32 (N, 5, 2) as
    (eye on image left, eye on image right, nose tip, mouth corner image left, mouth corner image right);
    ``identities``: name or None per face (with recognition: the face track's voted identity); ``distances``:
    float32 (N,) the newest embedding's distance to the nearest enrolled person, NaN where not matched;
    ``track_ids``: int64 (N,), -1 where untracked. Recognition also fills ``frame_identities`` (the newest embedding's
    own decision per face), ``votes`` and ``voters`` (int64 (N,): ``votes`` of the track's last ``voters`` results
    agree with its identity); left empty otherwise.
    """

    boxes_xyxy: np.ndarray = field(default_factory=lambda: _empty((0, 4)))
    scores: np.ndarray = field(default_factory=lambda: _empty((0,)))
    landmarks5: np.ndarray = field(default_factory=lambda: _empty((0, 5, 2)))
    identities: tuple[str | None, ...] = ()
    distances: np.ndarray = field(default_factory=lambda: _empty((0,)))
    track_ids: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))
    frame_identities: tuple[str | None, ...] = ()
    votes: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))
    voters: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))

    def __len__(self) -> int:
        return len(self.scores)

    def to_json(self) -> list[dict[str, Any]]:
        out = []
        for i in range(len(self)):
            identity = self.identities[i] if i < len(self.identities) else None
            distance = float(self.distances[i]) if i < len(self.distances) else float("nan")
            entry = {
                "box": [round(float(v), 2) for v in self.boxes_xyxy[i]],
                "score": round(float(self.scores[i]), 4),
                "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks5[i]],
                "identity": identity,
                "distance": None if np.isnan(distance) else round(distance, 4),
            }
            if i < len(self.track_ids) and self.track_ids[i] >= 0:
                entry["track"] = int(self.track_ids[i])
            if i < len(self.votes):
                entry["votes"] = int(self.votes[i])
                entry["voters"] = int(self.voters[i])
            if i < len(self.frame_identities):
                entry["frame_identity"] = self.frame_identities[i]
            out.append(entry)
        return out


@dataclass(frozen=True)
class FramePacket:
    """One frame and everything computed about it so far.

    ``frame_bgr``: uint8 (H, W, 3), never mutated. ``t_capture``: ``time.perf_counter()`` when the frame was read;
    ``t_source``: seconds from the source's start (video timestamp for files). ``timings_ms``: per-stage wall time.
    ``decisions``: door decisions (see ``realtime.door``); ``styled_bgr``: the painted frame, when style is on.
    """

    index: int
    t_capture: float
    t_source: float
    frame_bgr: np.ndarray
    detections: Detections = field(default_factory=Detections)
    faces: Faces = field(default_factory=Faces)
    decisions: tuple[Any, ...] = ()
    styled_bgr: np.ndarray | None = None
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    extras: Mapping[str, Any] = field(default_factory=dict)


class Stage(Protocol):
    """A pipeline stage: one method that maps a packet to a new packet, and ``close()`` (safe to call twice)."""

    name: str

    def __call__(self, packet: FramePacket) -> FramePacket: ...

    def close(self) -> None: ...
