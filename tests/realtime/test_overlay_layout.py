"""Overlays a person can read: in crowded frames no two labels overlap, none falls under the status bar, the
legend or a door notice, all stay inside the frame; class colours never equal face-state colours; recordings
carry no timing status bar unless ``overlay.hud`` asks."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from realtime.config import OverlayConfig, load_config
from realtime.door.events import DoorDecision, WAIT
from realtime.door.overlay import door_annotator
from realtime.draw.colors import FACE_STATE_COLORS, class_color, hue_of
from realtime.overlay import Hud, render_layout
from realtime.types import Detections, FaceDetections, FaceIdentities, FramePacket


def _crowd(seed: int, size_wh: tuple[int, int], n: int, faces: int = 3, door: bool = False) -> FramePacket:
    """A vtest.avi-like street: ``n`` pedestrians of 25-60 x 60-140 px (scaled to the frame) in a 768x576 frame,
    many overlapping, plus a few recognised faces."""
    rng = np.random.default_rng(seed)
    w, h = size_wh
    s = w / 768
    xy = rng.uniform([0, 0], [w - 10, h - 10], (n, 2))
    wh = rng.uniform([25 * s, 60 * s], [60 * s, 140 * s], (n, 2))
    boxes = np.concatenate([xy, np.minimum(xy + wh, [w - 1, h - 1])], 1).astype(np.float32)
    classes = rng.integers(0, 3, n)
    det = Detections(boxes, rng.uniform(0.5, 1.0, n).astype(np.float32), classes, ("person", "bicycle", "car"),
                     track_ids=np.arange(1, n + 1), continued=rng.uniform(size=n) < 0.1)
    fb = boxes[:faces].copy()
    fb[:, 3] = fb[:, 1] + (fb[:, 3] - fb[:, 1]) / 3
    face = FaceDetections(fb, np.ones(faces, np.float32), np.repeat(fb[:, None, :2], 5, axis=1))
    names = tuple(["ann", None, None][:faces])
    identities = dataclasses.replace(FaceIdentities.unknown(faces), names=names, track_names=names,
                                     distances=np.full(faces, 0.4, np.float32), track_ids=np.arange(1, faces + 1))
    decisions = (DoorDecision(WAIT, 1, None, "hold still (2/5 good frames)", tuple(boxes[0].tolist())),) if door else ()
    frame = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    return FramePacket(0, 0.0, 0.0, frame, detections=det, faces=face, identities=identities, decisions=decisions,
                       timings_ms={"detect": 41.2, "track": 0.3, "face_detect": 9.9, "recognize": 20.1})


@pytest.mark.parametrize("size_wh", [(768, 576), (320, 240), (1920, 1080)])
def test_crowded_frames_labels_never_overlap_nor_cover_the_panels(size_wh):
    style = OverlayConfig(hud=True)
    placed = 0
    for seed in range(4):
        packet = _crowd(seed, size_wh, n=40, door=seed % 2 == 1)
        extra = (door_annotator,) if packet.decisions else ()
        layout = render_layout(packet, Hud(fps=25.0, dropped=3), style, extra=extra).layout
        assert "status" in layout.panels
        if size_wh[0] >= 768:
            assert "legend" in layout.panels
        rects = [p.rect for p in layout.labels]
        placed += len(rects)
        for rect in rects:
            assert rect.inside(layout.width, layout.height), rect
            for name, panel in layout.panels.items():
                assert not rect.overlaps(panel), (rect, name, panel)
        for a, b in itertools.combinations(rects, 2):
            assert not a.overlaps(b), (a, b)
        for a, b in itertools.combinations(layout.panels.values(), 2):
            assert not a.overlaps(b) or {a.y1, b.y1} == {0}, (a, b)  # only an alarm banner may cross the top
    assert placed >= 40  # the placer moves labels apart; it does not simply leave them out


def test_status_bar_and_legend_scale_with_the_frame_and_stay_small():
    shares = {}
    for size_wh in [(320, 240), (768, 576), (1920, 1080)]:
        layout = render_layout(_crowd(0, size_wh, n=5), Hud(fps=25.0), OverlayConfig(hud=True)).layout
        status, legend = layout.panels["status"], layout.panels.get("legend")
        w, h = size_wh
        assert status.width <= w and status.height <= h / 3
        if legend is not None:
            assert legend.width * legend.height <= 0.2 * w * h, (size_wh, legend)
        shares[size_wh] = status.height / h
    assert max(shares.values()) < 2.5 * min(shares.values())  # a 1080p bar is not a sliver, a 240p one not a wall


def test_class_colours_never_equal_face_state_colours():
    face_hues = [hue_of(c) for c in FACE_STATE_COLORS[:2]]  # known green, unknown orange (grey has no hue)
    for class_id in range(91):
        color = class_color(class_id)
        assert color not in FACE_STATE_COLORS
        assert all(min(abs(hue_of(color) - fh), 180 - abs(hue_of(color) - fh)) >= 8 for fh in face_hues), class_id
    assert class_color(41) != class_color(0)  # cup and person stay apart


def test_continued_boxes_are_not_drawn_as_detections():
    det = Detections(np.array([[20, 20, 100, 200], [150, 20, 230, 200]], np.float32),
                     np.array([0.9, 0.2], np.float32), np.array([0, 0]), ("person",),
                     track_ids=np.array([1, 2]), continued=np.array([False, True]))
    packet = FramePacket(0, 0.0, 0.0, np.full((240, 320, 3), 255, np.uint8), detections=det)
    layout = render_layout(packet, None, OverlayConfig()).layout
    assert [p.text for p in layout.labels] == ["person #1 90%"]  # no label, no percentage for the held track


def _decoded(path):
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24").astype(np.int16) for f in container.decode(video=0)]


@pytest.mark.parametrize("hud", [False, True])
def test_recordings_carry_no_timing_status_bar_unless_asked(tmp_path, video_file, hud):
    from realtime.session import annotate

    config = load_config(None, ["detector.enabled=false", "faces.enabled=false", f"overlay.hud={str(hud).lower()}"])
    out = tmp_path / "out.mp4"
    annotate(config, str(video_file), out, None, progress=False)
    source, written = _decoded(video_file), _decoded(out)
    assert len(source) == len(written)
    top_left = np.mean([np.abs(a - b)[:20, :80].mean() for a, b in zip(source, written)])
    assert (top_left > 20) if hud else (top_left < 4), top_left


def test_the_live_window_shows_the_status_bar_above_the_picture():
    from realtime.io.status_sinks import WindowSink
    from realtime.overlay import window_view

    packet = _crowd(0, (320, 240), n=3)

    class Window:
        shown = None

        def show(self, image):
            Window.shown = image
            return -1

    sink = WindowSink(Window())
    sink.set_view(lambda p, image: window_view(image, p, Hud(fps=12.5), OverlayConfig()))
    rendered = render_layout(packet, None, OverlayConfig()).image
    sink.write(packet, rendered)
    strip = Window.shown.shape[0] - rendered.shape[0]
    assert strip > 0 and Window.shown.shape[1] == rendered.shape[1]
    assert (Window.shown[strip:] == rendered).all()  # the picture itself is untouched by the status bar
