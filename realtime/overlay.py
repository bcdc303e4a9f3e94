"""Drawing: boxes, labels, landmarks, identities, decisions and a status readout. Pure: returns a new image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from realtime.config import OverlayConfig
from realtime.types import Detections, Faces, FramePacket

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_KNOWN = (80, 200, 60)
_UNKNOWN = (40, 140, 255)
_LANDMARK = (255, 255, 0)


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


def draw_detections(image: np.ndarray, detections: Detections, style: OverlayConfig) -> None:
    for box, score, cid in zip(detections.boxes_xyxy, detections.scores, detections.class_ids):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        color = class_color(int(cid))
        cv2.rectangle(image, (x1, y1), (x2, y2), color, style.thickness)
        name = detections.class_names[int(cid)] if int(cid) < len(detections.class_names) else str(int(cid))
        draw_label(image, f"{name} {score:.2f}", x1, y1, color, style.font_scale)


def draw_faces(image: np.ndarray, faces: Faces, style: OverlayConfig) -> None:
    for i in range(len(faces)):
        x1, y1, x2, y2 = (int(round(v)) for v in faces.boxes_xyxy[i])
        identity = faces.identities[i] if i < len(faces.identities) else None
        distance = faces.distances[i] if i < len(faces.distances) else np.nan
        color = _KNOWN if identity else _UNKNOWN
        cv2.rectangle(image, (x1, y1), (x2, y2), color, style.thickness)
        if style.landmarks:
            for x, y in faces.landmarks5[i]:
                cv2.circle(image, (int(round(x)), int(round(y))), 2, _LANDMARK, -1, cv2.LINE_AA)
        name = identity or "unknown"
        text = name if np.isnan(distance) else f"{name} {distance:.2f}"
        draw_label(image, text, x1, y2 + int(18 * style.font_scale / 0.5), color, style.font_scale)


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
    """What the status panel shows for one frame."""

    fps: float = 0.0
    dropped: int = 0
    extra: tuple[str, ...] = ()


def hud_lines(packet: FramePacket, hud: Hud, style: OverlayConfig) -> list[str]:
    lines = [f"{hud.fps:5.1f} FPS  frame {packet.index}  dropped {hud.dropped}"]
    if style.stage_ms and packet.timings_ms:
        lines.append("  ".join(f"{k} {v:.1f}ms" for k, v in packet.timings_ms.items()))
    lines.extend(hud.extra)
    return lines


def render(packet: FramePacket, hud: Hud, style: OverlayConfig, show_overlays: bool = True) -> np.ndarray:
    """The displayed frame: the styled frame when present, else a copy of the original, with overlays."""
    base = packet.styled_bgr if packet.styled_bgr is not None else packet.frame_bgr
    image = base.copy()
    if show_overlays and style.enabled:
        draw_detections(image, packet.detections, style)
        draw_faces(image, packet.faces, style)
        draw_decisions(image, packet.decisions, style)
        draw_status(image, hud_lines(packet, hud, style), style)
    return image
