"""Live toggles and the keys that change them, between frames: q/Esc quit, space pause, o overlays, s next style."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

KEY_QUIT = (ord("q"), 27)
KEY_PAUSE = ord(" ")
KEY_OVERLAYS = ord("o")
KEY_STYLE = ord("s")


@dataclass
class Controls:
    """What the keys changed: the loop reads it before every frame."""

    overlays: bool = True
    paused: bool = False
    quit: bool = False


class KeyController:
    """Turns keys into :class:`Controls` changes. ``cycle_style``: called on ``s`` (None: no style stage)."""

    def __init__(self, controls: Controls, cycle_style: Callable[[], None] | None = None):
        self.controls = controls
        self.cycle_style = cycle_style

    def handle(self, key: int) -> None:
        if key in KEY_QUIT:
            self.controls.quit = True
        elif key == KEY_OVERLAYS:
            self.controls.overlays = not self.controls.overlays
        elif key == KEY_STYLE and self.cycle_style is not None:
            self.cycle_style()
        elif key == KEY_PAUSE:
            self.controls.paused = not self.controls.paused
