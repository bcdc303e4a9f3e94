"""Live keys through the window callback, with a scripted fake window (no display needed)."""

import numpy as np

from realtime.app import _window_callback
from realtime.config import Config
from realtime.metrics import Metrics
from realtime.pipeline import Controls, Pipeline
from realtime.types import FramePacket


class FakeWindow:
    def __init__(self, keys):
        self.keys = list(keys)
        self.shown = 0

    def show(self, image, wait_ms=1):
        self.shown += 1
        return self.keys.pop(0) if self.keys else 255

    def wait_key(self, wait_ms=30):
        return self.keys.pop(0) if self.keys else 255

    def closed_by_user(self):
        return False


class Style:
    name = "style"

    def __init__(self):
        self.cycled = 0

    def __call__(self, packet):
        return packet

    def cycle(self):
        self.cycled += 1

    def close(self):
        pass


def packet():
    return FramePacket(index=0, t_capture=0.0, t_source=0.0, frame_bgr=np.zeros((8, 8, 3), np.uint8))


def test_keys_toggle_overlays_cycle_style_pause_and_quit():
    style = Style()
    controls = Controls()
    window = FakeWindow([ord("o"), ord("s"), ord(" "), 255, 255, ord(" "), ord("q")])
    show = _window_callback(window, Config(), controls, Pipeline([style]))
    show(packet(), Metrics())  # 'o'
    assert controls.overlays is False and not controls.quit
    show(packet(), Metrics())  # 's'
    assert style.cycled == 1
    show(packet(), Metrics())  # space: paused, waits through two idle keys, space again resumes
    assert controls.paused is False and window.keys == [ord("q")]
    show(packet(), Metrics())  # 'q'
    assert controls.quit is True


def test_escape_quits_even_while_paused():
    controls = Controls()
    window = FakeWindow([ord(" "), 255, 27])
    _window_callback(window, Config(), controls, Pipeline([]))(packet(), Metrics())
    assert controls.quit is True
