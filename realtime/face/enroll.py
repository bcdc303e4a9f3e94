"""Enrolment and 1:1 / 1:K queries on still images: quality gates, embeddings, gallery writes.

Quality gates at enrolment: exactly one face, at least ``min_face_px`` tall, and a sharp chip (variance of the
Laplacian of the aligned grey chip at least ``min_sharpness``; a Gaussian blur of sigma 3 on the astronaut photo
gives ~8, the sharp photo ~230).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import cv2
import numpy as np

from realtime.io.capture import as_image, expand_inputs, read_image
from realtime.errors import EnrollmentError
from realtime.face.matching import match_faces, pairwise_distances
from realtime.types import FaceDetections


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


def expand_image_paths(items: Sequence[str]) -> list[Path]:
    """Photos named by ``items``: files as given, folders and globs expanded to their photos (sorted)."""
    return expand_inputs(items, videos=False)


def chip_sharpness(chip_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the grey chip: higher is sharper."""
    grey = cv2.cvtColor(chip_bgr, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def embed_faces(image_bgr: np.ndarray, faces: FaceDetections, embedder) -> tuple[np.ndarray, np.ndarray]:
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


# ---------------------------------------------------------------- the Gallery object of the public API


@dataclass(frozen=True)
class Match:
    """One face of a photo and who it is. ``box_xyxy``: float32 (4,) photo pixels; ``score``: detector
    confidence; ``name``: the enrolled person, or ``None`` (unknown: no one under the match threshold, or the
    second-best person too close); ``distance`` / ``second_distance``: to the best and second-best person (``None``
    when the gallery has no one to compare); ``landmarks5``: float32 (5, 2).

    Example::

        >>> import numpy as np
        >>> from realtime.face.enroll import Match
        >>> m = Match(np.array([10, 20, 50, 70], np.float32), 0.9, "alice", 0.41, None, np.zeros((5, 2)))
        >>> m.to_json()["identity"], m.to_json()["box"]
        ('alice', [10.0, 20.0, 50.0, 70.0])
    """

    box_xyxy: np.ndarray
    score: float
    name: str | None
    distance: float | None
    second_distance: float | None
    landmarks5: np.ndarray

    def to_json(self) -> dict[str, Any]:
        """``{"box", "score", "landmarks", "identity", "distance", "second_distance"}`` (``rtv identify``)."""
        from realtime.serialize import box_json, points_json

        return {"box": box_json(self.box_xyxy), "score": round(float(self.score), 4),
                "landmarks": points_json(self.landmarks5), "identity": self.name, "distance": self.distance,
                "second_distance": self.second_distance}


@dataclass(frozen=True)
class Enrollment:
    """What :meth:`Gallery.enroll` did: ``enrolled`` new faces of ``name`` (``stored`` in all), the ``refused``
    images with their reasons, and other persons the new faces already match (``look_alikes``: (name, distance))."""

    name: str
    enrolled: int
    stored: int
    refused: tuple[Refusal, ...]
    look_alikes: tuple[tuple[str, float], ...]


def _finite(value: float) -> float | None:
    value = float(value)
    return round(value, 4) if np.isfinite(value) else None


class Gallery:
    """The face gallery (an SQLite file) from code: enrol, identify, list and remove people. Open it with
    :func:`realtime.open_gallery`; the models load on first use; a context manager.

    Example::

        >>> import realtime, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "people.sqlite")
        >>> with realtime.open_gallery(path) as gallery:
        ...     gallery.names()
        []
    """

    def __init__(self, config, faces=None):
        from realtime.face.describe import FaceModels

        self.config = config
        self.path = Path(config.faces.gallery)
        self.faces = faces if faces is not None else FaceModels(config)

    def _store(self, create: bool):
        from realtime.gallery.store import Gallery as Store

        embedder = self.faces.embedder
        contract = embedder.model.contract
        return Store.open(self.path, model_sha256=embedder.sha256, model_name=contract.name,
                          embedding_size=contract.embedding_size, create=create)

    def enroll(self, name: str, images: Any, replace: bool = False, force: bool = False) -> Enrollment:
        """Enrol ``name`` from photos that each show exactly that one face: a file, a folder, a glob, a uint8 BGR
        array, or a list of these. Refused photos (no face, several faces, too small, blurred) are listed in the
        answer; :class:`EnrollmentError` when none is accepted (then nothing is written and no gallery file is
        made), or when the accepted faces do not all show one person (or not the person already stored under
        ``name``, unless ``replace``), unless ``force``.

        Example::

            >>> import realtime, tempfile, os
            >>> from skimage import data
            >>> photo = data.astronaut()[..., ::-1].copy()
            >>> path = os.path.join(tempfile.mkdtemp(), "people.sqlite")
            >>> with realtime.open_gallery(path) as gallery:
            ...     gallery.enroll("eileen", [photo, photo[::2, ::2].copy()]).enrolled
            2
        """
        from realtime.gallery.names import check_name

        name = check_name(name)
        detector, embedder = self.faces.models()
        faces = self.config.faces
        samples, refused = collect_samples(_named_images(images), detector, embedder, faces.min_face_px,
                                           faces.min_sharpness)
        return self.enroll_samples(name, samples, refused, replace=replace, force=force)

    def enroll_samples(self, name: str, samples: Sequence[FaceSample], refused: Sequence[Refusal] = (),
                       replace: bool = False, force: bool = False) -> Enrollment:
        """Store accepted :class:`FaceSample` objects (from :func:`sample_for_enrolment`, e.g. camera shots) as
        :meth:`enroll` does."""
        if not samples:
            reasons = "; ".join(f"{r.source}: {r.reason}" for r in refused) or "no images given"
            raise EnrollmentError(f"nothing was enrolled for {name!r}: {reasons}")
        threshold = self.faces.match_threshold
        if not force:
            check_consistent(samples, threshold, None, name)  # before the gallery is opened (or made)
        with self._store(create=True) as store:
            vectors, labels = store.vectors()
            if not force and not replace:
                check_consistent(samples, threshold, vectors[labels == name], name)
            alikes = look_alikes(samples, name, vectors, labels, threshold)
            total = enroll_samples(store, name, samples, refused, replace=replace)
        return Enrollment(name, len(samples), int(total), tuple(refused), tuple(alikes))

    def identify(self, image: np.ndarray | str | Path) -> list[Match]:
        """Who is in a photo (a file or a uint8 BGR array): one :class:`Match` per face, decided from that face's
        own descriptor. :class:`GalleryError` when the gallery file does not exist.

        Example::

            >>> import numpy as np, realtime, tempfile, os
            >>> from skimage import data
            >>> photo = data.astronaut()[..., ::-1].copy()
            >>> with realtime.open_gallery(os.path.join(tempfile.mkdtemp(), "g.sqlite")) as gallery:
            ...     _ = gallery.enroll("eileen", photo)
            ...     [m.name for m in gallery.identify(np.hstack([photo, photo]))]
            ['eileen', 'eileen']
        """
        from realtime.build import load_face_cohort
        from realtime.face.describe import _image

        described = self.faces.describe(_image(image))
        with self._store(create=False) as store:
            gallery_vectors, labels = store.vectors()
        embedder = self.faces.embedder
        query = np.stack([f.descriptor for f in described]) if described else \
            np.zeros((0, embedder.model.contract.embedding_size), np.float32)
        cohort = load_face_cohort(self.config.faces, embedder, gallery_vectors) if len(labels) else None
        ids, best, second = match_faces(query, gallery_vectors, labels, self.faces.match_threshold,
                                        self.config.faces.match_margin, cohort)
        return [Match(f.box_xyxy, f.score, ids[i], _finite(best[i]), _finite(second[i]), f.landmarks5)
                for i, f in enumerate(described)]

    def names(self) -> list[str]:
        """The enrolled people's names, sorted ([] while no gallery file exists).

        Example::

            >>> import realtime, tempfile, os
            >>> realtime.open_gallery(os.path.join(tempfile.mkdtemp(), "new.sqlite")).names()
            []
        """
        from realtime.gallery.store import Gallery as Store

        if not self.path.exists():
            return []
        with Store.open(self.path, create=False) as store:
            return sorted(p.name for p in store.persons())

    def remove(self, name: str) -> int:
        """Remove a person and their faces; returns how many faces went. :class:`GalleryError` for an unknown
        name or a missing gallery.

        Example::

            >>> import realtime, tempfile, os
            >>> from skimage import data
            >>> with realtime.open_gallery(os.path.join(tempfile.mkdtemp(), "g.sqlite")) as gallery:
            ...     _ = gallery.enroll("eileen", data.astronaut()[..., ::-1].copy())
            ...     gallery.remove("eileen"), gallery.names()
            (1, [])
        """
        from realtime.gallery.store import Gallery as Store

        with Store.open(self.path, create=False) as store:
            return store.remove(name)

    def close(self) -> None:
        """Release the models; safe twice."""
        self.faces.close()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _named_images(images: Any) -> Iterable[tuple[str, np.ndarray]]:
    """(name, BGR image) for each photo ``images`` names: files, folders, globs, arrays, or a list of them."""
    items = [images] if isinstance(images, (str, Path, np.ndarray)) else list(images)
    for k, item in enumerate(items):
        if isinstance(item, np.ndarray):
            yield f"image {k}", as_image(item)
        else:
            for path in expand_inputs(item, videos=False):
                yield str(path), read_image(path)
