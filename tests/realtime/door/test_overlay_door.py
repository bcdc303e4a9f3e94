"""Decisions drawn by the overlay: green GRANT, red DENY, amber WAIT, alarm banner, the no-liveness notice."""

from __future__ import annotations

import numpy as np

from realtime.config import OverlayConfig
from realtime.door.policy import DENY, GRANT, WAIT, DoorAlarm, DoorDecision
from realtime.door.overlay import door_annotator
from realtime.overlay import render
from realtime.types import FramePacket

BOX = (40.0, 60.0, 120.0, 160.0)


def _render(*decisions):
    frame = np.full((240, 320, 3), 255, np.uint8)
    packet = FramePacket(index=0, t_capture=0.0, t_source=0.0, frame_bgr=frame, decisions=tuple(decisions))
    return render(packet, None, OverlayConfig(stage_ms=False), extra=(door_annotator,)), frame


def _edge(image):
    return tuple(int(v) for v in image[110, 40])  # left edge of the box, away from labels


def test_verdict_colours_on_the_box_and_frame_untouched():
    granted, frame = _render(DoorDecision(GRANT, 1, "ann", "recognised", BOX))
    assert (frame == 255).all()
    b, g, r = _edge(granted)
    assert g > 150 and r < 100 and b < 100
    b, g, r = _edge(_render(DoorDecision(DENY, 1, None, "unknown person", BOX))[0])
    assert r > 200 and g < 100
    b, g, r = _edge(_render(DoorDecision(WAIT, 1, None, "hold still (2/5 good frames)", BOX))[0])
    assert r > 200 and 120 < g < 230 and b < 50


def test_no_liveness_notice_and_alarm_banner():
    plain, _ = _render()
    with_decision, _ = _render(DoorDecision(WAIT, 1, None, "hold still", BOX))
    bottom = slice(220, 240)
    assert not (plain[bottom] == 255).all() and not (with_decision[bottom] == 255).all()  # on every door frame
    alarm, _ = _render(DoorAlarm("camera", "camera lost"))
    assert tuple(int(v) for v in alarm[2, 300]) == (0, 0, 200)
