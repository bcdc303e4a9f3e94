"""The status bar (frames per second, frame number, drops, stage timings) and the short notices keys give.

Live, it is a strip above the picture in the window (:func:`with_status_strip`), never on it and never in a
recording; ``overlay.hud: true`` also draws it inside recorded frames (top left, a panel labels avoid)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from realtime.config import OverlayConfig
from realtime.draw.layout import Layout
from realtime.draw.text import FONT, Rect, darken, line_width
from realtime.types import FramePacket

PAUSED_BANNER = "PAUSED - space to resume"


@dataclass(frozen=True)
class Hud:
    """What the status bar shows for one frame; ``notice``: the last key's message (empty: none); ``paused``:
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


def fit_text(text: str, scale: float, max_width: int) -> str:
    """``text``, cut (with "...") to at most ``max_width`` pixels wide at ``scale``."""
    def width(t: str) -> int:
        return cv2.getTextSize(t, FONT, scale, 1)[0][0]

    if width(text) <= max_width:
        return text
    while text and width(text + "...") > max_width:
        text = text[:-1]
    return text + "..." if text else ""


def _line_height(scale: float) -> int:
    (_, th), base = cv2.getTextSize("Ag", FONT, scale, 1)
    return th + base + 6


def status_panel(lines: Sequence[str], scale: float, width: int, height: int) -> tuple[Rect, list[str]]:
    """The status panel at the top left: its rect and the lines cut to fit (at most half the frame wide,
    at most a third of it high)."""
    max_w = max(1, width // 2 if width >= 480 else width - 8)
    lines = [fit_text(t, scale, max_w - 10) for t in lines]
    line_h = _line_height(scale)
    lines = lines[:max(1, (height // 3) // line_h)]
    panel_w = min(width, max(cv2.getTextSize(t, FONT, scale, 1)[0][0] for t in lines) + 12)
    return Rect(0, 0, panel_w, min(height, line_h * len(lines) + 6)), lines


def draw_lines(image: np.ndarray, rect: Rect, lines: Sequence[str], scale: float) -> None:
    """White ``lines`` on a darkened ``rect``, drawn in place."""
    darken(image, rect, 0.45)
    line_h = _line_height(scale)
    for k, text in enumerate(lines):
        cv2.putText(image, text, (rect.x1 + 6, rect.y1 + line_h * (k + 1) - 4), FONT, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)


class StatusAnnotator:
    """The status panel inside the frame: :meth:`reserve` before labels are placed, :meth:`draw` after."""

    def __init__(self, lines: Sequence[str], scale: float):
        self.lines = list(lines)
        self.scale = scale
        self._rect: Rect | None = None

    def reserve(self, layout: Layout) -> None:
        if self.lines:
            self._rect, self.lines = status_panel(self.lines, self.scale, layout.width, layout.height)
            layout.reserve("status", self._rect)

    def draw(self, image: np.ndarray) -> None:
        if self._rect is not None:
            draw_lines(image, self._rect, self.lines, self.scale)


def notice_rect(text: str, scale: float, width: int, height: int, top: bool) -> tuple[Rect, str]:
    text = fit_text(text, scale, width - 24)
    (tw, th), base = cv2.getTextSize(text, FONT, scale, line_width(scale))
    x = max(0, (width - tw) // 2)
    y = int(height * 0.12) + th if top else int(height * 0.82)
    return Rect(max(0, x - 10), max(0, y - th - 10), min(width, x + tw + 10), min(height, y + base + 6)), text


def draw_notice(image: np.ndarray, text: str, scale: float, top: bool = False) -> Rect | None:
    """A short message in a dark box, centred near the bottom (``top``: near the top), drawn in place."""
    if not text:
        return None
    h, w = image.shape[:2]
    rect, text = notice_rect(text, scale, w, h, top)
    cv2.rectangle(image, (rect.x1, rect.y1), (rect.x2 - 1, rect.y2 - 1), (30, 30, 30), -1)
    (_, th), base = cv2.getTextSize(text, FONT, scale, line_width(scale))
    cv2.putText(image, text, (rect.x1 + 10, rect.y2 - base - 6), FONT, scale, (255, 255, 255), line_width(scale),
                cv2.LINE_AA)
    return rect


def with_status_strip(image: np.ndarray, lines: Sequence[str], scale: float) -> np.ndarray:
    """``image`` with a dark strip above it holding ``lines`` (cut to the width): the live window's status bar,
    off the picture."""
    if not lines:
        return image
    w = image.shape[1]
    lines = [fit_text(t, scale, w - 12) for t in lines]
    strip = np.full((_line_height(scale) * len(lines) + 6, w, 3), 24, np.uint8)
    draw_lines(strip, Rect(0, 0, w, strip.shape[0]), lines, scale)
    return np.concatenate([strip, image], axis=0)
