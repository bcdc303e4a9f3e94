"""Face descriptors of still images as plain data, for programs built on rtv (like ``face_recognition``'s
``face_locations`` + ``face_landmarks`` + ``face_encodings`` in one call).

``describe_faces(image_bgr, detector, embedder)`` for an image you hold; ``embed_images(paths)`` opens the
configured models and reads files; ``rtv embed IMAGE... --json`` prints the latter. Each face is
``{"box": [x1, y1, x2, y2], "score", "landmarks": CenterFace's 5 points, "landmarks_dlib": dlib's 5 points (or
null when the embedder aligns with the template), "descriptor": [128 floats]}``; compare descriptors with the
Euclidean distance (same person below the model's match threshold, 0.6 for dlib's network).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable

import numpy as np

STILL_DETECT_WIDTH = 640


def describe_faces(image_bgr: np.ndarray, detector, embedder) -> list[dict[str, Any]]:
    """Every face of ``image_bgr`` (uint8 (H, W, 3)) as a JSON-ready dict, largest score first."""
    faces = detector.detect(image_bgr)
    chips, points = embedder.align(image_bgr, faces.boxes_xyxy, faces.landmarks5)
    vectors = embedder.embed(chips)
    out = []
    for i in range(len(faces)):
        dlib = None if not np.isfinite(points[i]).all() else [[int(x), int(y)] for x, y in points[i]]
        out.append({
            "box": [round(float(v), 2) for v in faces.boxes_xyxy[i]],
            "score": round(float(faces.scores[i]), 4),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in faces.landmarks5[i]],
            "landmarks_dlib": dlib,
            "descriptor": [round(float(v), 7) for v in vectors[i]],
        })
    return out


def embed_images(paths: Iterable[Path | str], config=None, detect_width: int = STILL_DETECT_WIDTH
                 ) -> list[dict[str, Any]]:
    """``[{"image": path, "faces": [...]}]`` for each image, in order (models from ``config``, default
    :class:`realtime.config.Config`). Raises :class:`realtime.errors.SourceError` for a missing or unreadable
    image before anything is returned."""
    from realtime.config import Config
    from realtime.face.enroll import read_image
    from realtime.zoo import open_face_detector, open_face_embedder

    config = config if config is not None else Config()
    paths = [Path(p) for p in paths]
    detector = open_face_detector(dataclasses.replace(config.faces, detect_width=detect_width), config.runtime)
    try:
        embedder = open_face_embedder(config.faces, config.runtime)
        try:
            return [{"image": str(path), "faces": describe_faces(read_image(path), detector, embedder)}
                    for path in paths]
        finally:
            embedder.close()
    finally:
        detector.close()
