"""A key to the boxes on screen (known/unknown faces and what ``d=`` means, objects and what ``#`` and ``%``
mean, held tracks), in the corner of the frame with the fewest boxes; shorter wording on small frames, none when
even that would cover too much of the picture."""

from __future__ import annotations

import cv2
import numpy as np

from realtime.draw.boxes import objects_to_draw
from realtime.draw.colors import FACE, KNOWN, UNKNOWN, class_color
from realtime.draw.layout import Layout
from realtime.draw.text import FONT, Rect, darken, draw_dashed_rectangle
from realtime.types import FramePacket

Row = tuple[tuple[int, int, int], bool, str, str]  # colour, dashed, long text, short text


def legend_rows(packet: FramePacket) -> list[Row]:
    rows: list[Row] = []
    faces = packet.faces
    if len(faces):
        if packet.identities is not None:
            rows.append((KNOWN, False, "known face: name d=distance (lower = closer)", "known face"))
            rows.append((UNKNOWN, True, "unknown face (name? = not confirmed yet)", "unknown face"))
        else:
            rows.append((FACE, False, "face (recognition off)", "face"))
    det = packet.detections
    shown = objects_to_draw(det, faces)
    if len(shown):
        solid = [i for i in shown if not det.continued[i]]
        if solid:
            rows.append((class_color(int(det.class_ids[solid[0]])), False, "object: class #track confidence%",
                         "object"))
        held = [i for i in shown if det.continued[i]]
        if held:
            rows.append((class_color(int(det.class_ids[held[0]])), True, "track held by a low-score box",
                         "held track"))
    return rows


def _panel_size(rows: list[Row], long: bool, scale: float) -> tuple[int, int, int]:
    line_h = cv2.getTextSize("Ag", FONT, scale, 1)[0][1] * 2 + 4
    swatch = int(line_h * 1.3)
    text_w = max(cv2.getTextSize(r[2] if long else r[3], FONT, scale, 1)[0][0] for r in rows)
    return text_w + swatch + 18, line_h * len(rows) + 8, line_h


def _covered(corner: Rect, boxes: np.ndarray) -> float:
    if not len(boxes):
        return 0.0
    x1 = np.clip(boxes[:, 0], corner.x1, corner.x2)
    x2 = np.clip(boxes[:, 2], corner.x1, corner.x2)
    y1 = np.clip(boxes[:, 1], corner.y1, corner.y2)
    y2 = np.clip(boxes[:, 3], corner.y1, corner.y2)
    return float(((x2 - x1) * (y2 - y1)).sum())


class LegendAnnotator:
    """:meth:`reserve` picks the wording and the corner before labels are placed; :meth:`draw` draws it after."""

    def __init__(self, packet: FramePacket, scale: float):
        self.rows = legend_rows(packet)
        self.scale = scale * 0.9
        self.boxes = np.concatenate([packet.detections.boxes_xyxy.reshape(-1, 4),
                                     packet.faces.boxes_xyxy.reshape(-1, 4)]).astype(np.float64)
        self.rect: Rect | None = None
        self._long = True
        self._line_h = 0

    def reserve(self, layout: Layout) -> None:
        if not self.rows:
            return
        w, h = layout.width, layout.height
        for long, share_w, share_h in ((True, 0.45, 0.25), (False, 0.5, 0.35)):
            pw, ph, line_h = _panel_size(self.rows, long, self.scale)
            if pw <= share_w * w and ph <= share_h * h:
                break
        else:
            return  # even the short key would cover too much of a frame this small
        self._long, self._line_h = long, line_h
        corners = [Rect(w - pw, h - ph, w, h), Rect(0, h - ph, pw, h), Rect(w - pw, 0, w, ph), Rect(0, 0, pw, ph)]
        free = [c for c in corners if not any(c.overlaps(p) for p in layout.panels.values())]
        if not free:
            return
        self.rect = min(free, key=lambda c: _covered(c, self.boxes))  # ties keep the order: bottom right first
        layout.reserve("legend", self.rect)

    def draw(self, image: np.ndarray) -> None:
        if self.rect is None:
            return
        darken(image, self.rect, 0.35)
        x0, y0, line_h = self.rect.x1, self.rect.y1, self._line_h
        swatch = int(line_h * 1.3)
        for k, (color, dashed, long_text, short_text) in enumerate(self.rows):
            y = y0 + 4 + k * line_h
            p1, p2 = (x0 + 6, y + 2), (x0 + 6 + swatch, y + line_h - 3)
            if dashed:
                draw_dashed_rectangle(image, p1, p2, color, 2, dash=4)
            else:
                cv2.rectangle(image, p1, p2, color, 2)
            cv2.putText(image, long_text if self._long else short_text, (x0 + swatch + 12, y + line_h - 5), FONT,
                        self.scale, (255, 255, 255), 1, cv2.LINE_AA)
