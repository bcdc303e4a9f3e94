"""Live keys through the run loop's key controller and a window sink, with a scripted fake window."""

import numpy as np

from realtime.controls import Controls, KeyController
from realtime.io.sinks import WindowSink
from realtime.pipeline import Pipeline, run_loop
from realtime.types import EndReason, FramePacket, SourceInfo


class FakeWindow:
    def __init__(self, keys):
        self.keys = list(keys)
        self.shown = []

    def show(self, image, wait_ms=1):
        self.shown.append(image)
        return self.keys.pop(0) if self.keys else 255

    def wait_key(self, wait_ms=30):
        return self.keys.pop(0) if self.keys else 255

    def closed_by_user(self):
        return False

    def close(self):
        pass


class Style:
    name = "style"
    pure = False
    fail_soft = True

    def __init__(self):
        self.cycled = 0

    def __call__(self, packet):
        return packet

    def cycle(self):
        self.cycled += 1

    def reset(self):
        pass

    def close(self):
        pass


class Stats:
    read = 0
    dropped = 0
    reconnects = 0


class FakeSource:
    policy = "every"
    info = SourceInfo("fake", "fake")
    stats = Stats()

    def frame_ready(self):
        return True

    def __init__(self, n):
        self.n = n
        self.i = 0

    def next_packet(self):
        if self.i >= self.n:
            return None
        self.i += 1
        return FramePacket(index=self.i - 1, t_capture=0.0, t_source=0.0, frame_bgr=np.zeros((8, 8, 3), np.uint8))


def test_keys_toggle_overlays_cycle_style_pause_and_quit():
    style = Style()
    controls = Controls()
    seen = []
    # each show()/wait_key() call takes the next key: a key that changes the view redraws the frame at once
    window = FakeWindow([ord("o"), 255, ord("s"), 255, ord(" "), 255, 255, ord(" "), 255, ord("q")])
    controller = KeyController(controls, style.cycle)

    def render(packet, overlays):
        seen.append((packet.index, overlays, controller.notice(), controls.paused))
        return packet.frame_bgr

    result = run_loop(FakeSource(10), Pipeline([style]), [WindowSink(window)], render, controller)
    assert seen == [
        (0, True, "", False),
        (0, False, "overlays off (o: on)", False),  # 'o': the same frame again, with the notice
        (1, False, "overlays off (o: on)", False),
        (1, False, "style: next", False),  # 's' (this fake style returns no name)
        (2, False, "style: next", False),
        (2, False, "", True),  # space: redrawn paused (the banner), waits through two idle keys
        (2, False, "resumed", False),
        (3, False, "resumed", False),
    ]
    assert style.cycled == 1
    assert result.reason == EndReason.QUIT and result.frames == 4
    assert controls.paused is False


def test_s_without_a_style_stage_says_so():
    from realtime.controls import NO_STYLE_NOTICE

    controller = KeyController(Controls())
    assert controller.handle(ord("s")) is True
    assert controller.notice() == NO_STYLE_NOTICE
    assert controller.handle(ord("x")) is False


def test_notices_expire():
    now = [0.0]
    controller = KeyController(Controls(), clock=lambda: now[0])
    controller.handle(ord("o"))
    assert controller.notice() == "overlays off (o: on)"
    now[0] = 5.0
    assert controller.notice() == ""


def test_escape_quits_even_while_paused():
    controls = Controls()
    window = FakeWindow([ord(" "), 255, 27])
    result = run_loop(FakeSource(5), Pipeline([]), [WindowSink(window)], lambda p, o: p.frame_bgr,
                      KeyController(controls))
    assert controls.quit is True and result.frames == 1


def test_render_happens_once_per_frame_for_several_display_sinks():
    calls = []
    a, b = FakeWindow([]), FakeWindow([])

    def render(packet, overlays):
        calls.append(packet.index)
        return np.ones((8, 8, 3), np.uint8)

    run_loop(FakeSource(3), Pipeline([]), [WindowSink(a), WindowSink(b)], render)
    assert calls == [0, 1, 2]
    assert all(x is y for x, y in zip(a.shown, b.shown))


def test_no_render_without_a_display_sink():
    class Null:
        needs_display = False

        def write(self, packet, display):
            assert display is None

        def finish(self, result):
            pass

        def close(self):
            pass

    run_loop(FakeSource(3), Pipeline([]), [Null()], lambda p, o: (_ for _ in ()).throw(AssertionError("rendered")))
