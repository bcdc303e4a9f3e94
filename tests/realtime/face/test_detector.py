"""CenterFace decode (golden cases, vectorised vs a plain loop) and the FaceDetector on a real photo."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from realtime.contract import InputSpec, ModelContract
from realtime.errors import ConfigError, ModelError, SourceError
from realtime.face.detector import FaceDetector, decode_centerface, working_size_wh
from realtime.types import FaceDetections, FramePacket

ZOO_MODEL = Path(__file__).resolve().parents[3] / "realtime" / "zoo" / "centerface.onnx"
# Hand-annotated on skimage.data.astronaut() (512x512), looking at the pixels, not at any model's output:
# pupil image-left, pupil image-right, nose tip, mouth corner image-left, mouth corner image-right.
ASTRONAUT_POINTS = np.array([[205, 101], [246, 104], [225.5, 126], [204, 141], [244, 141]], dtype=np.float32)


def _maps(h: int, w: int):
    return (np.zeros((1, 1, h, w), np.float32), np.zeros((1, 2, h, w), np.float32),
            np.zeros((1, 2, h, w), np.float32), np.zeros((1, 10, h, w), np.float32))


def test_decode_one_cell_gives_exact_box_and_landmarks():
    heatmap, scale, offset, landmarks = _maps(4, 5)
    heatmap[0, 0, 2, 3] = 0.9
    scale[0, :, 2, 3] = [math.log(8.0), math.log(4.0)]  # box h = 8 * 4 = 32, w = 4 * 4 = 16
    offset[0, :, 2, 3] = [0.25, -0.5]  # centre y = (2 + 0.25 + 0.5) * 4 = 11, x = (3 - 0.5 + 0.5) * 4 = 12
    # top-left (unclipped) = (12 - 8, 11 - 16) = (4, -5); landmark = (dx * 16 + 4, dy * 32 - 5)
    dy_dx = [(0.25, 0.25), (0.25, 0.75), (0.5, 0.5), (0.75, 0.25), (0.75, 0.75)]
    for j, (dy, dx) in enumerate(dy_dx):
        landmarks[0, 2 * j:2 * j + 2, 2, 3] = [dy, dx]
    boxes, scores, points = decode_centerface(heatmap, scale, offset, landmarks, (16, 20), 0.5)
    assert boxes.dtype == np.float32 and scores.dtype == np.float32 and points.dtype == np.float32
    np.testing.assert_allclose(boxes, [[4, 0, 20, 16]], atol=1e-5)  # y1 -5 -> 0, y2 27 -> 16, x2 = 20 (clip to W)
    np.testing.assert_allclose(scores, [0.9], atol=1e-7)
    expected = [[dx * 16 + 4, dy * 32 - 5] for dy, dx in dy_dx]
    np.testing.assert_allclose(points, [expected], atol=1e-5)


def test_decode_threshold_is_strict_and_empty_has_shapes():
    heatmap, scale, offset, landmarks = _maps(3, 3)
    heatmap[0, 0, 1, 1] = 0.5
    boxes, scores, points = decode_centerface(heatmap, scale, offset, landmarks, (12, 12), 0.5)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and points.shape == (0, 5, 2)
    boxes, _, _ = decode_centerface(heatmap, scale, offset, landmarks, (12, 12), 0.49)
    assert boxes.shape == (1, 4)


def test_decode_clamps_exp_and_clips_to_input():
    heatmap, scale, offset, landmarks = _maps(2, 2)
    heatmap[0, 0, 0, 0] = 0.8
    scale[0, :, 0, 0] = 1e4  # exp would overflow to inf without the clamp
    boxes, _, points = decode_centerface(heatmap, scale, offset, landmarks, (8, 8), 0.5)
    np.testing.assert_array_equal(boxes, [[0, 0, 8, 8]])
    assert np.all(np.isfinite(points))


def test_decode_accepts_unbatched_maps_and_sorts_by_score():
    heatmap, scale, offset, landmarks = _maps(3, 4)
    heatmap[0, 0, 0, 0], heatmap[0, 0, 2, 3] = 0.6, 0.95
    a = decode_centerface(heatmap, scale, offset, landmarks, (12, 16), 0.5)
    b = decode_centerface(heatmap[0], scale[0], offset[0], landmarks[0], (12, 16), 0.5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_allclose(a[1], [0.95, 0.6], atol=1e-7)


def _reference_decode(heatmap, scale, offset, landmarks, input_hw, threshold):
    """A plain loop over cells with the documented formulas."""
    h_in, w_in = input_hw
    out = []
    for r in range(heatmap.shape[2]):
        for c in range(heatmap.shape[3]):
            s = float(heatmap[0, 0, r, c])
            if s <= threshold:
                continue
            bh, bw = math.exp(scale[0, 0, r, c]) * 4, math.exp(scale[0, 1, r, c]) * 4
            cy, cx = (r + offset[0, 0, r, c] + 0.5) * 4, (c + offset[0, 1, r, c] + 0.5) * 4
            x1, y1 = cx - bw / 2, cy - bh / 2
            box = [min(max(x1, 0), w_in), min(max(y1, 0), h_in), min(max(x1 + bw, 0), w_in),
                   min(max(y1 + bh, 0), h_in)]
            pts = [[landmarks[0, 2 * j + 1, r, c] * bw + x1, landmarks[0, 2 * j, r, c] * bh + y1] for j in range(5)]
            out.append((s, box, pts))
    out.sort(key=lambda t: -t[0])
    return out


@pytest.mark.parametrize("seed", range(5))
def test_decode_matches_plain_loop(seed):
    rng = np.random.default_rng(seed)
    h, w = 6, 8
    heatmap = rng.uniform(0, 1, (1, 1, h, w)).astype(np.float32)
    scale = rng.normal(1.5, 0.8, (1, 2, h, w)).astype(np.float32)
    offset = rng.uniform(-0.5, 0.5, (1, 2, h, w)).astype(np.float32)
    landmarks = rng.uniform(0, 1, (1, 10, h, w)).astype(np.float32)
    boxes, scores, points = decode_centerface(heatmap, scale, offset, landmarks, (h * 4, w * 4), 0.6)
    ref = _reference_decode(heatmap, scale, offset, landmarks, (h * 4, w * 4), 0.6)
    assert len(ref) == len(scores) > 0
    np.testing.assert_allclose(scores, [r[0] for r in ref], atol=1e-7)
    np.testing.assert_allclose(boxes, [r[1] for r in ref], atol=1e-4)
    np.testing.assert_allclose(points, [r[2] for r in ref], atol=1e-4)


def test_decode_rejects_mismatched_grids():
    heatmap, scale, offset, landmarks = _maps(3, 3)
    with pytest.raises(ModelError, match="landmarks"):
        decode_centerface(heatmap, scale, offset, landmarks[:, :, :2], (12, 12), 0.5)
    with pytest.raises(ModelError, match="batch"):
        decode_centerface(np.zeros((2, 1, 3, 3), np.float32), scale, offset, landmarks, (12, 12), 0.5)


@pytest.mark.parametrize("frame_wh, width, expected", [
    ((640, 480), 320, (320, 256)), ((640, 480), 640, (640, 480)), ((1280, 720), 320, (320, 192)),
    ((480, 640), 300, (320, 448)), ((1000, 10), 320, (320, 32)),
])
def test_working_size(frame_wh, width, expected):
    assert working_size_wh(frame_wh, width, 32) == expected


def _fake_model(**changes):
    """A stand-in with only what FaceDetector's constructor reads (no ONNX Runtime)."""
    fields = {"kind": "face_detector", "outputs": ("heatmap", "scale", "offset", "landmarks"),
              "extra": {"decode": "centerface", "output_stride": 4}}
    fields.update(changes)
    contract = ModelContract(name="centerface", input=InputSpec(name="input.1", default_size_wh=(320, 256)),
                             **fields)
    return SimpleNamespace(contract=contract, path=Path("fake.onnx"), close=lambda: None)


@pytest.mark.parametrize("changes, error, match", [
    ({"kind": "style"}, ModelError, "face_detector"),
    ({"extra": {"decode": "retinaface"}}, ModelError, "decode"),
    ({"extra": {"decode": "centerface", "output_stride": 8}}, ModelError, "output_stride"),
    ({"outputs": ("heatmap",)}, ModelError, "4 outputs"),
])
def test_detector_refuses_other_models(changes, error, match):
    with pytest.raises(error, match=match):
        FaceDetector(_fake_model(**changes))


@pytest.mark.parametrize("kwargs, match", [
    ({"detect_width": 0}, "detect_width"), ({"detect_width": 320.0}, "detect_width"),
    ({"score_threshold": 1.0}, "score_threshold"), ({"iou_threshold": -0.1}, "iou_threshold"),
    ({"max_faces": 0}, "max_faces"),
])
def test_detector_validates_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        FaceDetector(_fake_model(), **kwargs)


def test_detector_caches_working_size_per_frame_size():
    detector = FaceDetector(_fake_model(), detect_width=320)
    assert detector.input_size_wh((640, 480)) == (320, 256)
    assert detector.input_size_wh((480, 640)) == (320, 448)
    assert detector._sizes == {(640, 480): (320, 256), (480, 640): (320, 448)}


@pytest.fixture(scope="module")
def zoo_model_path():
    if not ZOO_MODEL.is_file():
        pytest.skip(f"{ZOO_MODEL} is missing; build it with 'python -m export.centerface'")
    return ZOO_MODEL


def _detector(path, **kwargs):
    from realtime.runtime import OnnxModel, RuntimeOptions

    return FaceDetector(OnnxModel(path, RuntimeOptions(providers="cpu"), expected_kind="face_detector"), **kwargs)


@pytest.mark.parametrize("detect_width", [320, 640])
def test_astronaut_has_one_face_with_eyes_inside(zoo_model_path, detect_width):
    data = pytest.importorskip("skimage.data")
    frame_bgr = np.ascontiguousarray(data.astronaut()[..., ::-1])
    detector = _detector(zoo_model_path, detect_width=detect_width)
    faces = detector.detect(frame_bgr)
    detector.close()
    assert len(faces) == 1
    x1, y1, x2, y2 = faces.boxes_xyxy[0]
    for ex, ey in ASTRONAUT_POINTS[:2]:
        assert x1 < ex < x2 and y1 < ey < y2
    assert faces.scores[0] > 0.7
    # Landmarks in our order, within a few pixels of the hand annotation (a 40-px-wide face at width 320).
    assert np.max(np.abs(faces.landmarks5[0] - ASTRONAUT_POINTS)) < 6.0
    assert isinstance(faces, FaceDetections)  # who they are is the recognition stage's (FaceIdentities)
    assert faces.landmarks5.dtype == np.float32 and faces.boxes_xyxy.dtype == np.float32


def test_mirrored_astronaut_keeps_image_left_first(zoo_model_path):
    data = pytest.importorskip("skimage.data")
    frame_bgr = np.ascontiguousarray(data.astronaut()[:, ::-1, ::-1])
    detector = _detector(zoo_model_path)
    faces = detector.detect(frame_bgr)
    assert len(faces) == 1
    points = faces.landmarks5[0]
    assert points[0, 0] < points[1, 0] and points[3, 0] < points[4, 0]
    mirrored = ASTRONAUT_POINTS.copy()
    mirrored[:, 0] = 512 - mirrored[:, 0]
    mirrored = mirrored[[1, 0, 2, 4, 3]]  # mirroring swaps image-left and image-right
    assert np.max(np.abs(points - mirrored)) < 6.0


def test_black_and_empty_frames_give_no_faces(zoo_model_path):
    detector = _detector(zoo_model_path, detect_width=320)
    for frame in (np.zeros((480, 640, 3), np.uint8), np.zeros((0, 0, 3), np.uint8)):
        faces = detector.detect(frame)
        assert len(faces) == 0 and faces.boxes_xyxy.shape == (0, 4) and faces.landmarks5.shape == (0, 5, 2)
    with pytest.raises(SourceError, match="uint8"):
        detector.detect(np.zeros((48, 64, 3), np.float32))
    detector.close()


def test_stage_call_and_close(zoo_model_path):
    data = pytest.importorskip("skimage.data")
    frame_bgr = np.ascontiguousarray(data.astronaut()[..., ::-1])
    detector = _detector(zoo_model_path)
    packet = FramePacket(index=0, t_capture=0.0, t_source=0.0, frame_bgr=frame_bgr)
    out = detector(packet)
    assert out is not packet and out.frame_bgr is frame_bgr and len(out.faces) == 1 and len(packet.faces) == 0
    detector.close()
    detector.close()
    with pytest.raises(ModelError, match="close"):
        detector.detect(frame_bgr)
