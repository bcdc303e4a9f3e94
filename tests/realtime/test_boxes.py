"""NMS against a plain Python reference loop: random boxes, many seeds, ties and near-threshold pairs."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.boxes import batched_nms, box_iou, nms
from realtime.errors import ConfigError


def _ref_iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def ref_nms(boxes, scores, iou_threshold, class_ids=None, max_keep=None):
    boxes = [[float(v) for v in box] for box in np.asarray(boxes, dtype=np.float64)]
    scores = [float(s) for s in scores]
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        if max_keep is not None and len(keep) >= max_keep:
            break
        if all(
            (class_ids is not None and class_ids[k] != class_ids[i]) or _ref_iou(boxes[k], boxes[i]) <= iou_threshold
            for k in keep
        ):
            keep.append(i)
    return keep


def _random_boxes(rng, n, clustered):
    if clustered:
        centres = rng.uniform(0, 300, (6, 2))
        k = rng.integers(0, 6, n)
        ctr = centres[k] + rng.normal(0, 6, (n, 2))
        wh = rng.uniform(10, 60, (n, 2))
    else:
        ctr = rng.uniform(0, 300, (n, 2))
        wh = rng.uniform(0, 80, (n, 2))
    boxes = np.concatenate([ctr - wh / 2, ctr + wh / 2], axis=1)
    return np.round(boxes * 4) / 4 if rng.random() < 0.5 else boxes.astype(np.float32)


@pytest.mark.parametrize("seed", range(40))
def test_nms_matches_reference_on_random_boxes(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 120))
    boxes = _random_boxes(rng, n, clustered=seed % 2 == 0)
    # Few distinct score values: lots of ties.
    scores = rng.integers(0, 5, n).astype(np.float32) / 4 if seed % 3 == 0 else rng.random(n).astype(np.float32)
    classes = rng.integers(0, 3, n)
    for thr in (0.0, 0.3, 0.5, 0.7, 1.0):
        assert nms(boxes, scores, thr).tolist() == ref_nms(boxes, scores, thr)
        assert batched_nms(boxes, scores, classes, thr).tolist() == ref_nms(boxes, scores, thr, classes)
    assert nms(boxes, scores, 0.5, max_keep=3).tolist() == ref_nms(boxes, scores, 0.5, max_keep=3)
    assert (batched_nms(boxes, scores, classes, 0.5, max_keep=4).tolist()
            == ref_nms(boxes, scores, 0.5, classes, max_keep=4))


def test_pairs_just_over_and_under_threshold():
    # Two boxes of area 100 overlapping 10 x h: IoU = 10h / (200 - 10h); h = 20/3 gives 0.5 almost exactly.
    base = np.array([0.0, 0.0, 10.0, 10.0])
    for h in (20 / 3, np.nextafter(20 / 3, 0), np.nextafter(20 / 3, 10), 6.0, 7.0):
        other = np.array([0.0, 10.0 - h, 10.0, 20.0 - h])
        boxes = np.stack([base, other])
        scores = np.array([0.9, 0.8])
        iou = _ref_iou(base.tolist(), other.tolist())
        expected = [0] if iou > 0.5 else [0, 1]
        assert nms(boxes, scores, 0.5).tolist() == expected == ref_nms(boxes, scores, 0.5)
        assert batched_nms(boxes, scores, np.array([1, 1]), 0.5).tolist() == expected
    # Exactly at the threshold: IoU = 50 / 100 = 0.5 is not "greater than", so both stay.
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5]], dtype=np.float64)
    assert nms(boxes, np.array([0.5, 0.9]), 0.5).tolist() == [1, 0]
    assert nms(boxes, np.array([0.5, 0.9]), np.nextafter(0.5, 0)).tolist() == [1]


def test_class_aware_is_exact_where_offset_trick_would_round():
    # A box and its lower half have IoU 0.5 up to rounding. Shifting classes apart by a large offset (the usual
    # batched-NMS trick) changes that rounding and flips about half of these cases; per-class NMS must not.
    rng = np.random.default_rng(0)
    for _ in range(300):
        x, y = rng.uniform(0, 1000, 2)
        w, h = rng.uniform(1, 50, 2)
        boxes = np.array([[x, y, x + w, y + h], [x, y, x + w, y + h / 2], [5000, 5000, 5001, 5001]])
        scores = np.array([0.9, 0.8, 0.1])
        classes = np.array([7, 7, 0])
        assert batched_nms(boxes, scores, classes, 0.5).tolist() == ref_nms(boxes, scores, 0.5, classes)
    for _ in range(20):
        n = 60
        ctr = rng.uniform(1e5, 1e5 + 50, (n, 2))
        wh = rng.uniform(1, 9, (n, 2))
        boxes = np.concatenate([ctr - wh / 2, ctr + wh / 2], 1)
        scores = rng.random(n)
        classes = rng.integers(0, 4, n) * 1000
        for thr in (0.1, 0.45):
            assert batched_nms(boxes, scores, classes, thr).tolist() == ref_nms(boxes, scores, thr, classes)


def test_empty_and_degenerate_inputs():
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), 0.5).tolist() == []
    boxes = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 2, 2]], dtype=np.float32)
    assert nms(boxes, np.array([0.3, 0.3, 0.2]), 0.0).tolist() == ref_nms(boxes, [0.3, 0.3, 0.2], 0.0) == [0, 1, 2]
    assert nms(boxes, np.array([0.3, 0.3, 0.2]), 0.5, max_keep=0).tolist() == []


def test_box_iou_values_and_threshold_validation():
    a = np.array([[0, 0, 10, 10]], dtype=np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [3, 3, 3, 3]], dtype=np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 1 / 3, 0.0, 0.0]])
    with pytest.raises(ConfigError, match="iou_threshold"):
        nms(a, np.array([1.0]), 1.5)
