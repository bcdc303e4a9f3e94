"""Door drawing: green GRANT + name, red DENY + reason, amber WAIT ("hold still"), red alarm banners across the
top, and the standing "no liveness check" notice at the bottom left of every door frame. An annotator for
:func:`realtime.overlay.render` (``extra=(door_annotator,)``), so its labels share the frame's label layout."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from realtime.config import OverlayConfig
from realtime.door.events import DENY, GRANT, DoorAlarm, DoorDecision
from realtime.draw.layout import Layout
from realtime.draw.text import FONT, Rect, box_points, draw_text_box, label_size
from realtime.types import FramePacket

DECISION_COLORS = {"GRANT": (60, 190, 40), "DENY": (40, 40, 230), "WAIT": (0, 190, 255)}
NOTICE_COLOR = (0, 190, 255)
ALARM_COLOR = (0, 0, 200)
NO_LIVENESS_NOTICE = "NO LIVENESS CHECK - a photo of an enrolled face opens this door"


def decision_text(decision: DoorDecision) -> str:
    if decision.verdict == GRANT:
        return f"GRANT {decision.person}"
    if decision.verdict == DENY:
        return f"DENY {decision.person + ': ' if decision.person else ''}{decision.reason}"
    return decision.reason or "hold still"


def draw_alarm(image: np.ndarray, text: str, style: OverlayConfig) -> None:
    """A red banner with ``text`` across the top of ``image``, in place."""
    h = image.shape[0]
    scale = style.font_scale * 1.3
    (_, th), base = cv2.getTextSize(text, FONT, scale, 2)
    band = th + base + 12
    image[:min(band, h)] = ALARM_COLOR
    cv2.putText(image, text, (6, th + 6), FONT, scale, (255, 255, 255), 2, cv2.LINE_AA)


class DoorAnnotator:
    """The decisions of one packet: boxes, labels through the layout, the alarm banner and the notice panels."""

    def __init__(self, decisions: Sequence, style: OverlayConfig, scale: float):
        self.decisions = [d for d in decisions if isinstance(d, DoorDecision)]
        self.alarms = [d for d in decisions if isinstance(d, DoorAlarm)]
        self.style = style
        self.scale = scale
        self._notice: Rect | None = None
        self._alarm: Rect | None = None

    def reserve(self, layout: Layout) -> None:
        w, h = label_size(NO_LIVENESS_NOTICE, self.scale)
        if w > layout.width:  # a narrow frame: the shortest honest wording
            w, h = label_size("NO LIVENESS CHECK", self.scale)
            self.notice_text = "NO LIVENESS CHECK"
        else:
            self.notice_text = NO_LIVENESS_NOTICE
        self._notice = Rect(0, layout.height - h, min(w, layout.width), layout.height)
        layout.reserve("door_notice", self._notice)
        if self.alarms:
            scale = self.style.font_scale * 1.3
            (_, th), base = cv2.getTextSize("A", FONT, scale, 2)
            self._alarm = Rect(0, 0, layout.width, min(layout.height, th + base + 12))
            layout.reserve("alarm", self._alarm)

    def draw_boxes(self, image: np.ndarray) -> None:
        for d in self.decisions:
            x1, y1, x2, y2 = box_points(d.box_xyxy)
            cv2.rectangle(image, (x1, y1), (x2, y2), DECISION_COLORS.get(str(d.verdict), DECISION_COLORS["WAIT"]),
                          self.style.thickness + 1)

    def draw_labels(self, image: np.ndarray, layout: Layout) -> None:
        scale = self.scale * 1.2
        for d in self.decisions:
            x1, y1, _, y2 = box_points(d.box_xyxy)
            text = decision_text(d)
            w, h = label_size(text, scale)
            rect = layout.place(text, (w, h), [(x1, y1 - h), (x1, y1), (x1, y2)])
            if rect is not None:
                draw_text_box(image, text, rect, DECISION_COLORS.get(str(d.verdict), DECISION_COLORS["WAIT"]),
                              scale)

    def draw_panels(self, image: np.ndarray) -> None:
        for alarm in self.alarms:
            draw_alarm(image, f"ALARM {alarm.reason}", self.style)
        if self._notice is not None:
            draw_text_box(image, self.notice_text, self._notice, NOTICE_COLOR, self.scale)


def door_annotator(packet: FramePacket, style: OverlayConfig, scale: float) -> DoorAnnotator:
    """The :data:`realtime.overlay.AnnotatorFactory` for door frames."""
    return DoorAnnotator(packet.decisions, style, scale)
