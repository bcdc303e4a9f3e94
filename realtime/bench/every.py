"""``rtv bench every``: what ``detector.every: N`` costs in agreement with every-frame detection, and what it saves.

The detector runs once on every frame of a clip; for each N the frames between detections get the boxes of the
last detected frame (exactly what :class:`realtime.detect.yolo.ObjectDetection` does). Agreement per frame:
carried boxes matched one-to-one to that frame's own detections (same class, IoU >= ``iou``); reported as
precision, recall and F1 over all boxes, the frames with a perfect match, and the detector time saved.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from realtime.metrics import percentile
from realtime.types import Detections


def box_iou(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """IoU of float (N, 4) and (M, 4) xyxy boxes -> float64 (N, M)."""
    a = np.asarray(a_xyxy, np.float64).reshape(-1, 4)
    b = np.asarray(b_xyxy, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def match_count(reference: Detections, candidate: Detections, iou: float = 0.5) -> int:
    """Greedy one-to-one matches (highest IoU first) between boxes of the same class with IoU >= ``iou``."""
    m = box_iou(reference.boxes_xyxy, candidate.boxes_xyxy)
    if m.size == 0:
        return 0
    m = np.where(reference.class_ids[:, None] == candidate.class_ids[None, :], m, -1.0)
    matches = 0
    while m.max() >= iou:
        i, j = np.unravel_index(int(np.argmax(m)), m.shape)
        matches += 1
        m[i, :] = -1.0
        m[:, j] = -1.0
    return matches


def interval_agreement(per_frame: Sequence[Detections], every: int, iou: float = 0.5) -> dict[str, Any]:
    """Agreement of carried detections (detected on frames 0, N, 2N, ...) with ``per_frame`` detections."""
    ref_total = cand_total = matched = perfect = 0
    for i, reference in enumerate(per_frame):
        carried = per_frame[(i // every) * every]
        k = match_count(reference, carried, iou)
        ref_total += len(reference)
        cand_total += len(carried)
        matched += k
        perfect += int(k == len(reference) == len(carried))
    precision = matched / cand_total if cand_total else 1.0
    recall = matched / ref_total if ref_total else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"every": every, "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "frames_identical": round(perfect / max(len(per_frame), 1), 4),
            "detector_runs_per_frame": round(1.0 / every, 4)}


def bench_every(detector, clip: Path | str, intervals: Sequence[int] = (2, 3, 5), max_frames: int | None = None,
                iou: float = 0.5) -> dict[str, Any]:
    """Run ``detector`` (a :class:`realtime.detect.yolo.YoloDetector`) on every frame of ``clip`` and report the
    agreement of each interval in ``intervals`` and the detector milliseconds it saves per frame."""
    import cv2

    capture = cv2.VideoCapture(str(clip))
    per_frame, times = [], []
    try:
        while max_frames is None or len(per_frame) < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            t0 = time.perf_counter()
            per_frame.append(detector.detect(frame))
            times.append((time.perf_counter() - t0) * 1000.0)
    finally:
        capture.release()
    mean_ms = float(np.mean(times)) if times else float("nan")
    names = per_frame[0].class_names if per_frame else ()
    counts: dict[str, int] = {}
    for d in per_frame:
        for cid in d.class_ids:
            name = names[int(cid)] if int(cid) < len(names) else str(int(cid))
            counts[name] = counts.get(name, 0) + 1
    rows = []
    for n in intervals:
        row = interval_agreement(per_frame, int(n), iou)
        row["detector_ms_saved_per_frame"] = round(mean_ms * (1 - 1 / int(n)), 2)
        rows.append(row)
    return {"clip": str(clip), "frames": len(per_frame), "iou": iou,
            "detector_ms": {"mean": round(mean_ms, 2), "p50": round(percentile(times, 50), 2)},
            "boxes_per_frame": round(sum(len(d) for d in per_frame) / max(len(per_frame), 1), 2),
            "classes": dict(sorted(counts.items(), key=lambda kv: -kv[1])[:8]), "intervals": rows}


def format_every(report: dict[str, Any]) -> str:
    lines = [f"{report['clip']}: {report['frames']} frames, {report['boxes_per_frame']} boxes per frame "
             f"({', '.join(f'{k} {v}' for k, v in report['classes'].items())}); detector "
             f"{report['detector_ms']['mean']:.1f} ms mean per frame",
             f"  {'every':>5}{'precision':>11}{'recall':>8}{'F1':>7}{'identical':>11}{'ms saved/frame':>16}"]
    for r in report["intervals"]:
        lines.append(f"  {r['every']:>5}{r['precision']:>11.3f}{r['recall']:>8.3f}{r['f1']:>7.3f}"
                     f"{r['frames_identical']:>11.3f}{r['detector_ms_saved_per_frame']:>16.1f}")
    return "\n".join(lines)
