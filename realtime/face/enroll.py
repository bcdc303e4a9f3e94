"""Enrolment and 1:1 / 1:K queries on still images: quality gates, embeddings, gallery writes.

Quality gates at enrolment: exactly one face, at least ``min_face_px`` tall, and a sharp chip (variance of the
Laplacian of the aligned grey chip at least ``min_sharpness``; a Gaussian blur of sigma 3 on the astronaut photo
gives ~8, the sharp photo ~230).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from realtime.io.capture import IMAGE_SUFFIXES
from realtime.errors import EnrollmentError, SourceError
from realtime.face.matching import match_faces
from realtime.types import Faces


@dataclass(frozen=True)
class FaceSample:
    """One face cut from an image: its embedding (float32 (D,)), quality figures and where it came from."""

    source: str
    vector: np.ndarray
    box_xyxy: np.ndarray
    score: float
    sharpness: float


@dataclass(frozen=True)
class Refusal:
    source: str
    reason: str


def read_image(path: Path | str) -> np.ndarray:
    """uint8 (H, W, 3) BGR image; :class:`SourceError` when missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"{path}: not a readable image")
    return image


def expand_image_paths(items: Sequence[str]) -> list[Path]:
    """Files as given, folders expanded to their images (sorted)."""
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise SourceError(f"no images found in folder {p}")
            paths.extend(found)
        else:
            paths.append(p)
    return paths


def chip_sharpness(chip_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the grey chip: higher is sharper."""
    grey = cv2.cvtColor(chip_bgr, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def embed_faces(image_bgr: np.ndarray, faces: Faces, embedder) -> tuple[np.ndarray, np.ndarray]:
    """Aligned chips (cut by ``embedder.align``) and embeddings of every face: uint8 (N, S, S, 3), float32 (N, D)."""
    chips, _ = embedder.align(image_bgr, faces.boxes_xyxy, faces.landmarks5)
    return chips, embedder.embed(chips)


def sample_for_enrolment(image_bgr: np.ndarray, source: str, detector, embedder, min_face_px: int,
                         min_sharpness: float) -> FaceSample | Refusal:
    """The image's one face as a :class:`FaceSample`, or a :class:`Refusal` that says why not."""
    faces = detector.detect(image_bgr)
    if len(faces) == 0:
        return Refusal(source, "no face found")
    if len(faces) > 1:
        return Refusal(source, f"{len(faces)} faces found; enrol from images that show exactly one face")
    box = faces.boxes_xyxy[0]
    height = float(box[3] - box[1])
    if height < min_face_px:
        return Refusal(source, f"face is {height:.0f} px tall, below the minimum of {min_face_px} px; "
                               "use a closer or larger photo")
    chips, vectors = embed_faces(image_bgr, faces, embedder)
    sharpness = chip_sharpness(chips[0])
    if sharpness < min_sharpness:
        return Refusal(source, f"face is blurred (sharpness {sharpness:.1f} < {min_sharpness:g}); "
                               "use a sharper photo")
    return FaceSample(source, vectors[0], box, float(faces.scores[0]), sharpness)


def collect_samples(images: Iterable[tuple[str, np.ndarray]], detector, embedder, min_face_px: int,
                    min_sharpness: float) -> tuple[list[FaceSample], list[Refusal]]:
    accepted: list[FaceSample] = []
    refused: list[Refusal] = []
    for source, image in images:
        result = sample_for_enrolment(image, source, detector, embedder, min_face_px, min_sharpness)
        (accepted if isinstance(result, FaceSample) else refused).append(result)
    return accepted, refused


def look_alikes(samples: Sequence[FaceSample], name: str, gallery_vectors: np.ndarray, gallery_labels: np.ndarray,
                match_threshold: float) -> list[tuple[str, float]]:
    """Other persons (not ``name``) that the new samples already match under the threshold: (person, distance)."""
    others = gallery_labels != name
    if not samples or not others.any():
        return []
    query = np.stack([s.vector for s in samples])
    ids, dist, _ = match_faces(query, gallery_vectors[others], gallery_labels[others], match_threshold, 0.0)
    found: dict[str, float] = {}
    for identity, d in zip(ids, dist):
        if identity is not None:
            found[identity] = min(found.get(identity, np.inf), float(d))
    return sorted(found.items(), key=lambda kv: kv[1])


def enroll_samples(gallery, name: str, samples: Sequence[FaceSample], refused: Sequence[Refusal],
                   replace: bool = False) -> int:
    """Write the accepted samples (all in one transaction). :class:`EnrollmentError` when none was accepted."""
    if not samples:
        reasons = "; ".join(f"{r.source}: {r.reason}" for r in refused) or "no images given"
        raise EnrollmentError(f"nothing enrolled for {name!r}: {reasons}")
    return gallery.enroll(name, np.stack([s.vector for s in samples]).astype(np.float32),
                          sources=[s.source for s in samples],
                          qualities=[round(s.sharpness, 2) for s in samples], replace=replace)
