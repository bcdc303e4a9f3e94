"""What produced a result, for the JSONL header line: the model files (with their sha256), the thresholds in
effect and the config fingerprint (:func:`realtime.batch.ledger.config_fingerprint`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from realtime.config import ZOO_DIR, Config
from realtime.runtime import file_sha256
from realtime.serialize import ModelFile, RunHeader
from realtime.types import SourceInfo, Stage

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def cached_sha256(path: Path) -> str:
    """``path``'s sha256, remembered while its size and modification time stay the same (a run header per input
    in a batch does not hash every model again)."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = file_sha256(Path(path))
    return _SHA_CACHE[key]


def model_files(config: Config) -> dict[str, Path]:
    """Role -> file of every model the pipeline for ``config`` opens (detector, face detector, embedder, dlib
    landmarks, cohort, styles)."""
    from realtime.build import model_path

    files: dict[str, Path] = {}
    if config.detector.enabled:
        path = model_path(config.detector.model, "detector", required=bool(config.detector.model))
        if path is not None:
            files["detector"] = path
    if config.faces.enabled:
        files["face_detector"] = model_path(config.faces.detector_model, "face_detector")
        if config.faces.recognize:
            files["face_embedder"] = model_path(config.faces.embedder_model, "face_embedder")
            landmarks = model_path(config.faces.landmarks_model, "face_landmarks", required=False)
            if landmarks is not None and config.faces.alignment != "template5":
                files["face_landmarks"] = landmarks
            if config.faces.cohort:
                from realtime.face.cohort import COHORT_FILE

                files["face_cohort"] = ZOO_DIR / COHORT_FILE
    if config.style.enabled:
        folder = Path(config.style.model_dir) if config.style.model_dir else ZOO_DIR
        for path in sorted(folder.glob("style_*.onnx")):
            files[f"style/{path.stem}"] = path
    return {role: Path(path) for role, path in files.items() if path is not None}


def thresholds(config: Config, stages: tuple[Stage, ...] = ()) -> dict[str, Any]:
    """The thresholds in effect, by config section. The face match threshold is the recogniser's (the model's
    own when ``faces.match_threshold`` is unset)."""
    from realtime.face.recognition import FaceRecognition

    d, t, f = config.detector, config.tracking, config.faces
    out: dict[str, Any] = {}
    if d.enabled:
        out["detector"] = {"score_threshold": d.score_threshold, "iou_threshold": d.iou_threshold,
                           "class_score_thresholds": dict(d.class_score_thresholds)}
        if t.enabled:
            out["tracking"] = {"iou_threshold": t.iou_threshold, "low_score_threshold": t.low_score_threshold}
    if f.enabled:
        faces: dict[str, Any] = {"score_threshold": f.score_threshold, "iou_threshold": f.iou_threshold}
        if f.recognize:
            faces["match_threshold"] = f.match_threshold
            faces["match_margin"] = f.match_margin
            for stage in stages:
                if isinstance(stage, FaceRecognition):
                    faces["match_threshold"] = float(stage.match_threshold)
                    faces["match_margin"] = float(stage.match_margin)
        out["faces"] = faces
    return out


def run_header(config: Config, source: SourceInfo | None, stages: tuple[Stage, ...] = ()) -> RunHeader:
    """The header of a run of ``config`` on ``source`` with the pipeline's ``stages``."""
    import realtime
    from realtime.batch.ledger import config_fingerprint

    models = {role: ModelFile(path.name, cached_sha256(path)) for role, path in model_files(config).items()
              if path.is_file()}
    return RunHeader(version=realtime.__version__, source=source, models=models,
                     thresholds=thresholds(config, stages), config_fingerprint=config_fingerprint(config),
                     decimals=config.output.jsonl_decimals)
