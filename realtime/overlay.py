"""The overlay: one rendered view per frame, composed from small annotators (``realtime.draw``): object boxes,
faces, the legend, and - only when asked - the status bar. Pure: returns a new image, never draws on the frame.

Every label goes through one :class:`realtime.draw.layout.Layout`: inside the frame, never on a panel (status
bar, legend, notices), never on another label; :func:`render_layout` returns that geometry with the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

from realtime.config import OverlayConfig
from realtime.draw.boxes import BoxAnnotator
from realtime.draw.faces import FaceAnnotator
from realtime.draw.hud import PAUSED_BANNER, Hud, StatusAnnotator, draw_notice, hud_lines, with_status_strip
from realtime.draw.layout import Layout
from realtime.draw.legend import LegendAnnotator
from realtime.draw.text import ui_scale
from realtime.types import FramePacket

__all__ = ["PAUSED_BANNER", "Hud", "Rendered", "hud_lines", "render", "render_layout", "window_view"]


class PacketAnnotator(Protocol):
    """An extra layer (door decisions): panels first, then boxes, then labels through the layout, then panels."""

    def reserve(self, layout: Layout) -> None: ...

    def draw_boxes(self, image: np.ndarray) -> None: ...

    def draw_labels(self, image: np.ndarray, layout: Layout) -> None: ...

    def draw_panels(self, image: np.ndarray) -> None: ...


AnnotatorFactory = Callable[[FramePacket, OverlayConfig, float], PacketAnnotator]


@dataclass(frozen=True)
class Rendered:
    """The rendered image and where its labels and panels went (``layout.labels``, ``layout.panels``)."""

    image: np.ndarray
    layout: Layout


def render_layout(packet: FramePacket, hud: Hud | None, style: OverlayConfig, show_overlays: bool = True,
                  extra: Sequence[AnnotatorFactory] = ()) -> Rendered:
    """The displayed frame (the styled frame when present, else a copy of the original) with overlays.

    ``hud``: draw the status bar inside the frame (top left) and the key notices; None: neither (recordings,
    unless ``overlay.hud``). The pause banner and the key notice are drawn even with overlays off, so every key
    gives visible feedback.
    """
    base = packet.styled_bgr if packet.styled_bgr is not None else packet.frame_bgr
    image = base.copy()
    h, w = image.shape[:2]
    layout = Layout(w, h)
    scale = ui_scale(image, style)
    if show_overlays and style.enabled:
        layers = [make(packet, style, scale) for make in extra]
        for layer in layers:
            layer.reserve(layout)
        status = StatusAnnotator(hud_lines(packet, hud, style) if hud is not None else (), scale)
        status.reserve(layout)
        legend = LegendAnnotator(packet, scale)
        legend.reserve(layout)
        objects, faces = BoxAnnotator(style, scale), FaceAnnotator(style, scale)
        objects.draw_boxes(image, packet.detections, packet.faces)
        faces.draw_boxes(image, packet.faces, packet.identities)
        for layer in layers:
            layer.draw_boxes(image)
        faces.draw_labels(image, packet.faces, packet.identities, layout)
        for layer in layers:
            layer.draw_labels(image, layout)
        objects.draw_labels(image, packet.detections, packet.faces, layout)
        for layer in layers:
            layer.draw_panels(image)
        legend.draw(image)
        status.draw(image)
    if hud is not None:
        if hud.paused:
            draw_notice(image, PAUSED_BANNER, scale * 1.4, top=True)
        draw_notice(image, hud.notice, scale * 1.4)
    return Rendered(image, layout)


def render(packet: FramePacket, hud: Hud | None, style: OverlayConfig, show_overlays: bool = True,
           extra: Sequence[AnnotatorFactory] = ()) -> np.ndarray:
    """:func:`render_layout`'s image."""
    return render_layout(packet, hud, style, show_overlays, extra).image


def window_view(image: np.ndarray, packet: FramePacket, hud: Hud, style: OverlayConfig,
                show_overlays: bool = True) -> np.ndarray:
    """What the live window shows: the rendered ``image`` with the status bar as a strip above the picture (never
    on it), and the pause banner and the key notice on it."""
    view = image.copy()
    scale = ui_scale(view, style)
    if hud.paused:
        draw_notice(view, PAUSED_BANNER, scale * 1.4, top=True)
    draw_notice(view, hud.notice, scale * 1.4)
    if not (show_overlays and style.enabled):
        return view
    return with_status_strip(view, hud_lines(packet, hud, style), scale)
