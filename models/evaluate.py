"""AP@0.5 per class and mAP for a detector on a labelled folder or data YAML.

Matching follows PASCAL VOC: detections sorted by score, each matched to the unmatched ground truth of its class
with the highest IoU if that IoU >= ``iou_match``; AP is the area under the all-point interpolated
precision/recall curve. Classes without ground truth get AP NaN and are left out of the mean.
Decode and NMS are ``realtime.detect.yolo``'s, the same code that serves the exported model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from realtime.boxes import box_iou
from realtime.errors import DataError


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP. ``recall``, ``precision``: float (K,) in detection order (recall increasing)."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def evaluate_predictions(predictions: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                         ground_truths: Sequence[tuple[np.ndarray, np.ndarray]], num_classes: int,
                         iou_match: float = 0.5) -> dict[int, float]:
    """Per-class AP.

    ``predictions``: per image (boxes_xyxy (N, 4), scores (N,), class_ids (N,)); ``ground_truths``: per image
    (boxes_xyxy (M, 4), class_ids (M,)) in the same pixels. Returns {class index: AP, NaN without ground truth}.
    """
    if len(predictions) != len(ground_truths):
        raise DataError(f"{len(predictions)} prediction sets for {len(ground_truths)} images")
    ap: dict[int, float] = {}
    for c in range(num_classes):
        records = []  # (score, is_true_positive)
        total_gt = 0
        for (boxes, scores, classes), (gt_boxes, gt_classes) in zip(predictions, ground_truths):
            gt = np.asarray(gt_boxes)[np.asarray(gt_classes) == c]
            total_gt += len(gt)
            sel = np.asarray(classes) == c
            det, det_scores = np.asarray(boxes)[sel], np.asarray(scores)[sel]
            order = np.argsort(-det_scores, kind="stable")
            det, det_scores = det[order], det_scores[order]
            used = np.zeros(len(gt), bool)
            ious = box_iou(det, gt) if len(gt) and len(det) else np.zeros((len(det), len(gt)))
            for k in range(len(det)):
                hit = False
                if len(gt):
                    candidates = np.where(used, -1.0, ious[k])
                    j = int(np.argmax(candidates))
                    if candidates[j] >= iou_match:
                        used[j] = True
                        hit = True
                records.append((float(det_scores[k]), hit))
        if total_gt == 0:
            ap[c] = float("nan")
            continue
        if not records:
            ap[c] = 0.0
            continue
        records.sort(key=lambda r: -r[0])
        tp = np.cumsum([r[1] for r in records])
        fp = np.cumsum([not r[1] for r in records])
        ap[c] = average_precision(tp / total_gt, tp / np.maximum(tp + fp, 1))
    return ap


def mean_ap(ap: dict[Any, float]) -> float:
    values = [v for v in ap.values() if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def predict_torch(model, images_bgr: Sequence[np.ndarray], img_size: int, score_threshold: float = 0.001,
                  iou_threshold: float = 0.5, max_detections: int = 300
                  ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Run a :class:`models.yolo.YoloNet` on BGR images (letterboxed to ``img_size``) and decode with
    ``realtime.detect.yolo``; boxes come back in each image's source pixels."""
    import torch

    from realtime.contract import InputSpec
    from realtime.preprocess import letterbox, to_input_nchw
    from realtime.detect.yolo import GridCache, YoloHead, decode_yolo, select_detections

    cfg = model.config
    head = YoloHead(anchors=cfg.anchors, strides=cfg.strides, num_classes=cfg.num_classes, layout=cfg.layout)
    grids = GridCache(head)
    spec = InputSpec(name="images", size_wh=(img_size, img_size))
    results = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for image in images_bgr:
            boxed, lb = letterbox(image, (img_size, img_size))
            outputs = [o.numpy() for o in model(torch.from_numpy(to_input_nchw([boxed], spec)))]
            boxes, scores, classes = decode_yolo(outputs, head, score_threshold, 3000, grids)
            boxes, scores, classes = select_detections(boxes, scores, classes, iou_threshold, True, max_detections)
            h, w = image.shape[:2]
            results.append((lb.to_source_xyxy(boxes, (w, h)), scores, classes))
    model.train(was_training)
    return results


def evaluate_detector(model, data: Path | str, split: str = "val", img_size: int | None = None,
                      score_threshold: float = 0.001, iou_threshold: float = 0.5, limit: int | None = None
                      ) -> dict[str, Any]:
    """AP@0.5 per class and mAP of a detector on a data YAML (its ``split``) or a labelled image folder.

    ``model``: a checkpoint path, a :class:`models.yolo.YoloNet`, or any object with ``detect(frame_bgr)`` returning
    ``realtime.types.Detections`` (e.g. ``realtime.detect.yolo.YoloDetector`` on an exported model; then its own thresholds
    apply). For a folder, class names come from the model. Returns
    ``{"ap": {name: AP}, "map50": float, "images": n, "boxes": m}``.
    """
    from models.datasets import list_images, load_data_yaml, read_image, read_labels, label_path, labels_to_xyxy

    data = Path(data)
    names: tuple[str, ...] | None = None
    if data.suffix in (".yaml", ".yml"):
        spec = load_data_yaml(data)
        names = spec.names
        images = list_images(spec.folder(split))
    else:
        images = list_images(data)
    if isinstance(model, (str, Path)):
        from models.yolo import load_checkpoint

        model, _ = load_checkpoint(model)
    detect = getattr(model, "detect", None)
    if names is None:
        names = tuple(model.config.classes) if detect is None else tuple(model.class_names)
    if limit is not None:
        images = images[:limit]
    frames = [read_image(p) for p in images]
    truths = []
    for p, frame in zip(images, frames):
        labels = read_labels(label_path(p), len(names))
        xyxy = labels_to_xyxy(labels, frame.shape[1], frame.shape[0])
        truths.append((xyxy[:, 1:5], xyxy[:, 0].astype(np.int64)))
    if detect is not None:
        predictions = []
        for frame in frames:
            det = detect(frame)
            predictions.append((det.boxes_xyxy, det.scores, det.class_ids))
    else:
        predictions = predict_torch(model, frames, img_size or model.config.img_size, score_threshold,
                                    iou_threshold)
    ap = evaluate_predictions(predictions, truths, len(names))
    return {"ap": {names[c]: v for c, v in ap.items()}, "map50": mean_ap(ap), "images": len(images),
            "boxes": int(sum(len(t[1]) for t in truths))}
