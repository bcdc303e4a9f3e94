"""The models the service shares between requests (and doors), behind one small adapter.

Every model call of ``rtv serve`` goes through :class:`Engine`; the HTTP handlers never touch a session. The models
are opened once: the COCO detector, the face detector (at the still-image working width) and the embedder, with the
background cohort of strangers and the configured gallery file.

Thread policy: the sessions are sized by the process's one thread plan (:func:`realtime.threads.plan_threads`
with two branches: objects and faces), and each model has its own lock, so at most one call per model runs at a
time: a detection request and a recognition request run side by side, two recognitions queue. The gallery is an
SQLite file opened per operation under a lock (SQLite connections stay on the thread that made them), so a change
is seen by the next request and by a running door (which watches the file).

Open set: a face is named only when rtv's rule names it (:func:`realtime.face.matching.match_faces`: nearest person
under ``faces.match_threshold`` - the model's own when unset - beating the second-best person and the stranger
cohort by ``faces.match_margin``). ``confidence`` is :func:`confidence_of_distance`.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from realtime.config import Config
from realtime.errors import EnrollmentError, GalleryError

STILL_DETECT_WIDTH = 640
DETECTOR_FLOOR = 0.1  # the detector keeps boxes down to this score, so a request's min_confidence can go below
#                       the configured threshold (which stays the default)


def confidence_of_distance(distance: float, threshold: float) -> float:
    """A monotone map of an embedding distance to [0, 1]: ``1 - distance / (2 * threshold)``, clipped.

    0 apart gives 1.0; the match threshold gives 0.5; twice the threshold or more gives 0. A face is named only
    below the threshold, so a named face always has confidence above 0.5."""
    if not np.isfinite(distance):
        return 0.0
    return float(min(1.0, max(0.0, 1.0 - float(distance) / (2.0 * float(threshold)))))


@dataclass(frozen=True)
class ObjectHit:
    label: str
    confidence: float
    box_xyxy: tuple[float, float, float, float]


@dataclass(frozen=True)
class FaceHit:
    """A face; ``identity`` None when unknown (or not asked), ``distance``/``second_distance`` NaN when not
    matched; ``confidence`` the detector's score, ``match_confidence`` :func:`confidence_of_distance`."""

    box_xyxy: tuple[float, float, float, float]
    confidence: float
    identity: str | None = None
    distance: float = float("nan")
    second_distance: float = float("nan")
    match_confidence: float = 0.0


@dataclass(frozen=True)
class Enrolment:
    """What a registration did: faces stored now for the person, the photos used and refused (with reasons)."""

    name: str
    stored: int
    accepted: tuple[str, ...]
    refused: tuple[tuple[str, str], ...]
    look_alikes: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Person:
    name: str
    n_embeddings: int
    allowed: bool
    schedule: list | None
    created_at: str


class Engine:
    """The shared models. Use :meth:`open`; a context manager; :meth:`close` is safe to call twice."""

    def __init__(self, config: Config, detector, face_detector, embedder, cohort: np.ndarray | None,
                 threshold: float, plan, opened: Sequence = ()) -> None:
        """``opened``: what :meth:`close` closes, in the order it was opened."""
        self.config = config
        self._opened = list(opened)
        self.thread_plan = plan
        self._detector = detector
        self._face_detector = face_detector
        self._embedder = embedder
        self._cohort = cohort
        self.match_threshold = float(threshold)
        self.match_margin = float(config.faces.match_margin)
        self.gallery_path = config.faces.gallery
        self._detector_lock = threading.Lock()
        self._face_lock = threading.Lock()
        self._gallery_lock = threading.RLock()

    # ---------------------------------------------------------------------------------------------------- opening
    @classmethod
    def open(cls, config: Config) -> "Engine":
        """Open every model once (typed :mod:`realtime.errors` when a model or the cohort is missing)."""
        from realtime.build import build_detector_stage
        from realtime.zoo import match_threshold, open_face_detector, open_face_embedder
        from realtime.threads import apply_process_threads, plan_threads

        plan = plan_threads(config.runtime, branches=2)
        apply_process_threads(plan)
        opened: list = []
        try:
            detector = None
            det = config.detector
            floor = min(DETECTOR_FLOOR, det.score_threshold)
            stage = build_detector_stage(dataclasses.replace(
                config, detector=dataclasses.replace(det, score_threshold=floor, every=1),
                tracking=dataclasses.replace(config.tracking, enabled=False)), plan)
            if stage is not None:
                opened.append(stage)
                detector = stage.detector
            faces = dataclasses.replace(config.faces, detect_width=STILL_DETECT_WIDTH)
            face_detector = open_face_detector(faces, config.runtime, plan)
            opened.append(face_detector)
            embedder = open_face_embedder(config.faces, config.runtime, plan)
            opened.append(embedder)
            threshold = match_threshold(config.faces, embedder)
            cohort = _load_cohort(config, embedder)
        except BaseException:
            for thing in reversed(opened):
                thing.close()
            raise
        return cls(config, detector, face_detector, embedder, cohort, threshold, plan, opened)

    def close(self) -> None:
        for thing in reversed(self._opened):
            thing.close()
        self._opened = []

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------- inference
    @property
    def has_detector(self) -> bool:
        return self._detector is not None

    @property
    def default_object_confidence(self) -> float:
        return float(self.config.detector.score_threshold)

    def detect_objects(self, image_bgr: np.ndarray, min_confidence: float | None = None) -> list[ObjectHit]:
        """COCO objects of ``image_bgr`` (uint8 (H, W, 3)) scored at least ``min_confidence`` (default: the
        configured ``detector.score_threshold``), best first."""
        from realtime.errors import ModelError

        if self._detector is None:
            raise ModelError("no object detector is configured (set detector.model)")
        floor = self.default_object_confidence if min_confidence is None else float(min_confidence)
        with self._detector_lock:
            dets = self._detector.detect(image_bgr)
        hits = [ObjectHit(dets.class_name(i), float(dets.scores[i]), _box(dets.boxes_xyxy[i]))
                for i in range(len(dets)) if dets.scores[i] >= floor]
        return sorted(hits, key=lambda h: -h.confidence)

    def _faces_and_vectors(self, image_bgr: np.ndarray, embed: bool):
        with self._face_lock:
            faces = self._face_detector.detect(image_bgr)
            vectors = None
            if embed and len(faces):
                chips, _ = self._embedder.align(image_bgr, faces.boxes_xyxy, faces.landmarks5)
                vectors = self._embedder.embed(chips)
        return faces, vectors

    def detect_faces(self, image_bgr: np.ndarray, min_confidence: float = 0.0) -> list[FaceHit]:
        faces, _ = self._faces_and_vectors(image_bgr, embed=False)
        return [FaceHit(_box(faces.boxes_xyxy[i]), float(faces.scores[i])) for i in range(len(faces))
                if faces.scores[i] >= min_confidence]

    def recognize(self, image_bgr: np.ndarray) -> list[FaceHit]:
        """Every face with rtv's open-set identity (None: unknown) and its distances."""
        from realtime.face.matching import match_faces

        faces, vectors = self._faces_and_vectors(image_bgr, embed=True)
        if not len(faces):
            return []
        gallery_vectors, labels = self.gallery_vectors()
        cohort = None
        if self._cohort is not None:
            from realtime.face.cohort import cohort_for

            cohort = cohort_for(self._cohort, self._embedder.sha256, self._embedder.template5, gallery_vectors)
        ids, best, second = match_faces(vectors, gallery_vectors, labels, self.match_threshold, self.match_margin,
                                        cohort=cohort)
        return [FaceHit(_box(faces.boxes_xyxy[i]), float(faces.scores[i]), ids[i], float(best[i]),
                        float(second[i]), confidence_of_distance(float(best[i]), self.match_threshold))
                for i in range(len(faces))]

    def largest_face_vector(self, image_bgr: np.ndarray, what: str) -> np.ndarray:
        faces, vectors = self._faces_and_vectors(image_bgr, embed=True)
        if not len(faces):
            raise EnrollmentError(f"{what}: no face found")
        heights = faces.boxes_xyxy[:, 3] - faces.boxes_xyxy[:, 1]
        return vectors[int(np.argmax(heights))]

    def match(self, image1_bgr: np.ndarray, image2_bgr: np.ndarray) -> tuple[float, float]:
        """``(distance, confidence)`` between the largest faces of two images (1:1)."""
        a = self.largest_face_vector(image1_bgr, "image1")
        b = self.largest_face_vector(image2_bgr, "image2")
        distance = float(np.linalg.norm(a - b))
        return distance, confidence_of_distance(distance, self.match_threshold)

    # ---------------------------------------------------------------------------------------------------- gallery
    def _open_gallery(self, create: bool):
        from realtime.gallery.store import Gallery

        contract = self._embedder.model.contract
        return Gallery.open(self.gallery_path, model_sha256=self._embedder.sha256, model_name=contract.name,
                            embedding_size=contract.embedding_size, create=create)

    def gallery_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        from pathlib import Path

        size = self._embedder.model.contract.embedding_size
        with self._gallery_lock:
            if not Path(self.gallery_path).exists():
                return np.zeros((0, size), np.float32), np.zeros(0, dtype=str)
            with self._open_gallery(create=False) as gallery:
                return gallery.vectors()

    def enroll(self, name: str, images: Sequence[tuple[str, np.ndarray]], *, replace: bool = False,
               force: bool = False) -> Enrolment:
        """Enrol ``name`` from ``(source, image_bgr)`` photos with the quality gates and the "images disagree"
        check of ``rtv enroll``; :class:`EnrollmentError` saying why when nothing can be stored."""
        from realtime.face.enroll import check_consistent, enroll_samples, look_alikes, sample_for_enrolment
        from realtime.face.enroll import FaceSample
        from realtime.gallery.names import check_name

        name = check_name(name)
        faces = self.config.faces
        samples, refused = [], []
        with self._face_lock:
            for source, image in images:
                result = sample_for_enrolment(image, source, self._face_detector, self._embedder,
                                              faces.min_face_px, faces.min_sharpness)
                (samples if isinstance(result, FaceSample) else refused).append(result)
        if not force:
            check_consistent(samples, self.match_threshold, None, name)
        with self._gallery_lock:
            if not samples:
                enroll_samples(None, name, samples, refused)  # raises, naming every refusal
            with self._open_gallery(create=True) as gallery:
                vectors, labels = gallery.vectors()
                if not force and not replace:
                    check_consistent(samples, self.match_threshold, vectors[labels == name], name)
                alikes = look_alikes(samples, name, vectors, labels, self.match_threshold)
                total = enroll_samples(gallery, name, samples, refused, replace=replace)
        return Enrolment(name, int(total), tuple(s.source for s in samples),
                         tuple((r.source, r.reason) for r in refused), tuple((p, float(d)) for p, d in alikes))

    def enrolment_problem(self, image_bgr: np.ndarray) -> str | None:
        """Why this image would be refused at enrolment (no face, several, too small, blurred), or None."""
        from realtime.face.enroll import Refusal, sample_for_enrolment

        faces = self.config.faces
        with self._face_lock:
            result = sample_for_enrolment(image_bgr, "frame", self._face_detector, self._embedder,
                                          faces.min_face_px, faces.min_sharpness)
        return result.reason if isinstance(result, Refusal) else None

    def persons(self) -> list[Person]:
        from pathlib import Path

        with self._gallery_lock:
            if not Path(self.gallery_path).exists():
                return []
            with self._open_gallery(create=False) as gallery:
                return [Person(p.name, p.n_embeddings, p.allowed, p.schedule, p.created_at)
                        for p in gallery.persons()]

    def names(self) -> list[str]:
        return [p.name for p in self.persons()]

    def remove(self, name: str) -> int:
        """Remove a person (:class:`GalleryError` when unknown); returns how many embeddings went."""
        from pathlib import Path

        with self._gallery_lock:
            if not Path(self.gallery_path).exists():
                raise GalleryError(f"no person named {name!r} is enrolled")
            with self._open_gallery(create=False) as gallery:
                return gallery.remove(name)

    def set_access(self, name: str, allowed: bool, schedule: list | None = None) -> None:
        with self._gallery_lock:
            with self._open_gallery(create=False) as gallery:
                gallery.set_access(name, allowed=allowed, schedule=schedule)


def _load_cohort(config: Config, embedder):
    """The shipped cohort of strangers (filtered against the gallery at each match, as the pipeline does), or
    None when ``faces.cohort`` is off."""
    if not config.faces.cohort:
        return None
    from realtime.errors import ModelError
    from realtime.face.cohort import load_cohort
    from realtime.zoo import model_path

    path = model_path("face_cohort", required=False)
    if path is None:
        raise ModelError("faces.cohort is on but no cohort ships; set faces.cohort=false")
    return load_cohort(path)


def _box(row) -> tuple[float, float, float, float]:
    return tuple(float(v) for v in row)  # type: ignore[return-value]
