"""Faces of photos as data, and 1:1 verification, for programs built on rtv (like ``face_recognition``'s
``face_locations`` + ``face_landmarks`` + ``face_encodings`` in one call).

``realtime.open_faces()`` gives a :class:`FaceModels`: ``describe(image)`` lists every face (box, score,
CenterFace's 5 landmarks, dlib's 5 points, the descriptor); ``verify(image1, image2)`` says whether two photos show
the same person. ``describe_faces(image_bgr, detector, embedder)`` does the first with models you hold;
``rtv embed IMAGE... --json`` prints it. Compare descriptors with the Euclidean distance (same person below the
model's match threshold, 0.6 for dlib's network).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from realtime.errors import ConfigError, NoFaceError, SeveralFacesError
from realtime.serialize import face_description_json, verification_json

STILL_DETECT_WIDTH = 640

Box = Sequence[float]


@dataclass(frozen=True)
class FaceDescription:
    """One face of a photo. ``box_xyxy``: float32 (4,) photo pixels; ``score``: detector confidence;
    ``landmarks5``: float32 (5, 2), CenterFace's points; ``landmarks_dlib5``: float32 (5, 2), dlib's 5 points the
    chip was cut from (``None`` when the embedder aligns with the template); ``descriptor``: float32 (D,).

    Example::

        >>> import realtime
        >>> from skimage import data
        >>> photo = data.astronaut()[..., ::-1].copy()                # RGB -> BGR
        >>> with realtime.open_faces() as faces:
        ...     face = faces.describe(photo)[0]
        >>> face.descriptor.shape, sorted(face.to_json())
        ((128,), ['box', 'descriptor', 'landmarks', 'landmarks_dlib', 'score'])
    """

    box_xyxy: np.ndarray
    score: float
    landmarks5: np.ndarray
    landmarks_dlib5: np.ndarray | None
    descriptor: np.ndarray

    @property
    def height(self) -> float:
        return float(self.box_xyxy[3] - self.box_xyxy[1])

    def to_json(self) -> dict[str, Any]:
        """``{"box", "score", "landmarks", "landmarks_dlib", "descriptor"}`` (rounded, JSON-ready)."""
        return face_description_json(self.box_xyxy, self.score, self.landmarks5, self.landmarks_dlib5,
                                     self.descriptor)


@dataclass(frozen=True)
class Verification:
    """The answer of :meth:`FaceModels.verify`: ``distance`` between the two chosen faces, ``threshold`` (the
    model's match threshold unless configured), ``same_person`` (distance below it), the two ``faces`` and how each
    was ``chosen`` ("only", "largest" or "box").

    Example::

        >>> import numpy as np, realtime
        >>> from skimage import data
        >>> photo = data.astronaut()[..., ::-1].copy()
        >>> group = np.hstack([photo[:, :256], photo])                # two faces, the second the larger
        >>> with realtime.open_faces() as faces:
        ...     answer = faces.verify(photo, group, largest=True)
        >>> answer.same_person, answer.chosen
        (True, ('only', 'largest'))
    """

    distance: float
    threshold: float
    same_person: bool
    faces: tuple[FaceDescription, FaceDescription]
    chosen: tuple[str, str]

    def to_json(self) -> dict[str, Any]:
        return verification_json(self.distance, self.threshold, self.same_person,
                                 [f.box_xyxy for f in self.faces], self.chosen)


def describe_faces(image_bgr: np.ndarray, detector, embedder) -> list[dict[str, Any]]:
    """Every face of ``image_bgr`` (uint8 (H, W, 3)) as a JSON-ready dict, largest score first."""
    return [face.to_json() for face in _descriptions(image_bgr, detector, embedder)]


def _descriptions(image_bgr: np.ndarray, detector, embedder) -> list[FaceDescription]:
    faces = detector.detect(image_bgr)
    chips, points = embedder.align(image_bgr, faces.boxes_xyxy, faces.landmarks5)
    vectors = embedder.embed(chips)
    return [FaceDescription(np.asarray(faces.boxes_xyxy[i], np.float32), float(faces.scores[i]),
                            np.asarray(faces.landmarks5[i], np.float32),
                            None if not np.isfinite(points[i]).all() else np.asarray(points[i], np.float32),
                            np.asarray(vectors[i], np.float32))
            for i in range(len(faces))]


def choose_face(faces: Sequence[FaceDescription], source: str, largest: bool = False,
                box: Box | None = None) -> tuple[FaceDescription, str]:
    """The one face of a photo a 1:1 question is about, and how it was chosen: the only face; else with ``box``
    (x1, y1, x2, y2) the face overlapping it most; else with ``largest`` the tallest. :class:`NoFaceError` when
    there is none, :class:`SeveralFacesError` when there are several and nothing says which."""
    if not faces:
        raise NoFaceError(f"{source}: no face found")
    if box is not None:
        from realtime.boxes import box_iou

        query = np.asarray(box, np.float32).reshape(1, 4)
        overlap = box_iou(query, np.stack([f.box_xyxy for f in faces]))[0]
        best = int(np.argmax(overlap))
        if overlap[best] <= 0:
            raise NoFaceError(f"{source}: no face overlaps the box {[round(float(v)) for v in query[0]]}")
        return faces[best], "box"
    if len(faces) == 1:
        return faces[0], "only"
    if largest:
        return max(faces, key=lambda f: f.height), "largest"
    boxes = "; ".join(",".join(f"{v:.0f}" for v in f.box_xyxy) for f in faces[:4])
    raise SeveralFacesError(f"{source}: {len(faces)} faces found (boxes x1,y1,x2,y2: {boxes}); say which: "
                            "the largest, or a box around the one you mean")


class FaceModels:
    """The face detector (at a photo working width) and the embedder, opened on first use; a context manager.

    Example::

        >>> import numpy as np, realtime
        >>> with realtime.open_faces() as faces:
        ...     faces.describe(np.zeros((120, 160, 3), np.uint8))
        []
    """

    def __init__(self, config=None, detect_width: int = STILL_DETECT_WIDTH):
        from realtime.config import Config

        self.config = config if config is not None else Config()
        self.detect_width = int(detect_width)
        self._detector = None
        self._embedder = None

    def models(self):
        """(detector, embedder), opened on first use."""
        from realtime.build import open_face_detector, open_face_embedder

        if self._detector is None:
            faces = dataclasses.replace(self.config.faces, detect_width=self.detect_width)
            self._detector = open_face_detector(faces, self.config.runtime)
        if self._embedder is None:
            self._embedder = open_face_embedder(self.config.faces, self.config.runtime)
        return self._detector, self._embedder

    @property
    def embedder(self):
        return self.models()[1]

    @property
    def match_threshold(self) -> float:
        """``faces.match_threshold`` when configured, else the embedding model's own (0.6 for dlib's network)."""
        from realtime.build import match_threshold

        return match_threshold(self.config.faces, self.embedder)

    def describe(self, image: np.ndarray | str | Path) -> list[FaceDescription]:
        """Every face of a photo (a uint8 (H, W, 3) BGR array or an image file), highest score first.

        Example::

            >>> import numpy as np, realtime
            >>> with realtime.open_faces() as faces:
            ...     len(faces.describe(np.full((200, 200, 3), 90, np.uint8)))
            0
        """
        detector, embedder = self.models()
        return _descriptions(_image(image), detector, embedder)

    def verify(self, image1: np.ndarray | str | Path, image2: np.ndarray | str | Path, largest: bool = False,
               boxes: tuple[Box | None, Box | None] = (None, None)) -> Verification:
        """Whether two photos show the same person. Each photo must show one face, unless ``largest`` (take the
        tallest) or its entry of ``boxes`` (x1, y1, x2, y2: the face overlapping it most) says which.
        :class:`NoFaceError` / :class:`SeveralFacesError` otherwise.

        Example::

            >>> import realtime
            >>> with realtime.open_faces() as faces:                                   # doctest: +SKIP
            ...     faces.verify("alice_1.jpg", "alice_2.jpg").same_person
            True
        """
        if len(boxes) != 2:
            raise ConfigError(f"boxes must be a pair (one entry per photo, None for none), got {boxes!r}")
        chosen = []
        for image, box in zip((image1, image2), boxes):
            name = str(image) if isinstance(image, (str, Path)) else "image"
            chosen.append(choose_face(self.describe(image), name, largest, box))
        (face1, how1), (face2, how2) = chosen
        distance = float(np.linalg.norm(face1.descriptor - face2.descriptor))
        threshold = self.match_threshold
        return Verification(distance, threshold, distance < threshold, (face1, face2), (how1, how2))

    def close(self) -> None:
        """Release the models; safe twice."""
        for model in (self._detector, self._embedder):
            if model is not None:
                model.close()
        self._detector = self._embedder = None

    def __enter__(self) -> "FaceModels":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _image(image: np.ndarray | str | Path) -> np.ndarray:
    from realtime.io.capture import as_image, read_image

    return read_image(image) if isinstance(image, (str, Path)) else as_image(image)


def embed_images(paths: Iterable[Path | str], config=None, detect_width: int = STILL_DETECT_WIDTH
                 ) -> list[dict[str, Any]]:
    """``[{"image": path, "faces": [...]}]`` for each image, in order (models from ``config``, default
    :class:`realtime.config.Config`). Raises :class:`realtime.errors.SourceError` for a missing or unreadable
    image before anything is returned."""
    from realtime.io.capture import read_image

    paths = [Path(p) for p in paths]
    with FaceModels(config, detect_width) as models:
        return [{"image": str(path), "faces": [f.to_json() for f in models.describe(read_image(path))]}
                for path in paths]
