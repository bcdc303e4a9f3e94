"""Anchor boxes from k-means over training box shapes with the IoU distance ``d = 1 - IoU`` (YOLOv2). numpy only."""

from __future__ import annotations

import numpy as np

from realtime.errors import DataError


def shape_iou(wh_a: np.ndarray, wh_b: np.ndarray) -> np.ndarray:
    """IoU of boxes aligned at a common corner (shape only). ``wh_a``: (N, 2), ``wh_b``: (K, 2) -> float64 (N, K)."""
    a = np.asarray(wh_a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(wh_b, dtype=np.float64).reshape(-1, 2)
    inter = np.minimum(a[:, None, 0], b[None, :, 0]) * np.minimum(a[:, None, 1], b[None, :, 1])
    union = (a[:, 0] * a[:, 1])[:, None] + (b[:, 0] * b[:, 1])[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def kmeans_anchors(wh: np.ndarray, k: int, iterations: int = 100, seed: int = 0) -> np.ndarray:
    """Cluster box shapes into ``k`` anchors with distance ``1 - IoU``; centres are cluster medians.

    ``wh``: float (N, 2) box widths and heights in network pixels (boxes with w or h <= 0 are ignored).
    Returns float32 (k, 2) sorted by area, smallest first. Initialisation is k-means++ on the IoU distance.
    Raises :class:`DataError` when there are fewer distinct usable boxes than ``k``.
    """
    boxes = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    boxes = boxes[(boxes > 0).all(axis=1)]
    if len(np.unique(boxes, axis=0)) < k:
        raise DataError(f"k-means needs at least {k} distinct box shapes, got {len(np.unique(boxes, axis=0))}; "
                        "label more boxes or ask for fewer anchors")
    rng = np.random.default_rng(seed)
    centres = [boxes[rng.integers(len(boxes))]]
    for _ in range(1, k):
        dist = 1.0 - shape_iou(boxes, np.asarray(centres)).max(axis=1)
        weights = dist ** 2
        total = weights.sum()
        pick = rng.choice(len(boxes), p=weights / total) if total > 0 else rng.integers(len(boxes))
        centres.append(boxes[pick])
    centres = np.asarray(centres)
    assign = None
    for _ in range(iterations):
        new_assign = np.argmax(shape_iou(boxes, centres), axis=1)
        if assign is not None and np.array_equal(new_assign, assign):
            break
        assign = new_assign
        for j in range(k):
            members = boxes[assign == j]
            if len(members):
                centres[j] = np.median(members, axis=0)
    order = np.argsort(centres[:, 0] * centres[:, 1], kind="stable")
    return centres[order].astype(np.float32)


def anchor_fitness(wh: np.ndarray, anchors_wh: np.ndarray) -> float:
    """Mean over boxes of the best shape IoU with any anchor. ``wh``: (N, 2), ``anchors_wh``: (K, 2)."""
    return float(shape_iou(wh, anchors_wh).max(axis=1).mean()) if len(wh) else 0.0


def split_anchors(anchors_wh: np.ndarray, num_scales: int) -> tuple[tuple[tuple[float, float], ...], ...]:
    """Anchors sorted by area -> one tuple per scale, smallest anchors to the finest scale (first stride)."""
    anchors = np.asarray(anchors_wh, dtype=np.float64).reshape(-1, 2)
    anchors = anchors[np.argsort(anchors[:, 0] * anchors[:, 1], kind="stable")]
    if len(anchors) % num_scales:
        raise DataError(f"{len(anchors)} anchors do not split evenly into {num_scales} scales; use a multiple of "
                        f"{num_scales}")
    per = len(anchors) // num_scales
    return tuple(
        tuple((round(float(w), 2), round(float(h), 2)) for w, h in anchors[i * per:(i + 1) * per])
        for i in range(num_scales)
    )
