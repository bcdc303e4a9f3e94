"""Every result as JSON, in one place: the JSONL lines (header, one per frame, end), the API's ``to_json()``,
face descriptors and door events. The shapes are the ones ``realtime/schemas/rtv-result.schema.json`` describes;
:data:`SCHEMA_VERSION` changes when a key is renamed, removed or changes meaning (adding a key does not: readers
ignore keys they do not know).

``decimals`` (``output.jsonl_decimals``) is how many decimals pixel coordinates (boxes, landmarks) keep; scores,
distances and times keep at least 4 (more when ``decimals`` asks for more). With ``decimals = 0`` coordinates are
integers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from realtime.types import Detections, FaceDetections, FaceIdentities, FrameEvent, FramePacket, RunResult

if TYPE_CHECKING:
    from realtime.door.events import DoorDecision

SCHEMA_VERSION = 1
SCHEMA_NAME = "rtv-result"
HEADER_KEY = "rtv"   # the header line is {"rtv": {...}}
END_KEY = "end"      # the end line is {"end": {...}}
DEFAULT_DECIMALS = 2


def _coord(value: float, decimals: int) -> float | int:
    return int(round(float(value))) if decimals <= 0 else round(float(value), decimals)


def _fine(value: float, decimals: int) -> float | None:
    """A score, distance or time: at least 4 decimals; None for NaN (JSON has no NaN); inf stays a large number
    would mislead, so it is None too."""
    value = float(value)
    if not math.isfinite(value):
        return None
    return round(value, max(4, decimals))


def box_json(box_xyxy: Iterable[float], decimals: int = DEFAULT_DECIMALS) -> list[float | int]:
    """``[x1, y1, x2, y2]`` in source pixels."""
    return [_coord(v, decimals) for v in box_xyxy]


def points_json(points: np.ndarray, decimals: int = DEFAULT_DECIMALS) -> list[list[float | int]]:
    """``[[x, y], ...]`` in source pixels."""
    return [[_coord(x, decimals), _coord(y, decimals)] for x, y in np.asarray(points).reshape(-1, 2)]


def detections_json(detections: Detections, decimals: int = DEFAULT_DECIMALS) -> list[dict[str, Any]]:
    """One ``{"box", "score", "class"[, "track"][, "continued"]}`` per detection (``track`` only where the tracker
    confirmed it; ``continued: true`` for a box below its class's threshold kept only because it continued a
    confirmed track)."""
    out = []
    for i in range(len(detections)):
        entry: dict[str, Any] = {"box": box_json(detections.boxes_xyxy[i], decimals),
                                 "score": _fine(detections.scores[i], decimals),
                                 "class": detections.class_name(i)}
        if detections.track_ids[i] >= 0:
            entry["track"] = int(detections.track_ids[i])
        if detections.continued[i]:
            entry["continued"] = True
        out.append(entry)
    return out


def faces_json(faces: FaceDetections, identities: FaceIdentities | None,
               decimals: int = DEFAULT_DECIMALS) -> list[dict[str, Any]]:
    """One object per face: ``box``, ``score``, ``landmarks`` (the detector's 5 points), ``identity`` and
    ``distance`` (null without recognition or before the face's first embedding); with recognition also
    ``second_distance``, ``embedded``, ``track`` (where tracked), ``track_identity``, ``votes``, ``voters`` and, on
    frames where the face was embedded with dlib's alignment, ``landmarks_dlib`` (integer pixels)."""
    if identities is not None and len(identities) != len(faces):
        raise ValueError(f"{len(identities)} identities for {len(faces)} faces")
    out = []
    for i in range(len(faces)):
        entry: dict[str, Any] = {"box": box_json(faces.boxes_xyxy[i], decimals),
                                 "score": _fine(faces.scores[i], decimals),
                                 "landmarks": points_json(faces.landmarks5[i], decimals),
                                 "identity": None, "distance": None}
        if identities is not None:
            entry["identity"] = identities.names[i]
            entry["distance"] = _fine(identities.distances[i], decimals)
            entry["second_distance"] = _fine(identities.second_distances[i], decimals)
            entry["embedded"] = bool(identities.embedded[i])
            if identities.track_ids[i] >= 0:
                entry["track"] = int(identities.track_ids[i])
            entry["track_identity"] = identities.track_names[i]
            entry["votes"] = int(identities.votes[i])
            entry["voters"] = int(identities.voters[i])
            if np.isfinite(identities.landmarks_dlib5[i]).all():
                entry["landmarks_dlib"] = points_json(identities.landmarks_dlib5[i], 0)
        out.append(entry)
    return out


def face_description_json(box_xyxy: np.ndarray, score: float, landmarks5: np.ndarray,
                          landmarks_dlib5: np.ndarray | None, descriptor: np.ndarray,
                          decimals: int = DEFAULT_DECIMALS) -> dict[str, Any]:
    """One face of a still with its descriptor (``rtv embed``, the API's ``FaceDescription``): ``box``, ``score``,
    ``landmarks``, ``landmarks_dlib`` (integer pixels, or null when the embedder aligns with its template) and
    ``descriptor`` (the embedding, 7 decimals)."""
    dlib = None
    if landmarks_dlib5 is not None and np.isfinite(landmarks_dlib5).all():
        dlib = points_json(landmarks_dlib5, 0)
    return {"box": box_json(box_xyxy, decimals), "score": _fine(score, decimals),
            "landmarks": points_json(landmarks5, decimals), "landmarks_dlib": dlib,
            "descriptor": [round(float(v), 7) for v in descriptor]}


def descriptor_faces_json(faces: FaceDetections, landmarks_dlib5: np.ndarray, vectors: np.ndarray,
                          decimals: int = DEFAULT_DECIMALS) -> list[dict[str, Any]]:
    """Every face of a still with its descriptor (see :func:`face_description_json`)."""
    return [face_description_json(faces.boxes_xyxy[i], faces.scores[i], faces.landmarks5[i], landmarks_dlib5[i],
                                  vectors[i], decimals) for i in range(len(faces))]


def verification_json(distance: float, threshold: float, same_person: bool, boxes_xyxy: Sequence[np.ndarray],
                      chosen: Sequence[str], decimals: int = DEFAULT_DECIMALS) -> dict[str, Any]:
    """A 1:1 answer (``rtv verify``, the API's ``Verification``): the distance, the threshold, the verdict and
    which face of each photo was compared and how it was chosen ("only", "largest" or "box")."""
    return {"distance": round(float(distance), 4), "threshold": float(threshold), "same_person": bool(same_person),
            "faces": [{"box": box_json(box, decimals), "chosen": how} for box, how in zip(boxes_xyxy, chosen)]}


def event_json(event: FrameEvent, decimals: int = DEFAULT_DECIMALS) -> dict[str, Any]:
    """A door decision (``type`` "decision"), alarm ("alarm") or recovery ("recovery") as JSON."""
    from realtime.door.events import DoorAlarm, DoorDecision, DoorRecovery

    if isinstance(event, DoorDecision):
        return _decision_json(event, decimals)
    if isinstance(event, DoorAlarm):
        return {"type": "alarm", "kind": event.kind, "reason": event.reason, "new": event.new}
    if isinstance(event, DoorRecovery):
        return {"type": "recovery", "kind": event.kind, "reason": event.reason, "new": event.new}
    raise TypeError(f"no JSON form for a {type(event).__name__} (add it to realtime.serialize.event_json)")


def _decision_json(d: "DoorDecision", decimals: int) -> dict[str, Any]:
    return {"type": "decision", "verdict": str(d.verdict), "track": d.track_id, "person": d.person,
            "reason": d.reason, "box": box_json(d.box_xyxy, decimals), "distance": _fine(d.distance, decimals),
            "margin": _fine(d.margin, decimals), "frames_used": d.frames_used,
            "frames_agreeing": d.frames_agreeing, "threshold": _fine(d.threshold, decimals), "new": d.new,
            "liveness": d.liveness}


def packet_record(packet: FramePacket, decimals: int = DEFAULT_DECIMALS,
                  extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSONL object for one frame: ``frame``, ``t`` (seconds from the source's start), ``detections``,
    ``faces``; ``decisions`` (door mode), ``style`` and ``ms`` (stage wall times) when there are any; plus
    ``extra``."""
    record: dict[str, Any] = {
        "frame": int(packet.index),
        "t": _fine(packet.t_source, decimals),
        "detections": detections_json(packet.detections, decimals),
        "faces": faces_json(packet.faces, packet.identities, decimals),
    }
    if packet.decisions:
        record["decisions"] = [event_json(d, decimals) for d in packet.decisions]
    if packet.style:
        record["style"] = dict(packet.style)
    if packet.timings_ms:
        record["ms"] = {k: round(float(v), 2) for k, v in packet.timings_ms.items()}
    if extra:
        record.update(extra)
    return record


def end_record(result: RunResult) -> dict[str, Any]:
    """The JSONL's last line: how the run ended and whether every frame the source announced was processed."""
    complete = result.reason == "end" and (not result.expected_frames or result.frames >= result.expected_frames)
    return {END_KEY: {"frames": result.frames, "expected_frames": result.expected_frames or None,
                      "reason": str(result.reason), "complete": complete, "error": result.error}}


def is_frame_record(record: Mapping[str, Any]) -> bool:
    """True for a frame line; False for the header (key ``rtv``) and the end line (key ``end``). Readers skip
    lines by key, never by position."""
    return HEADER_KEY not in record and END_KEY not in record
