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

from realtime.media import IMAGE_SUFFIXES
from realtime.errors import EnrollmentError, SourceError
from realtime.face.matching import match_faces, pairwise_distances
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


def check_consistent(samples: Sequence[FaceSample], match_threshold: float,
                     stored: np.ndarray | None = None, name: str = "this person") -> None:
    """:class:`EnrollmentError` when the faces of one enrolment do not all show one person, naming the odd image.

    ``samples``: the accepted faces; two of them disagree when their distance is above ``match_threshold`` (the
    threshold recognition uses: a pair above it would not be recognised as one person). With three or more faces,
    an image that disagrees with most of the others is named as the odd one; with two, or without a clear odd one,
    the most distant pair is named. ``stored``: float32 (M, D) embeddings already stored for the person (when adding
    to them): a face further than the threshold from every one of them is named too.
    """
    k = len(samples)
    threshold = float(match_threshold)
    advice = "enrol each person with their own images, or pass --force to enrol them anyway"
    if k >= 2:
        vectors = np.stack([s.vector for s in samples]).astype(np.float32)
        dist = pairwise_distances(vectors, vectors)
        far = dist > threshold
        if far.any():
            disagree = far.sum(axis=1)
            odd = [i for i in range(k) if k >= 3 and disagree[i] > (k - 1) / 2]
            if odd:
                i = odd[0]
                others = [j for j in range(k) if j != i]
                nearest = float(dist[i, others].min())
                more = f" (and {len(odd) - 1} more: {', '.join(samples[j].source for j in odd[1:3])})" \
                    if len(odd) > 1 else ""
                raise EnrollmentError(
                    f"{samples[i].source} does not show the same person as the other images of {name!r}: it is "
                    f"further than the match threshold {threshold:g} from {int(disagree[i])} of {k - 1} (nearest "
                    f"{nearest:.3f}){more}; nothing was enrolled. Remove it, {advice}")
            i, j = np.unravel_index(int(np.argmax(dist)), dist.shape)
            raise EnrollmentError(
                f"the images of {name!r} disagree: {samples[i].source} and {samples[j].source} are {dist[i, j]:.3f} "
                f"apart, above the match threshold {threshold:g}, so they do not show one person; nothing was "
                f"enrolled. Check the images, {advice}")
    if stored is not None and len(stored) and k:
        vectors = np.stack([s.vector for s in samples]).astype(np.float32)
        nearest = pairwise_distances(vectors, np.asarray(stored, np.float32)).min(axis=1)
        bad = np.flatnonzero(nearest > threshold)
        if bad.size:
            i = int(bad[0])
            raise EnrollmentError(
                f"{samples[i].source} does not match the {len(stored)} face(s) already enrolled for {name!r} "
                f"(nearest {nearest[i]:.3f} > match threshold {threshold:g}); nothing was enrolled. Use --replace "
                f"to start over with new images, {advice}")


def enroll_samples(gallery, name: str, samples: Sequence[FaceSample], refused: Sequence[Refusal],
                   replace: bool = False) -> int:
    """Write the accepted samples (all in one transaction). :class:`EnrollmentError` when none was accepted."""
    if not samples:
        reasons = "; ".join(f"{r.source}: {r.reason}" for r in refused) or "no images given"
        raise EnrollmentError(f"nothing enrolled for {name!r}: {reasons}")
    return gallery.enroll(name, np.stack([s.vector for s in samples]).astype(np.float32),
                          sources=[s.source for s in samples],
                          qualities=[round(s.sharpness, 2) for s in samples], replace=replace)
