"""k-means anchors, loss assignment, YOLO-format data parsing and errors, augmentation, AP@0.5."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from models.anchors import anchor_fitness, kmeans_anchors, shape_iou, split_anchors
from models.datasets import (Augment, YoloDataset, label_path, list_images, load_data_yaml, make_synthetic_dataset,
                             read_labels)
from models.evaluate import average_precision, evaluate_predictions, mean_ap
from realtime.errors import DataError


def test_kmeans_finds_synthetic_clusters():
    rng = np.random.default_rng(0)
    true = np.array([[10, 10], [30, 60], [120, 80]], float)
    wh = np.concatenate([t * rng.uniform(0.93, 1.07, (200, 2)) for t in true])
    anchors = kmeans_anchors(wh, 3, seed=1)
    assert anchors.shape == (3, 2) and anchors.dtype == np.float32
    np.testing.assert_allclose(anchors, true, rtol=0.05)
    assert anchor_fitness(wh, anchors) > 0.85 > anchor_fitness(wh, anchors[:1])
    assert split_anchors(anchors[::-1], 1)[0][0] == (pytest.approx(10, rel=0.05), pytest.approx(10, rel=0.05))
    with pytest.raises(DataError, match="distinct box shapes"):
        kmeans_anchors(np.array([[5, 5], [5, 5]]), 2)


def test_shape_iou():
    np.testing.assert_allclose(shape_iou([[10, 10]], [[10, 10], [5, 10], [20, 20]]), [[1.0, 0.5, 0.25]])


def test_loss_assigns_centre_cell_and_best_anchor():
    torch = pytest.importorskip("torch")
    from models.losses import YoloLoss, assign_targets

    anchors = [torch.tensor([[10.0, 10.0], [20.0, 40.0]]), torch.tensor([[60.0, 60.0], [100.0, 200.0]])]
    targets = torch.tensor([
        [0, 1, 40.0, 70.0, 18.0, 42.0],    # best anchor: scale 0 anchor 1; stride 16 cell (4, 2)
        [1, 0, 300.0, 10.0, 110.0, 190.0],  # scale 1 anchor 1; stride 32 cell (0, 9)
        [1, 2, 31.9, 32.0, 9.0, 11.0],     # scale 0 anchor 0; cell (2, 1): centre 31.9 lies in column 1
    ])
    s16, s32 = assign_targets(targets, anchors, (16, 32), [(20, 20), (10, 10)])
    assert (s16.image.tolist(), s16.anchor.tolist(), s16.gy.tolist(), s16.gx.tolist(), s16.target.tolist()) == (
        [0, 1], [1, 0], [4, 2], [2, 1], [0, 2])
    assert (s32.image.tolist(), s32.anchor.tolist(), s32.gy.tolist(), s32.gx.tolist()) == ([1], [1], [0], [9])
    # A perfect prediction at the assigned slot has zero box error; background elsewhere gives only objectness.
    loss_fn = YoloLoss([a.tolist() for a in anchors], (16, 32), num_classes=3, ignore_threshold=0.5)
    fields = 8
    outs = [torch.full((2, 2 * fields, 20, 20), -20.0), torch.full((2, 2 * fields, 10, 10), -20.0)]
    for out in outs:
        for a in range(2):
            out[:, a * fields:a * fields + 4] = 0.0
    t = targets[0]
    cell = outs[0][0, fields:2 * fields, 4, 2]
    cell[0] = math.log((40 / 16 - 2) / (1 - (40 / 16 - 2)))  # sigmoid -> 0.5
    cell[1] = math.log((70 / 16 - 4) / (1 - (70 / 16 - 4)))
    cell[2], cell[3] = math.log(18 / 20), math.log(42 / 40)
    cell[4], cell[5:] = 20.0, torch.tensor([-20.0, 20.0, -20.0])
    _, parts = loss_fn(outs, t[None])
    assert parts["box"] == pytest.approx(0.0, abs=1e-9)
    assert parts["obj"] < 1e-6 and parts["cls"] < 1e-6 and parts["noobj"] < 1e-4


def test_loss_ignores_background_predictions_that_overlap_a_ground_truth():
    torch = pytest.importorskip("torch")
    from models.losses import YoloLoss

    loss_fn = YoloLoss([[[32.0, 32.0]]], (32,), num_classes=1, ignore_threshold=0.5)
    out = torch.full((1, 6, 2, 2), 0.0)
    out[0, 4] = 5.0  # every cell claims an object (all boxes 32x32 at their cell centres)
    gt = torch.tensor([[0, 0, 16.0, 16.0, 32.0, 32.0]])  # exactly cell (0, 0)'s box: others do not overlap it
    _, parts = loss_fn([out], gt)
    bce_pos_as_bg = math.log1p(math.exp(5.0))
    # cells (0,1), (1,0), (1,1) are background: each costs BCE(5, 0); cell (0,0) is the positive.
    assert parts["noobj"] == pytest.approx(3 * bce_pos_as_bg, rel=1e-5)
    gt2 = torch.tensor([[0, 0, 20.0, 16.0, 32.0, 32.0]])  # assigned to (0,0); cell (0,1) box IoU < 0.5 still bg
    loss_fn_low = YoloLoss([[[32.0, 32.0]]], (32,), num_classes=1, ignore_threshold=0.0)
    _, parts_low = loss_fn_low([out], gt2)
    # with ignore_threshold 0, cell (0,1) overlaps the ground truth (IoU > 0) and is ignored: 2 bg cells remain
    assert parts_low["noobj"] == pytest.approx(2 * bce_pos_as_bg, rel=1e-5)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_label_parsing_and_errors_name_file_and_line(tmp_path):
    good = _write(tmp_path / "labels" / "a.txt", "0 0.5 0.5 0.2 0.4\n\n# comment\n1 0.1 0.2 0.1 0.1\n")
    np.testing.assert_allclose(read_labels(good, 2), [[0, 0.5, 0.5, 0.2, 0.4], [1, 0.1, 0.2, 0.1, 0.1]])
    assert read_labels(tmp_path / "missing.txt", 2).shape == (0, 5)
    cases = {"0 0.5 0.5 0.2\n": "5 fields", "0 0.5 x 0.2 0.1\n": "not numbers", "3 0.5 0.5 0.2 0.1\n": "class 3",
             "0 0.5 0.5 1.5 0.1\n": "normalised", "0 0.5 0.5 0.2 nan\n": "normalised"}
    for text, message in cases.items():
        bad = _write(tmp_path / "labels" / "bad.txt", "0 0.5 0.5 0.2 0.2\n" + text)
        with pytest.raises(DataError, match=f"bad.txt:2: .*{message}"):
            read_labels(bad, 2)
    assert label_path("/d/images/train/x.jpg") == Path("/d/labels/train/x.txt")
    assert label_path("/d/images/x/images/y.png") == Path("/d/images/x/labels/y.txt")
    assert label_path("/d/pics/y.png") == Path("/d/pics/y.txt")


def test_data_yaml_errors(tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    y = _write(tmp_path / "data.yaml", "train: images/train\nval: images/val\nnames: [a]\n")
    with pytest.raises(DataError, match="val folder .*images/val does not exist"):
        load_data_yaml(y)
    (tmp_path / "images" / "val").mkdir()
    assert load_data_yaml(y).names == ("a",)
    _write(y, "train: images/train\nval: images/val\nnames: {0: a, 1: b}\nnc: 3\n")
    with pytest.raises(DataError, match="nc=3"):
        load_data_yaml(y)
    _write(y, "train: images/train\nnames: [a]\n")
    with pytest.raises(DataError, match="missing key 'val'"):
        load_data_yaml(y)
    with pytest.raises(DataError, match="not found"):
        load_data_yaml(tmp_path / "nope.yaml")
    with pytest.raises(DataError, match="no images"):
        list_images(tmp_path / "images" / "train")


def test_synthetic_dataset_and_augmentation(tmp_path):
    y = make_synthetic_dataset(tmp_path, num_train=4, num_val=2, size=(160, 120), seed=3)
    spec = load_data_yaml(y)
    assert spec.names == ("red", "green", "blue")
    plain = YoloDataset.from_spec(spec, "val", img_size=96)
    x, targets = plain[0]
    assert x.shape == (3, 96, 96) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    labels = plain.labels[0]
    # letterbox 160x120 -> 96: scale 0.6, pad_y 12; boxes in network pixels
    np.testing.assert_allclose(targets[:, 1], labels[:, 1] * 96, atol=0.05)
    np.testing.assert_allclose(targets[:, 2], labels[:, 2] * 72 + 12, atol=0.05)
    np.testing.assert_allclose(targets[:, 4], labels[:, 4] * 72, atol=0.05)
    # The box region has the class colour: red is channel 0 of the RGB tensor.
    for cls, cx, cy, *_ in targets:
        channel = {0: 0, 1: 1, 2: 2}[int(cls)]
        assert x[channel, int(cy), int(cx)] > 0.5
    aug = YoloDataset.from_spec(spec, "train", img_size=96, augment=Augment(mosaic=0.5), seed=0)
    for i in range(8):
        x, t = aug[i % len(aug)]
        assert x.shape == (3, 96, 96)
        assert ((t[:, 1:3] >= 0) & (t[:, 1:3] <= 96)).all() and (t[:, 3:5] >= 2).all()


def test_average_precision_by_hand():
    assert average_precision(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == pytest.approx(1.0)
    # detections: TP, FP, TP over 2 ground truths: recall 0.5, 0.5, 1; precision 1, 0.5, 2/3
    assert average_precision(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(
        0.5 * 1.0 + 0.5 * 2 / 3)
    gt = [(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), np.array([0, 0]))]
    pred = [(np.array([[0, 0, 10, 10], [50, 50, 60, 60], [21, 21, 30, 30], [0, 0, 10, 10]], float),
             np.array([0.9, 0.8, 0.7, 0.6]), np.array([0, 0, 0, 0]))]
    ap = evaluate_predictions(pred, gt, num_classes=2)
    assert ap[0] == pytest.approx(0.5 + 0.5 * 2 / 3) and math.isnan(ap[1])  # duplicate at 0.6 is a FP
    assert mean_ap(ap) == pytest.approx(ap[0])


class _BoxTeacher:
    """A fake teacher: one box per frame, plus a low-score and a tiny box that must be dropped."""

    def __init__(self):
        self.calls = 0

    def detect(self, frame):
        from realtime.types import Detections

        self.calls += 1
        return Detections(boxes_xyxy=np.array([[10, 20, 50, 80], [0, 0, 40, 40], [5, 5, 7, 7]], np.float32),
                          scores=np.array([0.9, 0.2, 0.95], np.float32), class_ids=np.zeros(3, np.int64))


def test_label_with_face_teacher_writes_a_dataset(tmp_path):
    import cv2

    from models.datasets import label_with_face_teacher

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (100, 100))
    for i in range(40):
        writer.write(np.full((100, 100, 3), i * 5, np.uint8))
    writer.release()
    teacher = _BoxTeacher()
    result = label_with_face_teacher(video, tmp_path / "out", teacher=teacher, every=2, val_fraction=0.5, block=5)
    assert teacher.calls == 20 and result["train"] == 10 and result["val"] == 10 and result["boxes"] == 20
    spec = load_data_yaml(result["data_yaml"])
    assert spec.names == ("face",)
    labels = read_labels(label_path(list_images(spec.folder("val"))[0]), 1)
    np.testing.assert_allclose(labels, [[0, 0.3, 0.5, 0.4, 0.6]], atol=1e-5)
    with pytest.raises(DataError, match="not found"):
        label_with_face_teacher(tmp_path / "nope.mp4", tmp_path / "o2", teacher=teacher)
