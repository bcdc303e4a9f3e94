"""Pure box maths: IoU and non-maximum suppression. Shapes in docstrings; no ONNX Runtime needed."""

from __future__ import annotations

import numpy as np


def box_area(boxes_xyxy: np.ndarray) -> np.ndarray:
    """``boxes_xyxy``: (N, 4) -> (N,) areas (0 for degenerate boxes)."""
    return np.clip(boxes_xyxy[:, 2] - boxes_xyxy[:, 0], 0, None) * np.clip(boxes_xyxy[:, 3] - boxes_xyxy[:, 1], 0, None)


def box_iou(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """Pairwise IoU. ``a_xyxy``: (N, 4), ``b_xyxy``: (M, 4) -> float (N, M); 0 where the union is empty."""
    a = np.asarray(a_xyxy, dtype=np.float64)
    b = np.asarray(b_xyxy, dtype=np.float64)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int | None = None) -> np.ndarray:
    """Greedy NMS: indices of kept boxes, highest score first.

    ``boxes_xyxy``: (N, 4), ``scores``: (N,). A box is suppressed when its IoU with a kept box is strictly greater
    than ``iou_threshold``. Ties in score keep the lower index first (stable sort), so results are deterministic.
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    boxes = np.asarray(boxes_xyxy, dtype=np.float64)[order]
    areas = box_area(boxes)
    alive = np.ones(n, dtype=bool)
    keep: list[int] = []
    limit = n if max_keep is None else max_keep
    for i in range(n):
        if not alive[i]:
            continue
        keep.append(i)
        if len(keep) >= limit:
            break
        rest = np.nonzero(alive[i + 1:])[0] + i + 1
        if rest.size == 0:
            break
        lt = np.maximum(boxes[i, :2], boxes[rest, :2])
        rb = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        wh = np.clip(rb - lt, 0, None)
        inter = wh[:, 0] * wh[:, 1]
        union = areas[i] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        alive[rest[iou > iou_threshold]] = False
    return order[np.asarray(keep, dtype=np.int64)]


def batched_nms(boxes_xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float,
                max_keep: int | None = None) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other. Same return as :func:`nms`.

    Uses the coordinate-offset trick: each class is shifted by a distance larger than any box, so one greedy pass
    equals running :func:`nms` per class and merging by score.
    """
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    boxes = np.asarray(boxes_xyxy, dtype=np.float64)
    span = float(np.max(np.abs(boxes))) * 2 + 1.0
    shifted = boxes + (np.asarray(class_ids, dtype=np.float64) * span)[:, None]
    return nms(shifted, scores, iou_threshold, max_keep)
