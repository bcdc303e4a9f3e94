"""The data that flows through the pipeline: a frozen frame packet and its results.

Stages never mutate a packet; they return ``dataclasses.replace(packet, ...)``. Every result type checks that each
of its arrays has one row per item, and can be indexed like supervision's ``Detections``: with a boolean mask
(``dets[dets.scores > 0.5]``), an index array, a slice or an int (always giving the same type back). Their JSON form is :mod:`realtime.serialize`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Mapping, Protocol, Sequence, TypeVar

import numpy as np


def _empty(shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


def _check_lengths(owner: str, item: str, n: int, **arrays: Any) -> None:
    """Every named array/tuple has ``n`` rows; a :class:`ValueError` names the first that does not (a bug in a
    stage, not bad input)."""
    for name, value in arrays.items():
        if len(value) != n:
            raise ValueError(f"{owner}.{name} has {len(value)} rows, expected {n} (one per {item})")


IndexLike = int | slice | Sequence[int] | Sequence[bool] | np.ndarray


def row_indices(n: int, index: IndexLike) -> np.ndarray:
    """``index`` (an int, a slice, a boolean mask of length ``n``, or integer indices) as int64 row indices.
    :class:`IndexError` for a mask of another length or an index out of range."""
    if isinstance(index, slice):
        return np.arange(n, dtype=np.int64)[index]
    if isinstance(index, (int, np.integer)) and not isinstance(index, (bool, np.bool_)):
        index = [int(index)]
    arr = np.asarray(index)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise IndexError(f"boolean mask of shape {arr.shape} for {n} rows")
        return np.flatnonzero(arr).astype(np.int64)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise IndexError(f"index must be an int, a slice, a boolean mask or integer indices, got {arr.dtype} "
                         f"{arr.shape}")
    if arr.min() < -n or arr.max() >= n:
        raise IndexError(f"index out of range for {n} rows")
    return arr.astype(np.int64) % max(n, 1)


T = TypeVar("T")


def _take(obj: T, index: IndexLike, per_row: tuple[str, ...]) -> T:
    """A copy of the dataclass ``obj`` with the fields ``per_row`` (arrays or tuples, one row each) reduced to
    ``index``; other fields are kept."""
    rows = row_indices(len(obj), index)  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if f.name in per_row:
            value = tuple(value[i] for i in rows) if isinstance(value, tuple) else value[rows]
        values[f.name] = value
    return type(obj)(**values)


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

    >>> dets[dets.scores > 0.5]            # doctest: +SKIP  (a Detections with the confident rows)
    """

    boxes_xyxy: np.ndarray = field(default_factory=lambda: _empty((0, 4)))
    scores: np.ndarray = field(default_factory=lambda: _empty((0,)))
    class_ids: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))
    class_names: tuple[str, ...] = ()
    track_ids: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))
    continued: np.ndarray = field(default_factory=lambda: _empty((0,), bool))

    _ROWS = ("boxes_xyxy", "scores", "class_ids", "track_ids", "continued")

    def __post_init__(self) -> None:
        n = len(self.scores)
        _check_lengths("Detections", "detection", n, boxes_xyxy=self.boxes_xyxy, class_ids=self.class_ids)
        if len(self.track_ids) == 0 and n:
            object.__setattr__(self, "track_ids", np.full(n, -1, dtype=np.int64))
        if len(self.continued) == 0 and n:
            object.__setattr__(self, "continued", np.zeros(n, dtype=bool))
        _check_lengths("Detections", "detection", n, track_ids=self.track_ids, continued=self.continued)

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: IndexLike) -> "Detections":
        return _take(self, index, self._ROWS)

    def class_name(self, i: int) -> str:
        cid = int(self.class_ids[i])
        return self.class_names[cid] if 0 <= cid < len(self.class_names) else str(cid)


@dataclass(frozen=True)
class FaceDetections:
    """Faces found by the face detector, in source pixels.

    ``boxes_xyxy``: float32 (N, 4); ``scores``: float32 (N,); ``landmarks5``: float32 (N, 5, 2) as (eye on image
    left, eye on image right, nose tip, mouth corner image left, mouth corner image right).
    """

    boxes_xyxy: np.ndarray = field(default_factory=lambda: _empty((0, 4)))
    scores: np.ndarray = field(default_factory=lambda: _empty((0,)))
    landmarks5: np.ndarray = field(default_factory=lambda: _empty((0, 5, 2)))

    _ROWS = ("boxes_xyxy", "scores", "landmarks5")

    def __post_init__(self) -> None:
        _check_lengths("FaceDetections", "face", len(self.scores), boxes_xyxy=self.boxes_xyxy,
                       landmarks5=self.landmarks5)

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: IndexLike) -> "FaceDetections":
        return _take(self, index, self._ROWS)


@dataclass(frozen=True)
class FaceIdentities:
    """Who the detected faces are: one row per face of the :class:`FaceDetections` they belong to (same order).

    ``track_ids``: int64 (N,), the face track (-1 where untracked); ``names``: the open-set match of the face's
    newest embedding, name or None; ``distances``: float32 (N,), that match's best distance (NaN where no embedding
    is known yet); ``second_distances``: float32 (N,), the second-best person's distance (inf with one person
    enrolled, NaN where unknown); ``embedded``: bool (N,), True where the face was embedded on this frame (the door
    votes on those only); ``track_names``: each face track's identity, voted over its recent embeddings with
    hysteresis (what the overlay shows), name or None; ``votes``/``voters``: int64 (N,), ``votes`` of the track's
    last ``voters`` results agree with ``track_names``; ``landmarks_dlib5``: float32 (N, 5, 2), dlib's 5 points
    (eye on image right: outer, inner corner; eye on image left: outer, inner corner; base of the nose) the
    recognition chip was cut from, NaN for faces not embedded on this frame.
    """

    track_ids: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))
    names: tuple[str | None, ...] = ()
    distances: np.ndarray = field(default_factory=lambda: _empty((0,)))
    second_distances: np.ndarray = field(default_factory=lambda: _empty((0,)))
    embedded: np.ndarray = field(default_factory=lambda: _empty((0,), bool))
    track_names: tuple[str | None, ...] = ()
    votes: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))
    voters: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))
    landmarks_dlib5: np.ndarray = field(default_factory=lambda: _empty((0, 5, 2)))

    _ROWS = ("track_ids", "names", "distances", "second_distances", "embedded", "track_names", "votes", "voters",
             "landmarks_dlib5")

    def __post_init__(self) -> None:
        _check_lengths("FaceIdentities", "face", len(self.track_ids),
                       **{name: getattr(self, name) for name in self._ROWS[1:]})

    def __len__(self) -> int:
        return len(self.track_ids)

    def __getitem__(self, index: IndexLike) -> "FaceIdentities":
        return _take(self, index, self._ROWS)

    @classmethod
    def unknown(cls, n: int) -> "FaceIdentities":
        """``n`` faces nobody has looked at: untracked, no name, NaN distances, nothing embedded."""
        nan = np.full(n, np.nan, dtype=np.float32)
        return cls(track_ids=np.full(n, -1, dtype=np.int64), names=(None,) * n, distances=nan,
                   second_distances=nan.copy(), embedded=np.zeros(n, dtype=bool), track_names=(None,) * n,
                   votes=np.zeros(n, dtype=np.int64), voters=np.zeros(n, dtype=np.int64),
                   landmarks_dlib5=np.full((n, 5, 2), np.nan, dtype=np.float32))


class FrameEvent(Protocol):
    """Something a stage decided about a frame, carried in ``FramePacket.decisions`` (door decisions, alarms and
    recoveries: ``realtime.door.events``). ``new``: it happened on this frame (False: still standing)."""

    @property
    def frame_index(self) -> int: ...

    @property
    def new(self) -> bool: ...


@dataclass(frozen=True)
class FramePacket:
    """One frame and everything computed about it so far.

    ``frame_bgr``: uint8 (H, W, 3), never mutated. ``t_capture``: ``time.perf_counter()`` when the frame was read;
    ``t_source``: seconds from the source's start (video timestamp for files). ``timings_ms``: per-stage wall time.
    ``faces``: the face detector's faces; ``identities``: who they are, one row per face (None: no recognition
    ran). ``decisions``: door decisions and alarms (:class:`FrameEvent`); ``styled_bgr``: the painted frame, when
    style is on; ``style``: which style painted it (name, width, height), for the JSONL.
    """

    index: int
    t_capture: float
    t_source: float
    frame_bgr: np.ndarray
    detections: Detections = field(default_factory=Detections)
    faces: FaceDetections = field(default_factory=FaceDetections)
    identities: FaceIdentities | None = None
    decisions: tuple[FrameEvent, ...] = ()
    styled_bgr: np.ndarray | None = None
    style: Mapping[str, Any] | None = None
    timings_ms: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.identities is not None and len(self.identities) != len(self.faces):
            raise ValueError(f"FramePacket.identities has {len(self.identities)} rows, expected {len(self.faces)} "
                             "(one per face)")


@dataclass(frozen=True)
class SourceInfo:
    """What a source says about itself. ``description``: for messages ("video clip.mp4", "camera 0");
    ``kind``: "camera", "stream", "file" or "images"; ``live``: frames arrive in real time (a camera, a stream);
    ``paced``: a file replayed at its own frame rate, as a camera would deliver it; ``fps``: frames per second (0:
    unknown); ``expected_frames``: what the file's header announces (0: unknown); ``size_wh``: frame size (0, 0
    when unknown until the first frame)."""

    description: str
    kind: str
    live: bool = False
    paced: bool = False
    fps: float = 0.0
    expected_frames: int = 0
    size_wh: tuple[int, int] = (0, 0)


class SourceCounts(Protocol):
    """A source's running counters: frames ``read`` from the reader, ``dropped`` (newest-frame policy: frames
    replaced before the loop took them), ``reconnects``."""

    read: int
    dropped: int
    reconnects: int


class FrameSource(Protocol):
    """Everything the run loop uses of a source (``realtime.io.capture.Source`` is the real one).

    ``policy``: "latest" (live: a newer frame replaces one not yet taken) or "every" (files: nothing dropped).
    ``stats``: its counters. ``info``: what it says about itself (read after it is started).
    ``frame_ready()``: :meth:`next_packet` would return at once. ``next_packet()``: the next packet, None at the
    end; a :class:`realtime.errors.SourceError` when reading failed.
    """

    policy: str
    stats: SourceCounts

    @property
    def info(self) -> SourceInfo: ...

    def frame_ready(self) -> bool: ...

    def next_packet(self) -> FramePacket | None: ...


class Stage(Protocol):
    """A pipeline stage: one method that maps a packet to a new packet.

    ``name``: unique in its pipeline (timings, branches, :meth:`realtime.pipeline.Pipeline.find`). ``pure``: it
    reads only the original frame and keeps no state between frames, so frames may overlap in it
    (:meth:`realtime.pipeline.Pipeline.start`). ``fail_soft``: an effect (such as style) that the pipeline turns
    off, with a logged message, when it raises, instead of ending the run. ``reset()``: forget every per-video
    state (tracks, votes, stabilisers), as for a new input. ``close()``: release sessions; safe to call twice.
    """

    name: str
    pure: bool
    fail_soft: bool

    def __call__(self, packet: FramePacket) -> FramePacket: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...
