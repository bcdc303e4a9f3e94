"""Build the pipeline from config: optional stages are left out here, so no stage asks "am I enabled?"."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from realtime.config import ZOO_DIR, Config, FacesConfig, RuntimeConfig
from realtime.errors import ConfigError, GalleryError, ModelError
from realtime.pipeline import Pipeline
from realtime.runtime import OnnxModel, RuntimeOptions
from realtime.threads import ThreadPlan, apply_process_threads, plan_threads

log = logging.getLogger(__name__)

DEFAULT_MODELS = {
    "detector": "yolov3_tiny_coco.onnx",
    "face_detector": "centerface.onnx",
    "face_embedder": "dlib_resnet128.onnx",
    "face_landmarks": "dlib_shape5.npz",
}


def runtime_options(config: RuntimeConfig, plan: ThreadPlan | None = None, role: str | None = None,
                    configured_file: bool = False) -> RuntimeOptions:
    """Session options from ``config``, its ``auto`` thread counts resolved by ``plan`` (default: the plan for
    this machine with both analysis branches); ``role``: the model's role, whose precision sets OpenVINO's hint."""
    plan = plan or plan_threads(config)
    hint = precision_choice(role, config, configured_file).hint if role else ""
    return RuntimeOptions(providers=config.providers, precision_hint=hint, intra_op_threads=plan.intra_op,
                          inter_op_threads=plan.inter_op, graph_optimization=config.graph_optimization,
                          allow_spinning=plan.allow_spinning)


def analysis_branches(config: Config) -> int:
    """Stage branches that can run at once: object detection and faces (each reads only the original frame)."""
    return max(1, int(config.detector.enabled) + int(config.faces.enabled))


def apply_thread_settings(config: Config) -> ThreadPlan:
    """The thread plan for ``config`` on this machine, with OpenCV's and BLAS's pools set from it (ONNX Runtime's
    go into each session). Called once when a pipeline is built."""
    plan = plan_threads(config.runtime, branches=analysis_branches(config))
    apply_process_threads(plan)
    return plan


def precision_choice(role: str, runtime: RuntimeConfig, configured_file: bool = False):
    """The precision (and shipped file) ``runtime.precision`` gives ``role`` on the provider ``runtime.providers``
    resolves to here (realtime/precision.py)."""
    from realtime.cpu import cpu_info
    from realtime.precision import choose_precision, manifest_for
    from realtime.runtime import resolve_provider

    provider = resolve_provider(runtime.providers).name
    return choose_precision(role, provider, runtime.precision, cpu_info(), manifest_for(ZOO_DIR), ZOO_DIR,
                            configured_file=configured_file)


def model_path(configured: str, role: str, required: bool = True,
               runtime: RuntimeConfig | None = None) -> Path | None:
    """The configured model file, else the shipped default for ``role`` (with ``runtime``: the file of the
    precision ``runtime.precision`` chooses); ``None`` if none ships and not required."""
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise ModelError(f"{role} model not found: {path}")
        return path
    chosen = precision_choice(role, runtime).file if runtime is not None else None
    default = ZOO_DIR / (chosen or DEFAULT_MODELS[role])
    if default.is_file():
        return default
    if required:
        raise ModelError(f"no {role} model ships at {default}; set its path in config")
    return None


def open_face_detector(faces: FacesConfig, runtime: RuntimeConfig, plan: ThreadPlan | None = None):
    from realtime.face.detector import FaceDetector

    model = OnnxModel(model_path(faces.detector_model, "face_detector", runtime=runtime),
                      runtime_options(runtime, plan, "face_detector", bool(faces.detector_model)),
                      expected_kind="face_detector")
    return FaceDetector(model, detect_width=faces.detect_width, score_threshold=faces.score_threshold,
                        iou_threshold=faces.iou_threshold, max_faces=faces.max_faces)


def open_face_embedder(faces: FacesConfig, runtime: RuntimeConfig, plan: ThreadPlan | None = None):
    """The embedder with the aligner its chips need (``faces.alignment``; "auto" follows the model's contract)."""
    from realtime.face.align import DlibAligner
    from realtime.face.embedder import FaceEmbedder
    from realtime.face.landmarks import load_shape_predictor

    model = OnnxModel(model_path(faces.embedder_model, "face_embedder", runtime=runtime),
                      runtime_options(runtime, plan, "face_embedder", bool(faces.embedder_model)),
                      expected_kind="face_embedder")
    try:
        alignment = FaceEmbedder(model).alignment if faces.alignment == "auto" else faces.alignment
        aligner = None
        if alignment == "dlib5":
            predictor = load_shape_predictor(model_path(faces.landmarks_model, "face_landmarks"))
            aligner = DlibAligner(predictor, size=model.contract.input.working_size_wh()[0],
                                  refine=faces.landmarks_refine)
        return FaceEmbedder(model, aligner)
    except BaseException:
        model.close()
        raise


def match_threshold(faces: FacesConfig, embedder) -> float:
    """``faces.match_threshold`` when set, else the threshold the embedding model's contract carries."""
    return float(faces.match_threshold) if faces.match_threshold is not None else embedder.match_threshold


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


def load_face_cohort(faces: FacesConfig, embedder, gallery_vectors: np.ndarray) -> np.ndarray | None:
    """The shipped background cohort for ``embedder`` (None when ``faces.cohort`` is off or it does not fit)."""
    if not faces.cohort:
        return None
    from realtime.face.cohort import COHORT_FILE, cohort_for, load_cohort

    path = ZOO_DIR / COHORT_FILE
    if not path.is_file():
        raise ModelError(f"faces.cohort is on but no cohort ships at {path}; build it with 'python -m "
                         "recipes.face_cohort build' or set faces.cohort=false")
    return cohort_for(load_cohort(path), embedder.sha256, embedder.template5, gallery_vectors)


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
    path = model_path(det.model, "detector", required=bool(det.model), runtime=config.runtime)
    if path is None:
        log.info("no object detector model ships yet; detection is left out (set detector.model to use one)")
        return None
    from realtime.detect.yolo import ObjectDetection, YoloDetector

    model = OnnxModel(path, runtime_options(config.runtime, plan, "detector", bool(det.model)), expected_kind="yolo")
    try:  # the detector owns every score threshold (realtime/detect/thresholds.py); the tracker reads them there
        detector = YoloDetector(model, input_size=det.input_size, score_threshold=det.score_threshold,
                                iou_threshold=det.iou_threshold, class_aware=det.class_aware,
                                max_candidates=det.max_candidates, max_detections=det.max_detections,
                                keep_classes=det.classes, class_score_thresholds=det.class_score_thresholds,
                                low_score_threshold=second_pass(config))
    except BaseException:  # a bad detector.classes / input_size: do not leave the session open
        model.close()
        raise
    return ObjectDetection(detector, every=det.every)


def second_pass(config: Config) -> float | None:
    """The low threshold of the tracker's second pass, or None when tracking is off or the threshold is not below
    any shown threshold (``detector.score_threshold`` and every class threshold: then a second pass sees nothing).
    It is independent of the shown thresholds: lowering a class's threshold never raises it."""
    low = config.tracking.low_score_threshold
    if not config.tracking.enabled or low is None:
        return None
    det = config.detector
    highest = max([det.score_threshold, *(t for _, t in det.class_score_thresholds)])
    if low >= highest:
        log.info("tracking.low_score_threshold %g is not below any detector threshold (highest %g): one tracking "
                 "pass", low, highest)
        return None
    return low


def build_tracking_stage(config: Config, detection):
    """The object-tracking stage that follows ``detection`` (track ids on ``packet.detections``); it reads what is
    shown from the detector's thresholds, so the two never disagree."""
    from realtime.detect.track import ObjectTracker, ObjectTracking

    tr = config.tracking
    tracker = ObjectTracker(iou_threshold=tr.iou_threshold, max_age=tr.max_age, min_hits=tr.min_hits,
                            buffer=tr.buffer)
    return ObjectTracking(tracker, thresholds=detection.detector.thresholds)


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
                    stages.append(build_tracking_stage(config, stage))
        if config.faces.enabled:
            stages.extend(build_face_stages(config, plan))
        if config.style.enabled:  # last: an effect on the displayed frame, analysis never sees it
            from realtime.style.stage import build_style_stage

            stages.append(build_style_stage(config.style, runtime_options(config.runtime, plan, "style"), ZOO_DIR))
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
