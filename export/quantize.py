"""INT8 (static, QDQ, per-channel weights) variants of an exported YOLO and their measured agreement with float.

Calibration frames and measurement frames come from different registry files: calibration uses the photos of
Debian ``opencv-doc``'s ``examples/data`` and frames of its ``Megamind.avi`` and ``tree.avi`` plus scikit-image
photos; the measurement uses frames of ``vtest.avi`` (a street scene with pedestrians), which calibration never
sees. Agreement is AP@0.5 of the INT8 detections (score > 0.01, ranked) against the float detections at the serving
threshold (0.5) taken as ground truth, per class for the frequent classes, served by ``realtime.detect.yolo`` for both.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import onnx

from export.metadata import attach_contract, read_contract
from export.qdq import CalibrationReader
from models.sources import OPENCV_DOC_DATA, VTEST_AVI, DebianFile, debian_version, locate_debian
from models.evaluate import evaluate_predictions
from realtime.contract import ModelContract
from realtime.errors import ExportError
from realtime.media import IMAGE_SUFFIXES
from realtime.preprocess import letterbox, to_input_nchw
from realtime.runtime import OnnxModel, RuntimeOptions
from realtime.detect.yolo import YoloDetector

CALIBRATION_VIDEOS = ("Megamind.avi", "tree.avi")
CALIBRATION_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "hubble_deep_field")


def _video_frames(path: Path, every: int, limit: int) -> list[np.ndarray]:
    from realtime.media import sample_video_frames

    return sample_video_frames(path, every, limit)


def calibration_frames(limit_per_video: int = 30, every: int = 10) -> tuple[list[np.ndarray], list[str]]:
    """BGR frames for calibration and a description of where they came from (never vtest.avi)."""
    from skimage import data

    vtest = locate_debian(VTEST_AVI)
    folder = vtest.parent
    frames, origin = [], []
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    for p in photos:
        image = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if image is not None and min(image.shape[:2]) >= 64:
            frames.append(image)
    origin.append(f"Debian opencv-doc {debian_version(VTEST_AVI)} {OPENCV_DOC_DATA}: {len(frames)} photos")
    for name in CALIBRATION_VIDEOS:
        got = _video_frames(folder / name, every, limit_per_video)
        frames += got
        origin.append(f"{name}: {len(got)} frames (every {every}th)")
    for name in CALIBRATION_PHOTOS:
        rgb = getattr(data, name)()
        frames.append(np.ascontiguousarray(np.stack([rgb] * 3, -1) if rgb.ndim == 2 else rgb[..., ::-1]))
    origin.append(f"scikit-image: {', '.join(CALIBRATION_PHOTOS)}")
    return frames, origin


def measurement_frames(every: int = 3, limit: int = 400, video: DebianFile = VTEST_AVI) -> list[np.ndarray]:
    """Held-out frames: every ``every``-th frame of vtest.avi (not used for calibration)."""
    return _video_frames(locate_debian(video), every, limit)


def quantize_detector(float_onnx: Path | str, out_onnx: Path | str, frames: Sequence[np.ndarray],
                      size: int | None = None, method: str = "minmax", extra: dict[str, Any] | None = None,
                      reduce_range: bool = False, float_nodes: Sequence[str] = ()) -> ModelContract:
    """Static INT8 quantisation: QDQ format, per-channel symmetric INT8 weights, UINT8 activations calibrated on
    ``frames`` (``method`` minmax / entropy / percentile) at ``size`` (default: the contract's). The contract is
    copied with ``extra.int8`` describing the quantisation. ``reduce_range``: 7-bit weights, which avoid the 16-bit
    saturation of ONNX Runtime's INT8 kernels on CPUs without VNNI; ``float_nodes``: nodes left in float (e.g. the
    output convolutions). Returns the new contract."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    float_onnx, out_onnx = Path(float_onnx), Path(out_onnx)
    contract = read_contract(float_onnx)
    size = int(size or contract.input.working_size_wh()[0])
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise ExportError(f"calibration method {method!r} is not one of {', '.join(methods)}")
    with tempfile.TemporaryDirectory() as tmp:
        prepped = Path(tmp) / "prepped.onnx"
        quant_pre_process(str(float_onnx), str(prepped), skip_symbolic_shape=True)
        batches = [to_input_nchw([letterbox(f, (size, size), pad_value=contract.input.pad_value)[0]], contract.input)
                   for f in frames]
        quantize_static(str(prepped), str(out_onnx), CalibrationReader(contract.input.name, batches),
                        quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        calibrate_method=methods[method], reduce_range=reduce_range,
                        nodes_to_exclude=list(float_nodes))
    model = onnx.load(str(out_onnx))
    int8 = {"format": "QDQ", "weights": "int8 per-channel symmetric", "activations": "uint8 per-tensor",
            "calibration": method, "calibration_size": size, "calibration_frames": len(frames),
            "float_model": float_onnx.name, **(extra or {})}
    if reduce_range:
        int8["reduce_range"] = True
    if float_nodes:
        int8["float_nodes"] = list(float_nodes)
    new = ModelContract(kind=contract.kind, name=f"{contract.name}-int8", input=contract.input,
                        outputs=contract.outputs, classes=contract.classes, anchors=contract.anchors,
                        strides=contract.strides, embedding_size=contract.embedding_size,
                        output_layout=contract.output_layout, extra={**dict(contract.extra), "int8": int8})
    attach_contract(model, new)
    onnx.save(model, str(out_onnx))
    return new


def _detect_all(onnx_path: Path, frames: Sequence[np.ndarray], size: int, score_threshold: float,
                threads: int = 1) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    with OnnxModel(onnx_path, RuntimeOptions(providers="cpu", intra_op_threads=threads),
                   expected_kind="yolo") as model:
        detector = YoloDetector(model, input_size=(size, size), score_threshold=score_threshold,
                                max_detections=300)
        out = []
        for frame in frames:
            det = detector.detect(frame)
            b = det.boxes_xyxy
            ok = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])  # boxes clipped to nothing outside the frame are dropped
            out.append((b[ok], det.scores[ok], det.class_ids[ok]))
        names = detector.class_names
    return out, names


def agreement(float_onnx: Path | str, int8_onnx: Path | str, frames: Sequence[np.ndarray], size: int = 416,
              gt_threshold: float = 0.5, min_boxes: int = 20) -> dict[str, Any]:
    """AP@0.5 of ``int8_onnx`` against ``float_onnx``'s detections (score > ``gt_threshold``) as ground truth.

    Returns ``{"size", "frames", "gt_threshold", "per_class": {name: {"ap50", "float_boxes"}} for classes with at
    least ``min_boxes`` float boxes, "all_classes_map50", "float_boxes", "int8_boxes_at_gt_threshold"}``."""
    ref, names = _detect_all(Path(float_onnx), frames, size, 0.01)
    cand, _ = _detect_all(Path(int8_onnx), frames, size, 0.01)
    gts = [(b[s > gt_threshold], c[s > gt_threshold]) for b, s, c in ref]
    ap = evaluate_predictions(cand, gts, len(names))
    counts = np.bincount(np.concatenate([c for _, c in gts]) if gts else np.zeros(0, int), minlength=len(names))
    per_class = {names[k]: {"ap50": ap[k], "float_boxes": int(counts[k])} for k in range(len(names))
                 if counts[k] >= min_boxes}
    valid = [v for v in ap.values() if not np.isnan(v)]
    return {"size": size, "frames": len(frames), "gt_threshold": gt_threshold, "per_class": per_class,
            "all_classes_map50": float(np.mean(valid)) if valid else float("nan"),
            "float_boxes": int(counts.sum()),
            "int8_boxes_at_gt_threshold": int(sum(int((s > gt_threshold).sum()) for _, s, _ in cand))}


def speed(onnx_paths: Sequence[Path | str], sizes: Sequence[int] = (320, 416), frames: int = 40,
          threads: int = 1) -> dict[str, Any]:
    """Median inference ms per model and size on vtest.avi frames (``realtime.bench.detector``), the models
    measured one after the other in this process. A benchmark, not a test: the figures depend on the load."""
    import os

    from realtime.bench.detector import bench_detector

    source = locate_debian(VTEST_AVI)
    result: dict[str, Any] = {"threads": threads, "frames": frames, "source": "vtest.avi",
                              "load_average_1min_before": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count()}
    for path in onnx_paths:
        bench = bench_detector(path, sizes=sizes, source=source, frames=frames, threads=threads)
        result[Path(path).name] = {str(r["size"]): {"inference_ms": round(r["inference_ms"], 2),
                                                    "total_ms": round(r["total_ms"], 2)} for r in bench["rows"]}
    result["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    return result


def export_int8(float_onnx: Path | str, out_onnx: Path | str, sizes: Sequence[int] = (416, 320),
                method: str = "minmax", manifest: bool = True, ap_required: float = 0.99,
                ap_classes: Sequence[str] = ("person", "car", "truck")) -> dict[str, Any]:
    """``rtv export int8``: quantise ``float_onnx`` on the calibration frames, measure agreement on held-out
    vtest.avi frames at each of ``sizes`` and the speed of both models; write the manifest entry beside
    ``out_onnx`` (when ``manifest``). ``default_ok`` says whether the AP@0.5 of each of ``ap_classes`` (those with
    enough float boxes) at every size is at least ``ap_required`` on the CPU that measured it: the declared rule
    for an INT8 detector (runtime.precision auto reads the precision records, realtime/precision.py)."""
    from export.manifest import MANIFEST_NAME, update_manifest

    float_onnx, out_onnx = Path(float_onnx), Path(out_onnx)
    frames, origin = calibration_frames()
    contract = quantize_detector(float_onnx, out_onnx, frames, sizes[0], method,
                                 extra={"calibration_sources": origin})
    held_out = measurement_frames()
    agree = {str(s): agreement(float_onnx, out_onnx, held_out, s) for s in sizes}
    aps = [a["per_class"][c]["ap50"] for a in agree.values() for c in ap_classes if c in a["per_class"]]
    default_ok = bool(aps) and all(p >= ap_required for p in aps)
    timing = speed([float_onnx, out_onnx])
    result = {"path": out_onnx, "contract": contract, "agreement": agree, "speed": timing, "default_ok": default_ok}
    if manifest:
        import json

        float_entry = json.loads((float_onnx.parent / MANIFEST_NAME).read_text()).get(float_onnx.name, {}) \
            if (float_onnx.parent / MANIFEST_NAME).is_file() else {}
        entry = {
            "name": contract.name, "kind": contract.kind, "opset": 17,
            "source": f"rtv: static INT8 (QDQ) quantisation of {float_onnx.name} by export/quantize.py "
                      f"(rtv export int8); float source: {float_entry.get('source', float_onnx.name)}",
            "licence": float_entry.get("licence", "as the float model"),
            "quantisation": contract.extra["int8"],
            "agreement_with_float": agree,
            "agreement_note": "AP@0.5 of INT8 detections (score > 0.01) against the float model's detections with "
                              "score > 0.5 as ground truth, both served by realtime.detect.yolo (letterbox, decode, NMS "
                              "0.45); held-out frames: every 3rd frame of Debian opencv-doc vtest.avi (not used "
                              "for calibration); per class for classes with >= 20 float boxes",
            "speed": timing,
            "speed_note": "median ms per frame, 1 ONNX Runtime thread, on a 2-core machine shared with other jobs "
                          "(see load averages): compare the two models within this entry only",
            "ap50_required_for_default": {"classes": list(ap_classes), "min": ap_required},
            "default_ok": default_ok,
        }
        result["manifest"] = update_manifest(out_onnx, entry)
    return result
