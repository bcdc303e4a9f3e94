"""Colours (BGR). Face states and door verdicts own their hues; object classes take the rest of the hue circle,
so a class colour never equals a face-state colour (a cup is never "known face" green)."""

from __future__ import annotations

import cv2
import numpy as np

KNOWN = (80, 200, 60)  # green: a face the gallery names
UNKNOWN = (40, 140, 255)  # orange: unknown, or a name not confirmed yet
FACE = (200, 200, 200)  # grey: a face without recognition
LANDMARK = (255, 255, 0)
FACE_STATE_COLORS = (KNOWN, UNKNOWN, FACE)

# OpenCV hue (0..179) bands kept for face states: orange (unknown) and green (known); classes skip them
_RESERVED_HUES = ((6, 30), (42, 78))
_FREE_HUES = np.array([h for h in range(180) if not any(lo <= h <= hi for lo, hi in _RESERVED_HUES)])


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class id: golden-ratio steps over the hues no face state uses."""
    hue = int(_FREE_HUES[int((class_id * 0.618033988749895 % 1.0) * len(_FREE_HUES))])
    hsv = np.uint8([[[hue, 200, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def hue_of(color: tuple[int, int, int]) -> int:
    """OpenCV hue (0..179) of a BGR colour."""
    return int(cv2.cvtColor(np.uint8([[color]]), cv2.COLOR_BGR2HSV)[0, 0, 0])
