"""Build the pipeline from config: optional stages are left out here, so no stage asks "am I enabled?".

This module only assembles: models are found and opened by role in :mod:`realtime.zoo`."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from realtime.config import Config, FacesConfig
from realtime.errors import ConfigError, GalleryError, ModelError
from realtime.pipeline import Pipeline
from realtime.threads import ThreadPlan, apply_process_threads, plan_threads
from realtime.zoo import (load_face_cohort, match_threshold, model_path, open_face_detector, open_face_embedder,
                          open_model, runtime_options, style_dir)

log = logging.getLogger(__name__)

def analysis_branches(config: Config) -> int:
    """Stage branches that can run at once: object detection and faces (each reads only the original frame)."""
    return max(1, int(config.detector.enabled) + int(config.faces.enabled))


def apply_thread_settings(config: Config) -> ThreadPlan:
    """The thread plan for ``config`` on this machine, with OpenCV's and BLAS's pools set from it (ONNX Runtime's
    go into each session). Called once when a pipeline is built."""
    plan = plan_threads(config.runtime, branches=analysis_branches(config))
    apply_process_threads(plan)
    return plan


def load_gallery_snapshot(faces: FacesConfig, embedder) -> tuple[np.ndarray, np.ndarray]:
    """Vectors and labels of the configured gallery; empty (everyone "unknown") when the file does not exist yet."""
    from realtime.gallery.store import Gallery

    path = Path(faces.gallery)
    contract = embedder.model.contract
    if not path.exists():
        log.warning("gallery %s does not exist yet: every face is 'unknown' (enrol with 'rtv enroll NAME IMAGE')",
                    path)
        return np.zeros((0, contract.embedding_size), np.float32), np.zeros(0, dtype=str)
    with Gallery.open(path, model_sha256=embedder.model.sha256, model_name=contract.name,
                      embedding_size=contract.embedding_size, create=False) as gallery:
        vectors, labels = gallery.vectors()
    log.info("gallery %s: %d embeddings of %d persons", path, len(labels), len(set(labels.tolist())))
    return vectors, labels


def build_face_stages(config: Config, plan: ThreadPlan | None = None) -> list:
    from realtime.face.recognition import FaceRecognition
    from realtime.face.track import FaceTracker, VoteRule

    faces = config.faces
    stages: list = [open_face_detector(faces, config.runtime, plan)]
    if faces.recognize:
        embedder = open_face_embedder(faces, config.runtime, plan)
        try:
            vectors, labels = load_gallery_snapshot(faces, embedder)
            cohort = load_face_cohort(faces, embedder, vectors)
            vote = VoteRule(window=faces.vote_window, name_votes=faces.name_votes, change_votes=faces.change_votes)
        except (GalleryError, ModelError, ConfigError):
            embedder.close()
            stages[0].close()
            raise
        stages.append(FaceRecognition(
            embedder, vectors, labels,
            FaceTracker(reembed_every=faces.reembed_every, reembed_iou=faces.reembed_iou, vote=vote),
            match_threshold=match_threshold(faces, embedder), match_margin=faces.match_margin,
            cohort_vectors=cohort))
    return stages


def build_detector_stage(config: Config, plan: ThreadPlan | None = None):
    """The object-detection stage, or ``None`` when no model is configured and none ships."""
    det = config.detector
    if model_path("detector", det.model, required=bool(det.model)) is None:
        log.info("no object detector model ships yet; detection is left out (set detector.model to use one)")
        return None
    from realtime.detect.yolo import ObjectDetection, YoloDetector

    model = open_model("detector", runtime_options(config.runtime, plan), det.model)
    score_threshold = det.score_threshold
    low = second_pass(config)
    if low is not None:  # ByteTrack's second pass needs the low-score boxes; the tracking stage filters them
        score_threshold = low
    try:  # class_score_thresholds stay hard floors for their classes (no second pass below them)
        detector = YoloDetector(model, input_size=det.input_size, score_threshold=score_threshold,
                                iou_threshold=det.iou_threshold, class_aware=det.class_aware,
                                max_candidates=det.max_candidates, max_detections=det.max_detections,
                                keep_classes=det.classes, class_score_thresholds=det.class_score_thresholds)
    except BaseException:  # a bad detector.classes / input_size: do not leave the session open
        model.close()
        raise
    return ObjectDetection(detector, every=det.every)


def second_pass(config: Config) -> float | None:
    """The low threshold of the tracker's second pass, or None when tracking is off or the threshold is not below
    ``detector.score_threshold`` (then there is nothing for a second pass to see)."""
    low = config.tracking.low_score_threshold
    if not config.tracking.enabled or low is None:
        return None
    if low >= config.detector.score_threshold:
        log.info("tracking.low_score_threshold %g is not below detector.score_threshold %g: one tracking pass",
                 low, config.detector.score_threshold)
        return None
    return low


def build_tracking_stage(config: Config):
    """The object-tracking stage that follows detection (track ids on ``packet.detections``)."""
    from realtime.detect.track import ObjectTracker, ObjectTracking

    tr, det = config.tracking, config.detector
    tracker = ObjectTracker(iou_threshold=tr.iou_threshold, max_age=tr.max_age, min_hits=tr.min_hits,
                            high_score_threshold=det.score_threshold, low_score_threshold=second_pass(config),
                            buffer=tr.buffer)
    return ObjectTracking(tracker, show_score_threshold=det.score_threshold)


def build_pipeline(config: Config) -> Pipeline:
    """Stages in order: detection (and tracking), faces (detect, recognize). Analysis stages all see the original
    frame."""
    plan = apply_thread_settings(config)
    stages: list = []
    try:
        if config.detector.enabled:
            stage = build_detector_stage(config, plan)
            if stage is not None:
                stages.append(stage)
                if config.tracking.enabled:
                    stages.append(build_tracking_stage(config))
        if config.faces.enabled:
            stages.extend(build_face_stages(config, plan))
        if config.style.enabled:  # last: an effect on the displayed frame, analysis never sees it
            from realtime.style.stage import build_style_stage

            stages.append(build_style_stage(config.style, runtime_options(config.runtime, plan),
                                             style_dir(config.style.model_dir)))
    except BaseException:
        for stage in stages:
            stage.close()
        raise
    log.info("pipeline stages: %s", ", ".join(s.name for s in stages) or "(none)")
    names = {s.name for s in stages}
    branches = [group for group in (("detect", "track"), ("face_detect", "recognize")) if group[0] in names]
    branches = [tuple(n for n in group if n in names) for group in branches]
    pipeline = Pipeline(stages, branches=branches if len(branches) > 1 else (), workers=plan.workers,
                        in_flight=plan.in_flight, live_in_flight=plan.live_in_flight)
    pipeline.thread_plan = plan
    log.info("stage workers: %d (%s)", plan.workers, "frames overlap" if pipeline.pipelined else
             "detection beside faces" if pipeline.concurrent else "every stage in sequence")
    return pipeline
