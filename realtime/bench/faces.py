"""``rtv bench faces``: per-part milliseconds of the face stage on a 640x480 frame with several real faces.

Parts: detection, dlib's 5 landmarks (when the embedder has a dlib aligner), alignment (landmarks + chips),
embedding (one batch of N vs N batches of 1), gallery search, detect + align + embed of every face (a new face's
cost), and the whole recognition stage in steady state (tracked faces re-embedded only every ``reembed_every``
frames).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import cv2
import numpy as np

from realtime.face.align import align_faces
from realtime.face.matching import match_faces
from realtime.face.recognition import FaceRecognition
from realtime.face.track import FaceTracker
from realtime.metrics import percentile
from realtime.types import FramePacket


def faces_frame(n_faces: int = 3, size_wh: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A uint8 BGR frame with ``n_faces`` real faces: scaled copies of scikit-image's astronaut and cameraman."""
    from skimage import data

    astronaut = np.ascontiguousarray(data.astronaut()[..., ::-1])
    camera = np.ascontiguousarray(np.stack([data.camera()] * 3, axis=-1))
    w, h = size_wh
    frame = np.full((h, w, 3), 114, np.uint8)
    tile_w = w // n_faces
    for k in range(n_faces):
        photo = astronaut if k % 2 == 0 else camera
        crop = photo[0:300, 100:380] if k % 2 == 0 else photo[60:360, 110:350]
        scale = min(tile_w / crop.shape[1], (h * 0.6) / crop.shape[0])
        tile = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        y = (h - tile.shape[0]) // 2
        x = k * tile_w + (tile_w - tile.shape[1]) // 2
        frame[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    return frame


def _time(fn: Callable[[], Any], repeats: int) -> list[float]:
    fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def _stats(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(values, 50), 3), "p95_ms": round(percentile(values, 95), 3)}


def bench_faces(detector, embedder, n_faces: int = 3, gallery_persons: int = 100, per_person: int = 3,
                repeats: int = 50, reembed_every: int = 10, match_threshold: float = 0.6,
                match_margin: float = 0.04) -> dict[str, Any]:
    """Measure each part; returns a report dict (``faces_found`` says how many faces the detector saw)."""
    frame = faces_frame(n_faces)
    faces = detector.detect(frame)
    n = len(faces)
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(gallery_persons * per_person, embedder.embedding_size)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    labels = np.repeat(np.array([f"person{i:03d}" for i in range(gallery_persons)]), per_person)
    chips, _ = embedder.align(frame, faces.boxes_xyxy, faces.landmarks5)
    vectors = embedder.embed(chips)

    def new_faces() -> None:
        found = detector.detect(frame)
        embedder.embed(embedder.align(frame, found.boxes_xyxy, found.landmarks5)[0])

    parts = {"detect": _time(lambda: detector.detect(frame), repeats)}
    aligner = getattr(embedder, "aligner", None)
    if aligner is not None:
        points = aligner.landmarks(frame, faces.boxes_xyxy)
        parts["landmarks_dlib5"] = _time(lambda: aligner.landmarks(frame, faces.boxes_xyxy), repeats)
        parts["chips_dlib5"] = _time(lambda: aligner.chips(frame, points), repeats)
        # The CenterFace-template warp, for comparison (what the dlib geometry costs on top).
        parts["align_template5"] = _time(lambda: align_faces(frame, faces.landmarks5, embedder.template5,
                                                             embedder.size_wh[0]), repeats)
    parts.update({
        "align": _time(lambda: embedder.align(frame, faces.boxes_xyxy, faces.landmarks5), repeats),
        f"embed_batch{n}": _time(lambda: embedder.embed(chips), repeats),
        f"embed_{n}x_batch1": _time(lambda: [embedder.embed(chips[i:i + 1]) for i in range(n)], repeats),
        "search": _time(lambda: match_faces(vectors, gallery, labels, match_threshold, match_margin), repeats),
        "detect+align+embed": _time(new_faces, repeats),
    })
    stage = FaceRecognition(embedder, gallery, labels, FaceTracker(reembed_every=reembed_every),
                            match_threshold=match_threshold, match_margin=match_margin)
    steady = []
    for index in range(repeats * 2):
        packet = FramePacket(index=index, t_capture=0.0, t_source=0.0, frame_bgr=frame)
        t0 = time.perf_counter()
        packet = detector(packet)
        stage(packet)
        steady.append((time.perf_counter() - t0) * 1000.0)
    return {
        "frame_wh": [frame.shape[1], frame.shape[0]],
        "faces_found": n,
        "gallery_embeddings": int(len(labels)),
        "parts": {k: _stats(v) for k, v in parts.items()},
        "stage_steady_state": _stats(steady[repeats:]),
        "reembed_every": reembed_every,
        "alignment": "dlib5" if aligner is not None else "template5",
    }


def format_report(report: dict[str, Any]) -> str:
    lines = [f"faces on a {report['frame_wh'][0]}x{report['frame_wh'][1]} frame: {report['faces_found']} found; "
             f"gallery of {report['gallery_embeddings']} embeddings; chips: {report.get('alignment', '?')}",
             f"  {'part':<26}{'p50 ms':>10}{'p95 ms':>10}"]
    for name, s in report["parts"].items():
        lines.append(f"  {name:<26}{s['p50_ms']:>10.2f}{s['p95_ms']:>10.2f}")
    s = report["stage_steady_state"]
    lines.append(f"  {'detect+recognize (steady)':<26}{s['p50_ms']:>10.2f}{s['p95_ms']:>10.2f}"
                 f"   (re-embed every {report['reembed_every']} frames)")
    return "\n".join(lines)
