"""Live toggles and the keys that change them, between frames: q/Esc quit, space pause, o overlays, s next style."""

from __future__ import annotations

import time
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


NOTICE_S = 2.0
NO_STYLE_NOTICE = "no style loaded: run with --set style.enabled=true"


class KeyController:
    """Turns keys into :class:`Controls` changes, each with a short on-screen notice (:meth:`notice`).
    ``cycle_style``: called on ``s``, returns the new style's name (None: no style stage); ``clock``: seconds."""

    def __init__(self, controls: Controls, cycle_style: Callable[[], str] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.controls = controls
        self.cycle_style = cycle_style
        self._clock = clock
        self._notice = ""
        self._until = 0.0

    def handle(self, key: int) -> bool:
        """Apply ``key``; True when it changed something on screen (the loop then redraws the frame at once)."""
        if key in KEY_QUIT:
            self.controls.quit = True
        elif key == KEY_OVERLAYS:
            self.controls.overlays = not self.controls.overlays
            self.say("overlays on" if self.controls.overlays else "overlays off (o: on)")
        elif key == KEY_STYLE:
            if self.cycle_style is None:
                self.say(NO_STYLE_NOTICE)
            else:
                self.say(f"style: {self.cycle_style() or 'next'}")
        elif key == KEY_PAUSE:
            self.controls.paused = not self.controls.paused
            self.say("" if self.controls.paused else "resumed")
        else:
            return False
        return True

    def say(self, text: str) -> None:
        """Show ``text`` for ``NOTICE_S`` seconds."""
        self._notice, self._until = text, self._clock() + NOTICE_S

    def notice(self) -> str:
        """The current notice, or "" once it has expired."""
        return self._notice if self._notice and self._clock() < self._until else ""
