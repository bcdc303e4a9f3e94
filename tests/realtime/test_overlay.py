"""The overlay a person reads: one box per object and per face, known vs unknown at a glance, a legend, the one
label convention for faces, and key feedback that shows even with overlays off."""

import dataclasses

import numpy as np

from realtime.config import OverlayConfig
from realtime.draw.boxes import objects_to_draw
from realtime.draw.colors import class_color
from realtime.draw.faces import face_label
from realtime.draw.text import draw_dashed_rectangle
from realtime.overlay import Hud, render
from realtime.types import Detections, FaceDetections, FaceIdentities, FramePacket

STYLE = OverlayConfig(stage_ms=False, landmarks=False)
WHITE = 255


def _faces(boxes, identities=None, distances=None, track_identities=None):
    """``(FaceDetections, FaceIdentities or None)``: ``identities`` None means no recognition."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    landmarks = np.repeat(boxes[:, None, :2], 5, axis=1)
    faces = FaceDetections(boxes, np.ones(n, np.float32), landmarks)
    if identities is None:
        return faces, None
    return faces, dataclasses.replace(
        FaceIdentities.unknown(n), names=tuple(identities), distances=np.asarray(distances, np.float32),
        track_ids=np.arange(1, n + 1, dtype=np.int64),
        track_names=tuple(track_identities if track_identities is not None else identities),
        votes=np.full(n, 3, np.int64), voters=np.full(n, 5, np.int64))


def _packet(faces=(FaceDetections(), None), detections=Detections()):
    frame = np.full((240, 320, 3), WHITE, np.uint8)
    return FramePacket(index=0, t_capture=0.0, t_source=0.0, frame_bgr=frame, faces=faces[0], identities=faces[1],
                       detections=detections)


def _edge_pixels(image, x, y1, y2):
    return image[y1:y2, x].reshape(-1, 3)


def test_face_label_convention():
    assert face_label("ann", None, 0.4213) == "ann d=0.42"
    assert face_label(None, "ann", 0.55) == "ann? d=0.55"  # the newest embedding says ann, the vote not yet
    assert face_label(None, None, 0.9) == "unknown d=0.90"
    assert face_label(None, None, float("nan")) == "unknown"


def test_known_is_solid_green_and_unknown_is_dashed_orange():
    faces = _faces([[20, 20, 100, 120], [180, 20, 260, 120]], ["ann", None], [0.3, 0.9])
    packet = _packet(faces)
    image = render(packet, Hud(), STYLE)
    assert (packet.frame_bgr == WHITE).all()  # the frame is never drawn on
    known = _edge_pixels(image, 20, 30, 110)
    assert all(int(g) > 150 and int(r) < 120 and int(b) < 120 for b, g, r in known)  # solid green all along
    unknown = _edge_pixels(image, 180, 30, 110)
    orange = [int(r) > 200 and 100 < int(g) < 180 and int(b) < 90 for b, g, r in unknown]
    blank = [(p == WHITE).all() for p in unknown]
    assert sum(orange) > 20 and sum(blank) > 20  # dashes and gaps


def test_a_name_not_yet_confirmed_by_the_vote_is_drawn_as_unknown():
    faces = _faces([[20, 20, 100, 120]], ["ann"], [0.3], track_identities=[None])
    image = render(_packet(faces), Hud(), STYLE)
    edge = _edge_pixels(image, 20, 30, 110)
    assert sum((p == WHITE).all() for p in edge) > 20  # dashed


def test_faces_without_recognition_are_grey_and_plain():
    image = render(_packet(_faces([[20, 20, 100, 120]])), Hud(), STYLE)
    b, g, r = (int(v) for v in image[70, 20])
    assert b == g == r == 200


def test_object_face_boxes_that_the_face_stage_drew_are_left_out():
    faces = _faces([[20, 20, 100, 120]], ["ann"], [0.3])
    det = Detections(np.array([[22, 18, 102, 118], [150, 30, 300, 230], [200, 40, 240, 90]], np.float32),
                     np.array([0.9, 0.8, 0.7], np.float32), np.array([1, 0, 1], np.int64), ("person", "face"),
                     track_ids=np.array([-1, 7, -1], np.int64))
    assert objects_to_draw(det, faces[0]).tolist() == [1, 2]  # the face box over ann goes; a lone one stays
    assert objects_to_draw(det, FaceDetections()).tolist() == [0, 1, 2]
    image = render(_packet(faces, det), Hud(), STYLE)
    assert tuple(int(v) for v in image[150, 150]) == class_color(0)  # the person's box edge


def test_legend_only_when_something_is_on_screen():
    corner = (slice(200, 240), slice(200, 320))
    assert (render(_packet(), Hud(), STYLE)[corner] == WHITE).all()
    with_face = render(_packet(_faces([[20, 20, 100, 120]], ["ann"], [0.3])), Hud(), STYLE)
    assert (with_face[corner] < 128).mean() > 0.5  # the dark legend panel


def test_notice_and_pause_banner_show_even_with_overlays_off():
    packet = _packet(_faces([[20, 20, 100, 120]], ["ann"], [0.3]))
    plain = render(packet, Hud(), STYLE, show_overlays=False)
    assert (plain == WHITE).all()
    noticed = render(packet, Hud(notice="overlays off (o: on)"), STYLE, show_overlays=False)
    assert (noticed[180:210] != WHITE).any() and (noticed[:100] == WHITE).all()
    paused = render(packet, Hud(paused=True), STYLE, show_overlays=False)
    assert (paused[20:60] != WHITE).any()


def test_dashed_rectangle_has_gaps():
    image = np.zeros((50, 100, 3), np.uint8)
    draw_dashed_rectangle(image, (10, 10), (90, 40), (255, 255, 255), 1, dash=5)
    top = image[10, 10:91, 0]
    assert 30 < (top > 0).sum() < 60
