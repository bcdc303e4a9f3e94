"""``rtv bench detector``: milliseconds per frame for preprocess, inference and decode + NMS, per input size.

ONNX Runtime is always measured. Other backends on the same model (PyTorch eager) come in as plain callables
``input_nchw -> list of raw outputs`` from the caller (``export.yolo_export.torch_runner``), so this module never
imports torch. Not a timed test: run it and read the table.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import cv2
import numpy as np

from realtime.errors import SourceError
from realtime.preprocess import letterbox, to_input_nchw
from realtime.runtime import OnnxModel, RuntimeOptions
from realtime.detect.yolo import GridCache, YoloHead, decode_yolo, select_detections

Runner = Callable[[np.ndarray], Sequence[np.ndarray]]


def load_frames(source: Path | str | None, count: int = 60, size_wh: tuple[int, int] = (640, 480),
                seed: int = 0) -> list[np.ndarray]:
    """Up to ``count`` BGR frames from a video file or image folder; synthetic frames when ``source`` is None."""
    if source is None:
        rng = np.random.default_rng(seed)
        frames = []
        for _ in range(count):
            frame = cv2.GaussianBlur(rng.integers(0, 255, (size_wh[1], size_wh[0], 3), dtype=np.uint8), (7, 7), 0)
            for _ in range(3):
                x, y = rng.integers(0, size_wh[0] - 100), rng.integers(0, size_wh[1] - 100)
                cv2.rectangle(frame, (int(x), int(y)), (int(x) + 90, int(y) + 90),
                              tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
            frames.append(frame)
        return frames
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))[:count]
        frames = [f for f in (cv2.imread(str(p)) for p in files) if f is not None]
    else:
        capture = cv2.VideoCapture(str(path))
        frames = []
        while capture.isOpened() and len(frames) < count:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        capture.release()
    if not frames:
        raise SourceError(f"no frames could be read from {path}; pass a video file or a folder of images")
    return frames


def _median_ms(values: list[float]) -> float:
    return float(np.median(values) * 1e3) if values else float("nan")


def bench_detector(onnx_path: Path | str, sizes: Sequence[int] = (320, 416), source: Path | str | None = None,
                   frames: int = 60, warmup: int = 5, threads: int = 1, providers: str = "cpu",
                   extra_runners: Mapping[str, Callable[[], Runner]] | None = None, score_threshold: float = 0.25,
                   iou_threshold: float = 0.45,
                   variants: Mapping[str, tuple[Path | str, RuntimeOptions]] | None = None) -> dict:
    """Median ms per frame of each step, for each size and backend.

    ``extra_runners``: name -> factory returning a runner (called once per run), e.g.
    ``{"pytorch": lambda: torch_runner(checkpoint, threads)}``. ``variants``: label -> (model file, session
    options), e.g. one per provider; when given they replace ``onnx_path``/``providers`` as the ONNX Runtime
    backends. The backends take each frame in turn (interleaved), so load drifts hit them alike and their ratios
    hold on a busy machine. A model with a fixed input size is measured at that size only. Returns ``{"model",
    "providers", "threads", "frames", "rows": [{size, backend, preprocess_ms, inference_ms, decode_nms_ms,
    total_ms, detections}], "variants": {label: {model, providers, precision_hint}}}``.
    """
    images = load_frames(source, frames + warmup)
    rows = []
    wanted = dict(variants) if variants else {"onnxruntime": (onnx_path, RuntimeOptions(
        providers=providers, intra_op_threads=threads))}
    models: dict[str, OnnxModel] = {}
    try:
        for label, (path, options) in wanted.items():
            models[label] = OnnxModel(path, options, expected_kind="yolo")
        first = next(iter(models.values()))
        contract = first.contract
        head = YoloHead.from_contract(contract)
        fixed = contract.input.size_wh
        run_sizes = [fixed[0]] if fixed else list(sizes)
        backends: dict[str, Runner] = {label: m.run for label, m in models.items()}
        for name, factory in (extra_runners or {}).items():
            backends[name] = factory()
        for size in run_sizes:
            grids = GridCache(head)
            times = {name: ([], [], [], []) for name in backends}
            for i, frame in enumerate(images):
                for name, runner in backends.items():
                    pre, inf, post, counts = times[name]
                    t0 = time.perf_counter()
                    boxed, lb = letterbox(frame, (size, size), pad_value=contract.input.pad_value)
                    x = to_input_nchw([boxed], contract.input)
                    t1 = time.perf_counter()
                    outputs = [np.asarray(o) for o in runner(x)]
                    t2 = time.perf_counter()
                    boxes, scores, classes = decode_yolo(outputs, head, score_threshold, 1000, grids)
                    boxes, scores, classes = select_detections(boxes, scores, classes, iou_threshold)
                    lb.to_source_xyxy(boxes, (frame.shape[1], frame.shape[0]))
                    t3 = time.perf_counter()
                    if i >= warmup:
                        pre.append(t1 - t0)
                        inf.append(t2 - t1)
                        post.append(t3 - t2)
                        counts.append(len(scores))
            for name, (pre, inf, post, counts) in times.items():
                row = {"size": size, "backend": name, "preprocess_ms": _median_ms(pre),
                       "inference_ms": _median_ms(inf), "decode_nms_ms": _median_ms(post),
                       "detections": float(np.mean(counts)) if counts else 0.0}
                row["total_ms"] = row["preprocess_ms"] + row["inference_ms"] + row["decode_nms_ms"]
                rows.append(row)
        used = list(first.providers)
        described = {label: {"model": str(m.path), "providers": list(m.providers),
                             "precision_hint": m.precision_hint} for label, m in models.items()}
    finally:
        for m in models.values():
            m.close()
    return {"model": str(first.path), "providers": used, "threads": threads, "frames": len(images) - warmup,
            "source": str(source) if source else "synthetic 640x480", "rows": rows, "variants": described}


def format_bench_table(result: Mapping) -> str:
    """The bench result as a fixed-width table; with several backends, each row's total against the first
    backend's at the same size."""
    lines = [f"{result['model']} on {result['source']}, {result['frames']} frames, {result['threads']} thread(s), "
             f"{', '.join(result['providers'])}"]
    for label, v in result.get("variants", {}).items():
        if len(result.get("variants", {})) > 1:
            lines.append(f"  {label}: {Path(v['model']).name} on {v['providers'][0]}"
                         + (f", OpenVINO hint {v['precision_hint']}" if v["precision_hint"] else ""))
    lines.append(f"{'size':>5} {'backend':>22} {'preprocess':>11} {'inference':>10} {'decode+nms':>11} "
                 f"{'total ms':>9} {'speed-up':>9}")
    first: dict[int, float] = {}
    for r in result["rows"]:
        base = first.setdefault(r["size"], r["total_ms"])
        lines.append(f"{r['size']:>5} {r['backend']:>22} {r['preprocess_ms']:>11.2f} {r['inference_ms']:>10.2f} "
                     f"{r['decode_nms_ms']:>11.2f} {r['total_ms']:>9.2f} {base / r['total_ms']:>8.2f}x")
    return "\n".join(lines)


def bench_nms(n: int = 1000, repeats: int = 50, iou_threshold: float = 0.45, num_classes: int = 3,
              seed: int = 0) -> dict:
    """Median ms of :func:`nms` and :func:`batched_nms` on ``n`` candidates, for two box distributions:
    ``clustered`` (like detector output: ~20 objects, many overlapping candidates each) and ``uniform``
    (random boxes all over a 640 px frame, most of them kept: the worst case for greedy NMS)."""
    from realtime.boxes import batched_nms, nms

    rng = np.random.default_rng(seed)
    centres, sizes = rng.uniform(0, 640, (20, 2)), rng.uniform(20, 200, (20, 2))
    k = rng.integers(0, 20, n)
    ctr = centres[k] + rng.normal(0, 8, (n, 2))
    wh = sizes[k] * rng.uniform(0.8, 1.2, (n, 2))
    clustered = np.concatenate([ctr - wh / 2, ctr + wh / 2], 1).astype(np.float32)
    xy, wh = rng.uniform(0, 600, (n, 2)), rng.uniform(5, 100, (n, 2))
    uniform = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = rng.random(n).astype(np.float32)
    classes = rng.integers(0, num_classes, n)
    result = {"n": n, "iou_threshold": iou_threshold}
    for name, boxes in (("clustered", clustered), ("uniform", uniform)):
        for fn_name, call in (("nms", lambda b=boxes: nms(b, scores, iou_threshold)),
                              ("batched_nms", lambda b=boxes: batched_nms(b, scores, classes, iou_threshold))):
            kept = call()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                call()
                times.append(time.perf_counter() - t0)
            result[f"{name}/{fn_name}"] = {"ms": _median_ms(times), "kept": int(len(kept))}
    return result
