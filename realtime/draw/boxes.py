"""Object boxes and their labels: class colour, label "class #track NN%"; a box kept only to continue a track
(below its class's threshold) is drawn thin and dashed, without a label: a held track, not a detection."""

from __future__ import annotations

import cv2
import numpy as np

from realtime.boxes import box_iou
from realtime.config import OverlayConfig
from realtime.draw.colors import class_color
from realtime.draw.layout import Layout
from realtime.draw.text import box_points, draw_dashed_rectangle, draw_text_box, label_size
from realtime.types import Detections, FaceDetections

FACE_CLASS = "face"
SAME_FACE_IOU = 0.3  # an object box of class "face" overlapping a face-stage box this much is the same face


def objects_to_draw(detections: Detections, faces: FaceDetections) -> np.ndarray:
    """Indices of the detections to draw: all but the class-"face" boxes that coincide with a face-stage box
    (IoU >= ``SAME_FACE_IOU``), so each face is drawn once, by the face stage. int64 (K,)."""
    keep = np.ones(len(detections), dtype=bool)
    if len(detections) and len(faces):
        is_face = np.asarray([detections.class_name(i) == FACE_CLASS for i in range(len(detections))])
        if is_face.any():
            overlap = box_iou(detections.boxes_xyxy[is_face], faces.boxes_xyxy).max(axis=1)
            keep[np.flatnonzero(is_face)[overlap >= SAME_FACE_IOU]] = False
    return np.flatnonzero(keep)


def object_label(detections: Detections, i: int) -> str:
    track = int(detections.track_ids[i])
    name = detections.class_name(i) + (f" #{track}" if track >= 0 else "")
    return f"{name} {100 * float(detections.scores[i]):.0f}%"


class BoxAnnotator:
    """Draws object boxes (:meth:`draw_boxes`) and then their labels (:meth:`draw_labels`, placed by the
    layout so they avoid panels and each other; best scores are placed first)."""

    def __init__(self, style: OverlayConfig, scale: float):
        self.style = style
        self.scale = scale

    def draw_boxes(self, image: np.ndarray, detections: Detections, faces: FaceDetections) -> None:
        for i in objects_to_draw(detections, faces):
            x1, y1, x2, y2 = box_points(detections.boxes_xyxy[i])
            color = class_color(int(detections.class_ids[i]))
            if detections.continued[i]:
                draw_dashed_rectangle(image, (x1, y1), (x2, y2), color, 1, dash=4)
            else:
                cv2.rectangle(image, (x1, y1), (x2, y2), color, self.style.thickness)

    def draw_labels(self, image: np.ndarray, detections: Detections, faces: FaceDetections, layout: Layout) -> None:
        shown = [i for i in objects_to_draw(detections, faces) if not detections.continued[i]]
        for i in sorted(shown, key=lambda k: -float(detections.scores[k])):
            x1, y1, x2, y2 = box_points(detections.boxes_xyxy[i])
            text = object_label(detections, i)
            w, h = label_size(text, self.scale)
            anchors = [(x1, y1 - h), (x1, y1), (x1, y2), (x1, y2 - h), (x2 - w, y1 - h)]
            rect = layout.place(text, (w, h), anchors)
            if rect is not None:
                draw_text_box(image, text, rect, class_color(int(detections.class_ids[i])), self.scale)
