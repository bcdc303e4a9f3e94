"""Every result as JSON, in one place: the JSONL lines (header, one per frame, end), the API's ``to_json()``,
face descriptors and door events. The shapes are the ones ``realtime/schemas/rtv-result.schema.json`` describes;
:data:`SCHEMA_VERSION` changes when a key is renamed, removed or changes meaning (adding a key does not: readers
ignore keys they do not know).

``decimals`` (``output.jsonl_decimals``) is how many decimals pixel coordinates (boxes, landmarks) keep; scores,
distances and times keep at least 4 (more when ``decimals`` asks for more). With ``decimals = 0`` coordinates are
integers.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from realtime.types import (Detections, FaceDetections, FaceIdentities, FrameEvent, FramePacket, RunResult,
                            SourceInfo)

if TYPE_CHECKING:
    from realtime.door.events import DoorDecision

SCHEMA_VERSION = 1
SCHEMA_FILE = "schemas/rtv-result.schema.json"  # package data of ``realtime``
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


@dataclass(frozen=True)
class ModelFile:
    """A model file a run used: its name and sha256."""

    file: str
    sha256: str


@dataclass(frozen=True)
class RunHeader:
    """What produced a JSONL (its first line, see :func:`header_record`; ``realtime.provenance.run_header``
    gathers it): the rtv ``version``, the ``source``, the ``models`` by role, the ``thresholds`` in effect by
    config section, the ``config_fingerprint`` and the coordinates' ``decimals``."""

    version: str
    source: SourceInfo | None
    models: Mapping[str, ModelFile] = field(default_factory=dict)
    thresholds: Mapping[str, Any] = field(default_factory=dict)
    config_fingerprint: str = ""
    decimals: int = DEFAULT_DECIMALS


def header_record(header: RunHeader, frame_wh: tuple[int, int] | None = None) -> dict[str, Any]:
    """The JSONL's first line, ``{"rtv": {...}}``: ``schema`` (:data:`SCHEMA_VERSION`), ``version``, ``source``
    (``description``, ``kind``, ``live``, ``fps``, ``expected_frames``, ``width``, ``height``; null when unknown),
    ``models`` (role -> ``{"file", "sha256"}``), ``thresholds``, ``config`` (the fingerprint) and ``decimals``.
    ``frame_wh``: the first frame's size, used when the source did not announce one."""
    source: dict[str, Any] | None = None
    if header.source is not None:
        info = header.source
        width, height = info.size_wh if info.size_wh[0] > 0 else (frame_wh or (0, 0))
        source = {"description": info.description, "kind": info.kind, "live": info.live, "paced": info.paced,
                  "fps": round(info.fps, 4) if info.fps > 0 else None,
                  "expected_frames": info.expected_frames or None,
                  "width": int(width) or None, "height": int(height) or None}
    return {HEADER_KEY: {"schema": SCHEMA_VERSION, "version": header.version, "source": source,
                         "models": {role: {"file": m.file, "sha256": m.sha256} for role, m in header.models.items()},
                         "thresholds": _plain(header.thresholds), "config": header.config_fingerprint or None,
                         "decimals": int(header.decimals)}}


def _plain(value: Any) -> Any:
    """Mappings, sequences and numbers as plain JSON values (NaN/inf as null)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    return str(value)


def is_frame_record(record: Mapping[str, Any]) -> bool:
    """True for a frame line; False for the header (key ``rtv``) and the end line (key ``end``). Readers skip
    lines by key, never by position."""
    return HEADER_KEY not in record and END_KEY not in record


@dataclass(frozen=True)
class ResultLines:
    """A JSONL read back: its ``header`` (the ``rtv`` object, None when absent), its ``frames`` (one object per
    frame line, in order) and its ``end`` (the ``end`` object, None when the run never finished it)."""

    header: dict[str, Any] | None
    frames: list[dict[str, Any]]
    end: dict[str, Any] | None


def read_result_lines(path: str | os.PathLike) -> ResultLines:
    """Read a JSONL that rtv wrote, telling the header, frame and end lines apart by key (not by position).
    :class:`ValueError` for a line that is not a JSON object."""
    header, end, frames = None, None, []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: not a JSON object")
            if HEADER_KEY in record:
                header = record[HEADER_KEY]
            elif END_KEY in record:
                end = record[END_KEY]
            else:
                frames.append(record)
    return ResultLines(header, frames, end)


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a result line, shipped with the package
    (``realtime/schemas/rtv-result.schema.json``); ``$defs`` holds the parts (``frame``, ``face``, ``detection``,
    ``event``, ``header_line``, ``end_line``, ``described_face``)."""
    from importlib.resources import files

    return json.loads(files("realtime").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


def validate_result_lines(path: str | os.PathLike) -> ResultLines:
    """Check every line of an rtv JSONL against :func:`load_schema` (needs the ``jsonschema`` package: the dev
    extra) and that it has at most one header (first) and one end line (last). :class:`ValueError` naming the
    first bad line; the lines read back when all are good."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    with open(path, encoding="utf-8") as handle:
        lines = [line for line in handle.read().splitlines() if line.strip()]
    for number, line in enumerate(lines, 1):
        record = json.loads(line)
        error = jsonschema.exceptions.best_match(validator.iter_errors(record))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(line)"
            raise ValueError(f"{path}:{number}: {where}: {error.message}")
        if HEADER_KEY in record and number != 1:
            raise ValueError(f"{path}:{number}: a header line after the first line")
        if END_KEY in record and number != len(lines):
            raise ValueError(f"{path}:{number}: an end line before the last line")
    return read_result_lines(path)
