"""Decode golden cases (by hand), layouts, multi-scale, caps, letterbox back to source pixels, the stage."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from realtime.contract import InputSpec, ModelContract
from realtime.errors import ConfigError, ModelError
from realtime.types import FramePacket
from realtime.detect.yolo import MAX_LOG_WH, GridCache, ObjectDetection, YoloDetector, YoloHead, decode_yolo

NEG = -30.0  # logit whose sigmoid is ~1e-13: "nothing here"


def _blank(a: int, c: int, h: int, w: int) -> np.ndarray:
    out = np.zeros((1, a * (5 + c), h, w), np.float32)
    out[:, 4::5 + c] = NEG  # objectness channel of every anchor
    return out


def _set(out, c, anchor, gy, gx, tx, ty, tw, th, obj, cls):
    f = 5 + c
    out[0, anchor * f:(anchor + 1) * f, gy, gx] = [tx, ty, tw, th, obj, *cls]


def test_one_positive_cell_gives_exact_box():
    head = YoloHead(anchors=(((10.0, 20.0), (30.0, 30.0)),), strides=(32,), num_classes=2)
    out = _blank(2, 2, 2, 2)
    # anchor 0, cell row 1 col 0: centre ((0.5 + 0) * 32, (0.5 + 1) * 32) = (16, 48); size (10 * 2, 20 * 1)
    _set(out, 2, 0, 1, 0, 0.0, 0.0, math.log(2.0), 0.0, 30.0, [NEG, 30.0])
    boxes, scores, classes = decode_yolo([out], head, score_threshold=0.5)
    np.testing.assert_allclose(boxes, [[6.0, 38.0, 26.0, 58.0]], atol=1e-5)
    np.testing.assert_allclose(scores, [1.0], atol=1e-6)
    assert classes.tolist() == [1] and boxes.dtype == np.float32 and classes.dtype == np.int64


def test_exp_is_clamped():
    head = YoloHead(anchors=(((10.0, 10.0),),), strides=(32,), num_classes=1)
    out = _blank(1, 1, 1, 1)
    _set(out, 1, 0, 0, 0, 0.0, 0.0, 100.0, -100.0, 30.0, [30.0])
    boxes, _, _ = decode_yolo([out], head, 0.5)
    w, h = boxes[0, 2] - boxes[0, 0], boxes[0, 3] - boxes[0, 1]
    assert np.isfinite(boxes).all()
    np.testing.assert_allclose(w, 10.0 * math.exp(MAX_LOG_WH), rtol=1e-5)  # 625 px, not exp(100)
    np.testing.assert_allclose(h, 10.0 * math.exp(-100.0), atol=1e-6)


def test_score_is_objectness_times_class_probability_and_threshold_means_at_least():
    head = YoloHead(anchors=(((8.0, 8.0),),), strides=(32,), num_classes=2)
    out = _blank(1, 2, 1, 2)
    _set(out, 2, 0, 0, 0, 0, 0, 0, 0, 0.0, [0.0, NEG])  # 0.5 * 0.5 = 0.25
    _set(out, 2, 0, 0, 1, 0, 0, 0, 0, math.log(3.0), [NEG, math.log(3.0)])  # 0.75 * 0.75 = 0.5625
    _, scores, classes = decode_yolo([out], head, 0.2)
    np.testing.assert_allclose(sorted(scores), [0.25, 0.5625], atol=1e-6)
    _, scores, _ = decode_yolo([out], head, 0.2500001)
    np.testing.assert_allclose(scores, [0.5625], atol=1e-6)
    _, scores, _ = decode_yolo([out], head, 0.25)  # a score equal to the threshold is kept (">=", as the tracker)
    np.testing.assert_allclose(sorted(scores), [0.25, 0.5625], atol=1e-6)


def test_multi_scale_decode():
    head = YoloHead(anchors=(((10.0, 10.0),), ((40.0, 40.0),)), strides=(16, 32), num_classes=3)
    fine, coarse = _blank(1, 3, 4, 4), _blank(1, 3, 2, 2)
    _set(fine, 3, 0, 2, 3, 0, 0, 0, 0, 30, [NEG, NEG, 30])  # centre (56, 40), 10 x 10
    _set(coarse, 3, 0, 0, 1, 0, 0, 0, 0, 30, [30, NEG, NEG])  # centre (48, 16), 40 x 40
    boxes, scores, classes = decode_yolo([fine, coarse], head, 0.5)
    got = sorted(zip(classes.tolist(), boxes.round(4).tolist()))
    assert got == [(0, [28.0, -4.0, 68.0, 36.0]), (2, [51.0, 35.0, 61.0, 45.0])]


def test_nahwc_layout_matches_nchw_and_grids_are_cached():
    rng = np.random.default_rng(0)
    a, c, h, w = 3, 4, 5, 6
    nchw = rng.normal(0, 2, (2, a * (5 + c), h, w)).astype(np.float32)
    nahwc = np.ascontiguousarray(nchw.reshape(2, a, 5 + c, h, w).transpose(0, 1, 3, 4, 2))
    anchors = (((10.0, 12.0), (20.0, 25.0), (40.0, 30.0)),)
    for coder in ("yolov2", "yolov3", "yolov5"):
        h1 = YoloHead(anchors, (16,), c, f"{coder}_nchw")
        h2 = YoloHead(anchors, (16,), c, f"{coder}_nahwc")
        for image in (0, 1):
            r1 = decode_yolo([nchw], h1, 0.1, image=image)
            r2 = decode_yolo([nahwc], h2, 0.1, image=image)
            assert len(r1[0]) > 5
            for x, y in zip(r1, r2):
                np.testing.assert_array_equal(x, y)
    cache = GridCache(YoloHead(anchors, (16,), c))
    assert cache.get([(h, w)]) is cache.get([(h, w)])
    assert cache.get([(h, w)]) is not cache.get([(h + 1, w)])


def test_yolov5_and_yolov2_coders_by_hand():
    anchors = (((10.0, 20.0),),)
    out = _blank(1, 2, 1, 1)
    _set(out, 2, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 30.0, [0.0, 0.0])
    v5 = decode_yolo([out], YoloHead(anchors, (32,), 2, "yolov5_nchw"), 0.1)
    # v5: centre (2 * 0.5 - 0.5 + 0) * 32 = 16, size anchor * (2 * 0.5) ** 2 = anchor; class sigmoid(0) = 0.5
    np.testing.assert_allclose(v5[0], [[11.0, 6.0, 21.0, 26.0]], atol=1e-5)
    np.testing.assert_allclose(v5[1], [0.5], atol=1e-6)
    v2 = decode_yolo([out], YoloHead(anchors, (32,), 2, "yolov2_nchw"), 0.1)
    # v2: softmax over two equal logits = 0.5; box as v3: centre 16, size anchor
    np.testing.assert_allclose(v2[0], [[11.0, 6.0, 21.0, 26.0]], atol=1e-5)
    np.testing.assert_allclose(v2[1], [0.5], atol=1e-6)
    out[0, 6, 0, 0] = math.log(3.0)  # softmax(0, ln 3) -> 0.75 for class 1
    v2 = decode_yolo([out], YoloHead(anchors, (32,), 2, "yolov2_nchw"), 0.1)
    np.testing.assert_allclose(v2[1], [0.75], atol=1e-6)
    assert v2[2].tolist() == [1]


def test_max_candidates_keeps_best_scores():
    head = YoloHead(anchors=(((8.0, 8.0),),), strides=(8,), num_classes=1)
    out = np.zeros((1, 6, 4, 4), np.float32)
    out[0, 4] = np.linspace(-2, 2, 16).reshape(4, 4)
    out[0, 5] = 30.0
    _, scores, _ = decode_yolo([out], head, 0.0, max_candidates=5)
    all_scores = np.sort(decode_yolo([out], head, 0.0, max_candidates=None)[1])[::-1]
    np.testing.assert_array_equal(np.sort(scores)[::-1], all_scores[:5])


def test_bad_layouts_and_shapes_are_refused():
    with pytest.raises(ModelError, match="layout"):
        YoloHead(anchors=(((1.0, 1.0),),), strides=(32,), num_classes=1, layout="yolov9_nchw")
    with pytest.raises(ModelError, match="one anchor list per stride"):
        YoloHead(anchors=(((1.0, 1.0),),), strides=(16, 32), num_classes=1)
    head = YoloHead(anchors=(((1.0, 1.0),),), strides=(32,), num_classes=1)
    with pytest.raises(ModelError, match="expected"):
        decode_yolo([np.zeros((1, 7, 2, 2), np.float32)], head)
    with pytest.raises(ConfigError, match="anchors"):
        YoloHead.from_config({"strides": [32]})
    assert YoloHead.from_config({"anchors": [[[10, 13], [16, 30]]], "strides": [8], "classes": ["a", "b"],
                                 "layout": "yolov5_nahwc"}).num_classes == 2


class FakeModel:
    """Stands in for OnnxModel: a contract and canned raw outputs."""

    def __init__(self, outputs, head: YoloHead, size=(64, 64), classes=("a", "b"), kind="yolo"):
        self.outputs = outputs
        self.inputs = []
        self.closed = 0
        self.contract = ModelContract(
            kind=kind, name="fake", input=InputSpec(name="images", size_wh=None, default_size_wh=size),
            outputs=tuple(f"o{i}" for i in range(len(outputs))), classes=classes, anchors=head.anchors,
            strides=head.strides, output_layout=head.layout)

    def run(self, x):
        self.inputs.append(x)
        return self.outputs

    def close(self):
        self.closed += 1


def test_detector_maps_boxes_back_to_source_pixels():
    head = YoloHead(anchors=(((10.0, 10.0),),), strides=(32,), num_classes=2)
    out = _blank(1, 2, 2, 2)
    # centre ((0.5 + 0) * 32, (0.25 + 1) * 32) = (16, 40), 10 x 10 -> network box (11, 35, 21, 45)
    _set(out, 2, 0, 1, 0, 0.0, -math.log(3.0), 0.0, 0.0, 30.0, [30.0, NEG])
    model = FakeModel([out], head)
    detector = YoloDetector(model, score_threshold=0.5)
    frame = np.zeros((320, 640, 3), np.uint8)  # letterbox to 64x64: scale 0.1, content 64x32, pad_y 16
    det = detector.detect(frame)
    assert model.inputs[0].shape == (1, 3, 64, 64) and model.inputs[0].dtype == np.float32
    np.testing.assert_allclose(det.boxes_xyxy, [[110.0, 190.0, 210.0, 290.0]], atol=1e-3)
    assert det.class_ids.tolist() == [0] and det.class_names == ("a", "b")
    # Round trip: the source box, letterboxed forward, is the network box again.
    from realtime.preprocess import letterbox

    _, lb = letterbox(frame, (64, 64))
    np.testing.assert_allclose(det.boxes_xyxy * lb.scale + [lb.pad_x, lb.pad_y] * 2, [[11, 35, 21, 45]], atol=1e-4)


def test_detector_nms_class_aware_and_caps():
    head = YoloHead(anchors=(((20.0, 20.0), (21.0, 21.0)),), strides=(32,), num_classes=2)
    out = _blank(2, 2, 1, 1)
    _set(out, 2, 0, 0, 0, 0, 0, 0, 0, 30, [30, NEG])  # class 0
    _set(out, 2, 1, 0, 0, 0, 0, 0, 0, 30, [NEG, 5])  # same place, class 1, lower score
    model = FakeModel([out], head, size=(32, 32))
    assert len(YoloDetector(model, score_threshold=0.5).detect(np.zeros((32, 32, 3), np.uint8))) == 2
    assert len(YoloDetector(model, score_threshold=0.5, class_aware=False).detect(
        np.zeros((32, 32, 3), np.uint8))) == 1
    assert len(YoloDetector(model, score_threshold=0.5, max_detections=1).detect(
        np.zeros((32, 32, 3), np.uint8))) == 1


def test_empty_frame_gives_no_detections_and_bad_settings_are_refused():
    head = YoloHead(anchors=(((10.0, 10.0),),), strides=(32,), num_classes=2)
    model = FakeModel([_blank(1, 2, 2, 2)], head)
    detector = YoloDetector(model)
    assert len(detector.detect(np.zeros((0, 0, 3), np.uint8))) == 0
    assert len(detector.detect(None)) == 0
    assert model.inputs == []
    assert len(detector.detect(np.zeros((48, 64, 3), np.uint8))) == 0  # all background
    with pytest.raises(ConfigError, match="score_threshold"):
        YoloDetector(model, score_threshold=2.0)
    with pytest.raises(ConfigError, match="multiples of 32"):
        YoloDetector(model, input_size=(100, 64))
    with pytest.raises(ModelError, match="'yolo' model"):
        YoloDetector(FakeModel([_blank(1, 2, 2, 2)], head, kind="face_detector"))


def test_object_detection_stage_replaces_packet():
    head = YoloHead(anchors=(((10.0, 10.0),),), strides=(32,), num_classes=2)
    out = _blank(1, 2, 2, 2)
    _set(out, 2, 0, 0, 0, 0, 0, 0, 0, 30, [30, NEG])
    model = FakeModel([out], head)
    stage = ObjectDetection(YoloDetector(model, score_threshold=0.5))
    frame = np.zeros((64, 64, 3), np.uint8)
    packet = FramePacket(index=3, t_capture=0.0, t_source=0.0, frame_bgr=frame)
    new = stage(packet)
    assert stage.name == "detect" and new is not packet and len(new.detections) == 1
    assert new == replace(packet, detections=new.detections) and len(packet.detections) == 0
    stage.close()
    stage.close()
    assert model.closed == 2
