"""Pure box maths: IoU and non-maximum suppression. Shapes in docstrings; no ONNX Runtime needed.

Exactness contract for NMS: IoU is computed in float64 from the given coordinates as
``inter / (area_a + area_b - inter)`` with ``inter = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1))``
and areas ``max(0, x2 - x1) * max(0, y2 - y1)``; a box is suppressed when that IoU is strictly greater than
``iou_threshold``. Boxes are visited in descending score order, ties broken by the lower index first. A plain
Python loop doing the same arithmetic gives bit-identical IoUs and therefore the identical kept list.
"""

from __future__ import annotations

import numpy as np

from realtime.errors import ConfigError


def box_area(boxes_xyxy: np.ndarray) -> np.ndarray:
    """``boxes_xyxy``: (N, 4) -> (N,) areas (0 for degenerate boxes)."""
    return np.clip(boxes_xyxy[:, 2] - boxes_xyxy[:, 0], 0, None) * np.clip(boxes_xyxy[:, 3] - boxes_xyxy[:, 1], 0, None)


def box_iou(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """Pairwise IoU. ``a_xyxy``: (N, 4), ``b_xyxy``: (M, 4) -> float64 (N, M); 0 where the union is empty."""
    a = np.asarray(a_xyxy, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b_xyxy, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _score_order(scores: np.ndarray) -> np.ndarray:
    """Indices by descending score, ties by ascending index. ``scores``: (N,) -> int64 (N,)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def _greedy(boxes: np.ndarray, iou_threshold: float, limit: int) -> list[int]:
    """Greedy pass over boxes already sorted by score. ``boxes``: float64 (N, 4); returns kept positions.

    Each kept box is compared with the survivors only, so the cost is about (kept boxes) x (survivors) and stays
    near a millisecond for 1000 clustered detector candidates. A 0/0 IoU (two empty boxes) is NaN here and never
    suppresses, exactly like the reference's 0.
    """
    x1 = np.ascontiguousarray(boxes[:, 0])
    y1 = np.ascontiguousarray(boxes[:, 1])
    x2 = np.ascontiguousarray(boxes[:, 2])
    y2 = np.ascontiguousarray(boxes[:, 3])
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    idx = np.arange(len(boxes))
    keep: list[int] = []
    with np.errstate(invalid="ignore", divide="ignore"):
        while idx.size:
            i = int(idx[0])
            keep.append(i)
            if len(keep) >= limit:
                break
            rest = idx[1:]
            w = np.minimum(x2[i], x2[rest])
            w -= np.maximum(x1[i], x1[rest])
            np.maximum(w, 0, out=w)
            h = np.minimum(y2[i], y2[rest])
            h -= np.maximum(y1[i], y1[rest])
            np.maximum(h, 0, out=h)
            inter = w * h
            union = areas[rest] + areas[i]
            union -= inter
            idx = rest[~(inter / union > iou_threshold)]
    return keep


def _check_threshold(iou_threshold: float) -> float:
    value = float(iou_threshold)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"iou_threshold must be in [0, 1], got {iou_threshold!r}; set it between 0 and 1")
    return value


def nms(boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int | None = None) -> np.ndarray:
    """Greedy NMS: indices of kept boxes, highest score first.

    ``boxes_xyxy``: (N, 4), ``scores``: (N,) -> int64 (K,). A box is suppressed when its IoU with a kept box is
    strictly greater than ``iou_threshold``. Ties in score keep the lower index first (stable sort), so results are
    deterministic. ``max_keep`` stops after that many boxes.
    """
    n = len(scores)
    if n == 0 or (max_keep is not None and max_keep <= 0):
        return np.zeros(0, dtype=np.int64)
    order = _score_order(scores)
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)[order]
    keep = _greedy(boxes, _check_threshold(iou_threshold), n if max_keep is None else int(max_keep))
    return order[np.asarray(keep, dtype=np.int64)].astype(np.int64)


def batched_nms(boxes_xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float,
                max_keep: int | None = None) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other. Same return as :func:`nms`.

    ``class_ids``: int (N,). Equal to running :func:`nms` per class and merging by (score desc, index asc). The
    classes are run one by one (not with the coordinate-offset trick, whose shifted coordinates change the float
    rounding of IoUs), so IoUs come from the original coordinates and stay bit-exact at threshold edges.
    """
    n = len(scores)
    if n == 0 or (max_keep is not None and max_keep <= 0):
        return np.zeros(0, dtype=np.int64)
    order = _score_order(scores)
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)[order]
    classes = np.asarray(class_ids).reshape(-1)[order]
    threshold = _check_threshold(iou_threshold)
    limit = n if max_keep is None else int(max_keep)
    kept: list[np.ndarray] = []
    for cls in np.unique(classes):
        positions = np.nonzero(classes == cls)[0]
        kept.append(positions[_greedy(boxes[positions], threshold, limit)])
    merged = np.sort(np.concatenate(kept))[:limit]
    return order[merged].astype(np.int64)
