"""Text and shape primitives: the font, label boxes, dashed rectangles, the frame-size scale. Draw in place."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from realtime.config import OverlayConfig

FONT = cv2.FONT_HERSHEY_SIMPLEX
REFERENCE_SIDE = 480  # font_scale is what a frame whose short side is this many pixels gets


@dataclass(frozen=True)
class Rect:
    """An axis-aligned rectangle in image pixels, ``x2``/``y2`` exclusive."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1

    def overlaps(self, other: "Rect") -> bool:
        return self.x1 < other.x2 and other.x1 < self.x2 and self.y1 < other.y2 and other.y1 < self.y2

    def inside(self, width: int, height: int) -> bool:
        return self.x1 >= 0 and self.y1 >= 0 and self.x2 <= width and self.y2 <= height

    def moved(self, x1: int, y1: int) -> "Rect":
        return Rect(x1, y1, x1 + self.width, y1 + self.height)


def ui_scale(image: np.ndarray, style: OverlayConfig) -> float:
    """The font scale for ``image``: ``style.font_scale`` on a frame whose short side is 480 px, in proportion on
    others (between 0.6x and 3x), so labels and panels keep their share of the picture."""
    side = min(image.shape[:2])
    return style.font_scale * float(np.clip(side / REFERENCE_SIDE, 0.6, 3.0))


def line_width(scale: float) -> int:
    return max(1, int(round(scale * 2)))


def label_size(text: str, scale: float) -> tuple[int, int]:
    """(width, height) of a filled label box holding ``text``."""
    (tw, th), baseline = cv2.getTextSize(text, FONT, scale, line_width(scale) // 2 or 1)
    return tw + 6, th + baseline + 6


def ink_for(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``color`` (BGR)."""
    luminance = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def draw_text_box(image: np.ndarray, text: str, rect: Rect, color: tuple[int, int, int], scale: float) -> None:
    """A filled ``color`` box at ``rect`` with ``text`` in black or white, drawn in place."""
    cv2.rectangle(image, (rect.x1, rect.y1), (rect.x2 - 1, rect.y2 - 1), color, -1)
    (_, th), baseline = cv2.getTextSize(text, FONT, scale, line_width(scale) // 2 or 1)
    cv2.putText(image, text, (rect.x1 + 3, rect.y2 - baseline - 3), FONT, scale, ink_for(color),
                line_width(scale) // 2 or 1, cv2.LINE_AA)


def darken(image: np.ndarray, rect: Rect, keep: float = 0.35) -> None:
    """Darken ``rect`` of ``image`` in place (a panel background that lets the picture show through)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = max(0, rect.x1), max(0, rect.y1), min(w, rect.x2), min(h, rect.y2)
    if x2 > x1 and y2 > y1:
        panel = image[y1:y2, x1:x2]
        panel[:] = (panel * keep).astype(np.uint8)


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


def box_points(box_xyxy) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (int(round(float(v))) for v in box_xyxy)
    return x1, y1, x2, y2
