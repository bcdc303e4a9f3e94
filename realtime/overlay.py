"""Drawing: boxes, labels, landmarks, identities, decisions and a status readout. Pure: returns a new image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from realtime.boxes import box_iou
from realtime.config import OverlayConfig
from realtime.types import Detections, FaceDetections, FaceIdentities, FramePacket

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_KNOWN = (80, 200, 60)
_UNKNOWN = (40, 140, 255)
_FACE = (200, 200, 200)
_LANDMARK = (255, 255, 0)
PAUSED_BANNER = "PAUSED - space to resume"


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class id (golden-ratio hue steps)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.uint8([[[hue, 200, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_label(image: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int],
               font_scale: float = 0.5) -> None:
    """Filled label box with ``text`` whose bottom-left is at (x, y); drawn in place on ``image``."""
    (tw, th), baseline = cv2.getTextSize(text, _FONT, font_scale, 1)
    y = max(y, th + baseline + 2)
    x = max(0, min(x, image.shape[1] - tw - 4))  # keep the whole label inside the frame
    cv2.rectangle(image, (x, y - th - baseline - 2), (x + tw + 4, y), color, -1)
    luminance = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(image, text, (x + 2, y - baseline - 1), _FONT, font_scale, ink, 1, cv2.LINE_AA)


FACE_CLASS = "face"
SAME_FACE_IOU = 0.3  # an object box of class "face" overlapping a face-stage box this much is the same face


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


def draw_dashed_rectangle(image: np.ndarray, p1: tuple[int, int], p2: tuple[int, int], color: tuple[int, int, int],
                          thickness: int = 2, dash: int = 8) -> None:
    """A dashed rectangle from ``p1`` to ``p2`` (dashes of ``dash`` px, gaps as long), drawn in place."""
    (x1, y1), (x2, y2) = p1, p2
    for a, b in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = max(abs(b[0] - a[0]), abs(b[1] - a[1]))
        for start in range(0, max(length, 1), 2 * dash):
            t0, t1 = start / max(length, 1), min(start + dash, length) / max(length, 1)
            q0 = (int(round(a[0] + (b[0] - a[0]) * t0)), int(round(a[1] + (b[1] - a[1]) * t0)))
            q1 = (int(round(a[0] + (b[0] - a[0]) * t1)), int(round(a[1] + (b[1] - a[1]) * t1)))
            cv2.line(image, q0, q1, color, thickness, cv2.LINE_AA)


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


def draw_detections(image: np.ndarray, detections: Detections, style: OverlayConfig,
                    faces: FaceDetections | None = None) -> None:
    """One box per object: class colour, label "class #track NN%" (``#track`` once the tracker confirmed it; the
    percentage is the detector's confidence). Object boxes of faces the face stage drew are left out."""
    for i in objects_to_draw(detections, faces if faces is not None else FaceDetections()):
        x1, y1, x2, y2 = (int(round(v)) for v in detections.boxes_xyxy[i])
        color = class_color(int(detections.class_ids[i]))
        cv2.rectangle(image, (x1, y1), (x2, y2), color, style.thickness)
        track = int(detections.track_ids[i])
        name = detections.class_name(i) + (f" #{track}" if track >= 0 else "")
        draw_label(image, f"{name} {100 * float(detections.scores[i]):.0f}%", x1, y1, color, style.font_scale)


def draw_faces(image: np.ndarray, faces: FaceDetections, identities: FaceIdentities | None,
               style: OverlayConfig) -> None:
    """One box per face. Known (the track's voted identity): green, solid, thicker. Unknown or not yet confirmed:
    orange, dashed. No recognition (``identities`` None): grey, solid, labelled "face". Label below the box
    (:func:`face_label`)."""
    for i in range(len(faces)):
        x1, y1, x2, y2 = (int(round(v)) for v in faces.boxes_xyxy[i])
        latest = identities.names[i] if identities is not None else None
        identity = identities.track_names[i] if identities is not None else None
        distance = float(identities.distances[i]) if identities is not None else np.nan
        if identities is None:
            color, text = _FACE, "face"
            cv2.rectangle(image, (x1, y1), (x2, y2), color, style.thickness)
        elif identity:
            color, text = _KNOWN, face_label(identity, None, distance)
            cv2.rectangle(image, (x1, y1), (x2, y2), color, style.thickness + 1)
        else:
            color, text = _UNKNOWN, face_label(None, latest, distance)
            draw_dashed_rectangle(image, (x1, y1), (x2, y2), color, style.thickness)
        if style.landmarks:
            for x, y in faces.landmarks5[i]:
                cv2.circle(image, (int(round(x)), int(round(y))), 2, _LANDMARK, -1, cv2.LINE_AA)
        draw_label(image, text, x1, y2 + int(18 * style.font_scale / 0.5), color, style.font_scale)


def draw_legend(image: np.ndarray, packet: FramePacket, style: OverlayConfig) -> None:
    """A key to the boxes at the bottom right, only for what is on screen: known/unknown faces and what ``d=``
    means, objects and what ``#`` and ``%`` mean."""
    rows: list[tuple[tuple[int, int, int], bool, str]] = []
    faces = packet.faces
    if len(faces):
        if packet.identities is not None:
            rows.append((_KNOWN, False, "known face: name d=distance (lower = closer)"))
            rows.append((_UNKNOWN, True, "unknown face (name? = not confirmed yet)"))
        else:
            rows.append((_FACE, False, "face (recognition off)"))
    shown = objects_to_draw(packet.detections, faces)
    if len(shown):
        cid = int(packet.detections.class_ids[shown[0]])
        rows.append((class_color(cid), False, "object: class #track confidence%"))
    if not rows:
        return
    scale = style.font_scale * 0.9
    line_h = int(20 * scale / 0.45)
    width = max(cv2.getTextSize(t, _FONT, scale, 1)[0][0] for _, _, t in rows) + 44
    h, w = image.shape[:2]
    x0, y0 = max(0, w - width - 4), max(0, h - line_h * len(rows) - 8)
    panel = image[y0:h - 2, x0:w - 2]
    panel[:] = (panel * 0.35).astype(np.uint8)
    for k, (color, dashed, text) in enumerate(rows):
        y = y0 + 6 + k * line_h
        p1, p2 = (x0 + 6, y + 2), (x0 + 32, y + line_h - 6)
        if dashed:
            draw_dashed_rectangle(image, p1, p2, color, 2, dash=4)
        else:
            cv2.rectangle(image, p1, p2, color, 2)
        cv2.putText(image, text, (x0 + 38, y + line_h - 8), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def draw_notice(image: np.ndarray, text: str, style: OverlayConfig, top: bool = False) -> None:
    """A short message in a dark box, centred near the bottom (``top``: near the top), drawn in place."""
    if not text:
        return
    scale = style.font_scale * 1.4
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 2)
    h, w = image.shape[:2]
    x = max(0, (w - tw) // 2)
    y = int(h * 0.12) + th if top else int(h * 0.82)
    cv2.rectangle(image, (max(0, x - 10), y - th - 10), (min(w - 1, x + tw + 10), y + base + 6), (30, 30, 30), -1)
    cv2.putText(image, text, (x, y), _FONT, scale, (255, 255, 255), 2, cv2.LINE_AA)


def draw_status(image: np.ndarray, lines: Sequence[str], style: OverlayConfig) -> None:
    """Semi-transparent panel with ``lines`` at the top-left, drawn in place."""
    if not lines:
        return
    line_h = int(22 * style.font_scale / 0.5)
    width = max(cv2.getTextSize(t, _FONT, style.font_scale, 1)[0][0] for t in lines) + 12
    height = line_h * len(lines) + 8
    h, w = image.shape[:2]
    x2, y2 = min(width, w), min(height, h)
    panel = image[:y2, :x2]
    panel[:] = (panel * 0.45).astype(np.uint8)
    for k, text in enumerate(lines):
        cv2.putText(image, text, (6, 4 + line_h * (k + 1) - 6), _FONT, style.font_scale, (255, 255, 255), 1,
                    cv2.LINE_AA)


_DECISION_COLORS = {"GRANT": (60, 190, 40), "DENY": (40, 40, 230), "WAIT": (0, 190, 255)}
NO_LIVENESS_NOTICE = "NO LIVENESS CHECK - a photo of an enrolled face opens this door"


def draw_decisions(image: np.ndarray, decisions: Sequence, style: OverlayConfig) -> None:
    """Door decisions, drawn in place: green GRANT + name, red DENY + reason, amber WAIT ("hold still"), red alarm
    banners; plus a standing "no liveness check" notice at the bottom whenever decisions are drawn.

    Duck-typed (no import of ``realtime.door``): a decision has ``verdict``, ``person``, ``reason`` and
    ``box_xyxy``; an alarm has ``verdict == "ALARM"`` and ``reason``.
    """
    if not decisions:
        return
    thick = style.thickness + 1
    for d in decisions:
        verdict = getattr(d, "verdict", "")
        if verdict == "ALARM":
            draw_alarm(image, f"ALARM {d.reason}", style)
            continue
        box = getattr(d, "box_xyxy", None)
        if box is None:
            continue
        color = _DECISION_COLORS.get(verdict, _DECISION_COLORS["WAIT"])
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(image, (x1, y1), (x2, y2), color, thick)
        if verdict == "GRANT":
            text = f"GRANT {d.person}"
        elif verdict == "DENY":
            text = f"DENY {d.person + ': ' if d.person else ''}{d.reason}"
        else:
            text = d.reason or "hold still"
        draw_label(image, text, x1, max(0, y1 - 4), color, style.font_scale * 1.2)
    h = image.shape[0]
    draw_label(image, NO_LIVENESS_NOTICE, 0, h - 2, (0, 190, 255), style.font_scale)


def draw_alarm(image: np.ndarray, text: str, style: OverlayConfig) -> None:
    """A red banner with ``text`` across the top of ``image``, in place."""
    h, w = image.shape[:2]
    scale = style.font_scale * 1.3
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 2)
    band = th + base + 12
    image[:min(band, h)] = (0, 0, 200)
    cv2.putText(image, text, (6, th + 6), _FONT, scale, (255, 255, 255), 2, cv2.LINE_AA)


@dataclass(frozen=True)
class Hud:
    """What the status panel shows for one frame; ``notice``: the last key's message (empty: none); ``paused``:
    draw the pause banner."""

    fps: float = 0.0
    dropped: int = 0
    extra: tuple[str, ...] = ()
    notice: str = ""
    paused: bool = False


def hud_lines(packet: FramePacket, hud: Hud, style: OverlayConfig) -> list[str]:
    lines = [f"{hud.fps:5.1f} FPS  frame {packet.index}  dropped {hud.dropped}"]
    if style.stage_ms and packet.timings_ms:
        lines.append("  ".join(f"{k} {v:.1f}ms" for k, v in packet.timings_ms.items()))
    lines.extend(hud.extra)
    return lines


def render(packet: FramePacket, hud: Hud, style: OverlayConfig, show_overlays: bool = True) -> np.ndarray:
    """The displayed frame: the styled frame when present, else a copy of the original, with overlays. The pause
    banner and the key notice are drawn even with overlays off, so every key gives visible feedback."""
    base = packet.styled_bgr if packet.styled_bgr is not None else packet.frame_bgr
    image = base.copy()
    if show_overlays and style.enabled:
        draw_detections(image, packet.detections, style, packet.faces)
        draw_faces(image, packet.faces, packet.identities, style)
        draw_decisions(image, packet.decisions, style)
        draw_legend(image, packet, style)
        draw_status(image, hud_lines(packet, hud, style), style)
    if hud.paused:
        draw_notice(image, PAUSED_BANNER, style, top=True)
    draw_notice(image, hud.notice, style)
    return image
