"""The data that flows through the pipeline: a frozen frame packet and its results.

Stages never mutate a packet; they return ``dataclasses.replace(packet, ...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Mapping, Protocol

import numpy as np

if TYPE_CHECKING:
    from realtime.door.events import DoorAlarm, DoorDecision


def _empty(shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


def _check_lengths(owner: str, n: int, **arrays: Any) -> None:
    """Every named array/tuple has ``n`` rows; a :class:`ValueError` names the first that does not (a bug in a
    stage, not bad input)."""
    for name, value in arrays.items():
        if len(value) != n:
            raise ValueError(f"{owner}.{name} has {len(value)} rows, expected {n} (one per {owner.lower()[:-1]})")


class EndReason(StrEnum):
    """How a run ended."""

    END = "end"                  # the source ended
    LIMIT = "limit"              # --max-frames reached
    QUIT = "quit"                # a key (q/Esc) or the window closed
    INTERRUPTED = "interrupted"  # Ctrl-C
    TERMINATED = "terminated"    # SIGTERM/SIGHUP
    ERROR = "error"              # a source error or a file shorter than its header says
    OUTPUT_ERROR = "output-error"  # an output could not be written (disk full, device gone)


@dataclass(frozen=True)
class RunResult:
    """How a run ended (``reason``) and what happened (``error``, for reason ERROR); ``expected_frames``: what the
    source's header announced (0: unknown)."""

    frames: int
    reason: EndReason
    error: str | None = None
    expected_frames: int = 0


@dataclass(frozen=True)
class Detections:
    """Object detections in source pixels.

    ``boxes_xyxy``: float32 (N, 4); ``scores``: float32 (N,); ``class_ids``: int64 (N,);
    ``class_names``: the model's class list (index with ``class_ids``); ``track_ids``: int64 (N,) the object
    tracker's confirmed track id, -1 where untracked (left empty, it is filled with -1); ``continued``: bool (N,),
    True for a box below its class's score threshold kept only because it continued a confirmed track (drawn as a
    held track, not as a detection; left empty, it is filled with False).
    """

    boxes_xyxy: np.ndarray = field(default_factory=lambda: _empty((0, 4)))
    scores: np.ndarray = field(default_factory=lambda: _empty((0,)))
    class_ids: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))
    class_names: tuple[str, ...] = ()
    track_ids: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))
    continued: np.ndarray = field(default_factory=lambda: _empty((0,), bool))

    def __post_init__(self) -> None:
        n = len(self.scores)
        _check_lengths("Detections", n, boxes_xyxy=self.boxes_xyxy, class_ids=self.class_ids)
        if len(self.track_ids) == 0 and n:
            object.__setattr__(self, "track_ids", np.full(n, -1, dtype=np.int64))
        if len(self.continued) == 0 and n:
            object.__setattr__(self, "continued", np.zeros(n, dtype=bool))
        _check_lengths("Detections", n, track_ids=self.track_ids, continued=self.continued)

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
            if self.continued[i]:
                entry["continued"] = True
            out.append(entry)
        return out


@dataclass(frozen=True)
class Faces:
    """Faces in source pixels.

    ``boxes_xyxy``: float32 (N, 4); ``scores``: float32 (N,); ``landmarks5``: float32 (N, 5, 2) as
    (eye on image left, eye on image right, nose tip, mouth corner image left, mouth corner image right);
    ``identities``: name or None per face (the open-set match of the face's latest embedding); ``distances``:
    float32 (N,), best distance, NaN where not matched; ``second_distances``: float32 (N,), the second-best
    person's distance (inf with one person enrolled, NaN where not matched); ``embedded``: bool (N,), True where
    the face was embedded on this frame (the door votes on those only); ``track_ids``: int64 (N,), -1 where
    untracked. With recognition, ``track_identities`` holds each face track's identity, voted over its recent
    embeddings with hysteresis (what the overlay shows), and ``votes``/``voters`` (int64 (N,)) say that ``votes`` of
    the track's last ``voters`` results agree with it. ``landmarks_dlib5``: float32 (N, 5, 2), dlib's 5 points
    (eye on image right: outer, inner corner; eye on image left: outer, inner corner; base of the nose) the
    recognition chip was cut from, NaN for faces not embedded on this frame. Arrays after ``scores`` may be empty
    (not computed yet: detection only) or have one row per face.
    """

    boxes_xyxy: np.ndarray = field(default_factory=lambda: _empty((0, 4)))
    scores: np.ndarray = field(default_factory=lambda: _empty((0,)))
    landmarks5: np.ndarray = field(default_factory=lambda: _empty((0, 5, 2)))
    identities: tuple[str | None, ...] = ()
    distances: np.ndarray = field(default_factory=lambda: _empty((0,)))
    track_ids: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))
    second_distances: np.ndarray = field(default_factory=lambda: _empty((0,)))
    embedded: np.ndarray = field(default_factory=lambda: _empty((0,), bool))
    track_identities: tuple[str | None, ...] = ()
    votes: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))
    voters: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))
    landmarks_dlib5: np.ndarray = field(default_factory=lambda: _empty((0, 5, 2)))

    def __post_init__(self) -> None:
        n = len(self.scores)
        _check_lengths("Faces", n, boxes_xyxy=self.boxes_xyxy, landmarks5=self.landmarks5)
        optional = {"identities": self.identities, "distances": self.distances, "track_ids": self.track_ids,
                    "second_distances": self.second_distances, "embedded": self.embedded,
                    "track_identities": self.track_identities, "votes": self.votes, "voters": self.voters,
                    "landmarks_dlib5": self.landmarks_dlib5}
        _check_lengths("Faces", n, **{k: v for k, v in optional.items() if len(v)})

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
            if i < len(self.track_identities):
                entry["track_identity"] = self.track_identities[i]
                entry["votes"] = int(self.votes[i])
                entry["voters"] = int(self.voters[i])
            if i < len(self.landmarks_dlib5) and np.isfinite(self.landmarks_dlib5[i]).all():
                entry["landmarks_dlib"] = [[int(round(float(x))), int(round(float(y)))]
                                           for x, y in self.landmarks_dlib5[i]]
            out.append(entry)
        return out


@dataclass(frozen=True)
class FramePacket:
    """One frame and everything computed about it so far.

    ``frame_bgr``: uint8 (H, W, 3), never mutated. ``t_capture``: ``time.perf_counter()`` when the frame was read;
    ``t_source``: seconds from the source's start (video timestamp for files). ``timings_ms``: per-stage wall time.
    ``decisions``: door decisions and alarms (``realtime.door.events``); ``styled_bgr``: the painted frame, when
    style is on; ``style``: which style painted it (name, width, height), for the JSONL.
    """

    index: int
    t_capture: float
    t_source: float
    frame_bgr: np.ndarray
    detections: Detections = field(default_factory=Detections)
    faces: Faces = field(default_factory=Faces)
    decisions: tuple["DoorDecision | DoorAlarm", ...] = ()
    styled_bgr: np.ndarray | None = None
    style: Mapping[str, Any] | None = None
    timings_ms: Mapping[str, float] = field(default_factory=dict)


class Stage(Protocol):
    """A pipeline stage: one method that maps a packet to a new packet, and ``close()`` (safe to call twice)."""

    name: str

    def __call__(self, packet: FramePacket) -> FramePacket: ...

    def close(self) -> None: ...
