"""Does ByteTrack's second pass earn its keep? The object tracker's settings compared on a street video.

There is no ground truth, so the figures are the ones a user counting people sees: confirmed track ids (the
count; fewer for the same people = less fragmentation), how long tracks last, and how many confident person
detections carry an id. The detector runs once at a low threshold; each setting sees the same detections.

``python -m recipes.tracking_measure --model yolov3_tiny_coco.onnx --video vtest.avi`` (OpenCV's pedestrian clip from
Debian's ``opencv-doc``: ``examples/data/vtest.avi``).
"""

from __future__ import annotations

import argparse
import json
import sys

import cv2
import numpy as np

from realtime.detect.track import UNTRACKED, ObjectTracker

SETTINGS = {
    "one pass (IoU)": dict(low_score_threshold=None, buffer=0.0),
    "one pass, buffered IoU 0.3": dict(low_score_threshold=None, buffer=0.3),
    "bytetrack (low 0.1), IoU": dict(low_score_threshold=0.1, buffer=0.0),
    "bytetrack (low 0.1), buffered IoU 0.3 (default)": dict(low_score_threshold=0.1, buffer=0.3),
    "default without the motion model": dict(low_score_threshold=0.1, buffer=0.3, velocity_smoothing=0.0),
    "bytetrack, buffered 0.5, iou 0.2 (permissive)": dict(low_score_threshold=0.1, buffer=0.5, iou_threshold=0.2),
}


def detect_video(model_path: str, video: str, low: float, class_name: str = "person", max_frames: int = 0):
    """Per frame ``(boxes float32 (N, 4), scores float32 (N,))`` of ``class_name`` detections with score >= low."""
    from realtime.config import RuntimeConfig
    from realtime.detect.yolo import YoloDetector
    from realtime.runtime import OnnxModel
    from realtime.zoo import runtime_options

    detector = YoloDetector(OnnxModel(model_path, runtime_options(RuntimeConfig()), expected_kind="yolo"),
                            score_threshold=low)
    cid = detector.class_names.index(class_name)
    cap = cv2.VideoCapture(video)
    frames = []
    try:
        while not max_frames or len(frames) < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            det = detector.detect(frame)
            keep = det.class_ids == cid
            frames.append((det.boxes_xyxy[keep], det.scores[keep]))
    finally:
        cap.release()
        detector.close()
    return frames


def run_setting(frames, high: float, **kwargs) -> dict:
    """Figures for one tracker setting. ``jumps``: links where a track's box centre moved more than half the box
    height in one step (a likely id switch, or a re-found track), per link."""
    tracker = ObjectTracker(high_score_threshold=high, **kwargs)
    lengths: dict[int, int] = {}
    last: dict[int, np.ndarray] = {}
    confident = confident_with_id = links = jumps = 0
    for boxes, scores in frames:
        mask = scores >= (kwargs.get("low_score_threshold") or high)
        ids = tracker.update(boxes[mask], scores[mask], np.zeros(int(mask.sum()), np.int64))
        sc = scores[mask]
        confident += int((sc >= high).sum())
        confident_with_id += int(((sc >= high) & (ids != UNTRACKED)).sum())
        for t, box in zip(ids.tolist(), boxes[mask]):
            if t == UNTRACKED:
                continue
            lengths[t] = lengths.get(t, 0) + 1
            centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
            if t in last:
                links += 1
                jumps += int(np.linalg.norm(centre - last[t]) > 0.5 * (box[3] - box[1]))
            last[t] = centre
    values = np.array(list(lengths.values()) or [0])
    return {"confirmed_ids": tracker.confirmed_count, "mean_track_frames": round(float(values.mean()), 1),
            "median_track_frames": float(np.median(values)), "tracks_over_100_frames": int((values > 100).sum()),
            "confident_detections_with_id": round(confident_with_id / max(confident, 1), 3),
            "jumps_per_link": round(jumps / max(links, 1), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.tracking_measure", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a COCO YOLO ONNX with the rtv contract")
    parser.add_argument("--video", required=True)
    parser.add_argument("--high", type=float, default=0.5, help="the detector's shown threshold (default 0.5)")
    parser.add_argument("--max-frames", type=int, default=0)
    args = parser.parse_args(argv)
    frames = detect_video(args.model, args.video, 0.1, max_frames=args.max_frames)
    report = {"frames": len(frames), "settings": {name: run_setting(frames, args.high, **kw)
                                                   for name, kw in SETTINGS.items()}}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
