"""Face boxes and labels. Known (the track's voted identity): green, solid, thicker. Unknown or not yet
confirmed: orange, dashed. No recognition: grey, solid, labelled "face". The label goes below the box."""

from __future__ import annotations

import cv2
import numpy as np

from realtime.config import OverlayConfig
from realtime.draw.colors import FACE, KNOWN, LANDMARK, UNKNOWN
from realtime.draw.layout import Layout
from realtime.draw.text import box_points, draw_dashed_rectangle, draw_text_box, label_size
from realtime.types import FaceDetections, FaceIdentities


def face_label(identity: str | None, tentative: str | None, distance: float) -> str:
    """The one face label convention: the name (or "unknown"), "?" while the track's vote has not confirmed the
    name its newest embedding gives, and ``d=`` the distance to the nearest enrolled face (lower is closer)."""
    if identity:
        name = identity
    elif tentative:
        name = f"{tentative}?"
    else:
        name = "unknown"
    return name if np.isnan(distance) else f"{name} d={distance:.2f}"


def face_state(identities: FaceIdentities | None, i: int) -> tuple[tuple[int, int, int], str, bool]:
    """(colour, label, dashed) of face ``i``; ``identities`` None: no recognition."""
    if identities is None:
        return FACE, "face", False
    latest = identities.names[i]
    identity = identities.track_names[i]
    distance = float(identities.distances[i])
    if identity:
        return KNOWN, face_label(identity, None, distance), False
    return UNKNOWN, face_label(None, latest, distance), True


class FaceAnnotator:
    """Draws face boxes (and landmarks) with :meth:`draw_boxes`, their labels with :meth:`draw_labels`."""

    def __init__(self, style: OverlayConfig, scale: float):
        self.style = style
        self.scale = scale

    def draw_boxes(self, image: np.ndarray, faces: FaceDetections, identities: FaceIdentities | None) -> None:
        for i in range(len(faces)):
            x1, y1, x2, y2 = box_points(faces.boxes_xyxy[i])
            color, _, dashed = face_state(identities, i)
            if dashed:
                draw_dashed_rectangle(image, (x1, y1), (x2, y2), color, self.style.thickness)
            else:
                cv2.rectangle(image, (x1, y1), (x2, y2), color,
                              self.style.thickness + (1 if color == KNOWN else 0))
            if self.style.landmarks:
                for x, y in faces.landmarks5[i]:
                    cv2.circle(image, (int(round(x)), int(round(y))), 2, LANDMARK, -1, cv2.LINE_AA)

    def draw_labels(self, image: np.ndarray, faces: FaceDetections, identities: FaceIdentities | None,
                    layout: Layout) -> None:
        for i in range(len(faces)):
            x1, y1, x2, y2 = box_points(faces.boxes_xyxy[i])
            color, text, _ = face_state(identities, i)
            w, h = label_size(text, self.scale)
            rect = layout.place(text, (w, h), [(x1, y2 + 2), (x1, y1 - h), (x1, y2 - h), (x1, y1)])
            if rect is not None:
                draw_text_box(image, text, rect, color, self.scale)
