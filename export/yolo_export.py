"""Export a trained YOLO checkpoint to ONNX with its contract, and check parity with PyTorch.

``export_detector`` runs the parity check as part of the export and removes the file when it fails;
``check_detector`` runs it on demand. ``attach_yolo_contract`` gives a YOLOv3/v5-style ONNX model made elsewhere
the contract the runtime needs (anchors, strides, classes, layout from the user).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx
import torch

from export.metadata import attach_contract, read_contract
from export.onnx_export import export_onnx
from export.parity import ParityReport, Tolerance, require_parity, run_parity, torch_forward, yolo_decoder
from models.yolo import YoloNet, load_checkpoint
from realtime.contract import InputSpec, ModelContract
from realtime.errors import ExportError
from realtime.detect.yolo import YoloHead


def detector_contract(model: YoloNet, img_size: int, dynamic_spatial: bool, name: str = "rtv-yolo",
                      extra: dict[str, Any] | None = None) -> ModelContract:
    """The contract for one of our YOLO models: RGB, pixel / 255, letterboxed, raw ``yolov3_nchw`` outputs."""
    cfg = model.config
    return ModelContract(
        kind="yolo",
        name=name,
        input=InputSpec(name="images", size_wh=None if dynamic_spatial else (img_size, img_size),
                        default_size_wh=(img_size, img_size), size_multiple=32, color="rgb", scale=1.0 / 255.0,
                        mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), letterbox=True),
        outputs=tuple(f"stride{s}" for s in cfg.strides),
        classes=tuple(cfg.classes),
        anchors=tuple(tuple(tuple(a) for a in scale) for scale in cfg.anchors),
        strides=tuple(cfg.strides),
        output_layout=cfg.layout,
        extra=dict(extra or {}),
    )


def parity_inputs(img_size: int, dynamic_spatial: bool, seed: int = 0) -> list[np.ndarray]:
    """Inputs for the check: a batch of 2 at the export size and, when the size is dynamic, one of another size
    (img_size + 96 wide, img_size - 64 high). Smooth random images (blurred noise plus blocks) in [0, 1]."""
    rng = np.random.default_rng(seed)
    sizes = [(img_size, img_size, 2)]
    if dynamic_spatial:
        sizes.append((max(64, img_size - 64), img_size + 96, 1))
    inputs = []
    for h, w, n in sizes:
        coarse = rng.random((n, 3, h // 16 + 1, w // 16 + 1)).astype(np.float32)
        x = np.repeat(np.repeat(coarse, 16, axis=2), 16, axis=3)[:, :, :h, :w]
        x = np.clip(x + rng.normal(0, 0.05, x.shape).astype(np.float32), 0, 1)
        inputs.append(np.ascontiguousarray(x, dtype=np.float32))
    return inputs


def check_detector(onnx_path: Path | str, checkpoint: Path | str | YoloNet, tolerance: Tolerance = Tolerance(),
                   score_threshold: float = 0.01, iou_threshold: float = 0.45, providers: str = "cpu"
                   ) -> ParityReport:
    """Parity of an exported detector with its checkpoint (``rtv export check``); raises :class:`ExportError`
    with the report when beyond ``tolerance``. Uses the contract in the ONNX file for the input sizes."""
    model = checkpoint if isinstance(checkpoint, YoloNet) else load_checkpoint(checkpoint)[0]
    model.eval()
    parsed = read_contract(onnx_path)
    head = YoloHead.from_contract(parsed)
    cfg = model.config
    if head.anchors != tuple(tuple(tuple(a) for a in s) for s in cfg.anchors) or parsed.classes != cfg.classes:
        raise ExportError(f"{onnx_path}: anchors or classes differ from the checkpoint's; was it exported from it?")
    size = parsed.input.working_size_wh()[0]
    inputs = parity_inputs(size, parsed.input.size_wh is None)
    report = run_parity(torch_forward(model), onnx_path, inputs, yolo_decoder(head, score_threshold, iou_threshold),
                        tolerance, providers, expected_kind="yolo")
    return require_parity(report)


def export_detector(checkpoint: Path | str, out_path: Path | str, img_size: int | None = None,
                    dynamic_spatial: bool = True, name: str = "rtv-yolo", check: bool = True,
                    tolerance: Tolerance = Tolerance()) -> dict[str, Any]:
    """``rtv export detector CHECKPOINT --out model.onnx``: opset 17, dynamic batch, dynamic or fixed spatial size,
    contract in the metadata, ``onnx.checker``, then the parity check (the file is removed if it fails).

    Returns ``{"path", "sha256", "contract", "parity"}`` where ``parity`` is the report as a dict (or None).
    """
    checkpoint = Path(checkpoint)
    model, data = load_checkpoint(checkpoint)
    size = int(img_size or model.config.img_size)
    if size % 32:
        raise ExportError(f"img_size must be a multiple of 32, got {size}")
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    extra = {"checkpoint_sha256": digest, "epoch": data.get("epoch"), "metrics": data.get("metrics", {}),
             "variant": "v3" if len(model.config.strides) == 2 else "v2"}
    contract = detector_contract(model, size, dynamic_spatial, name, extra)
    out = export_onnx(model, torch.zeros(1, 3, size, size), out_path, contract, dynamic_batch=True,
                      dynamic_spatial=dynamic_spatial)
    report = None
    if check:
        try:
            report = check_detector(out, model, tolerance)
        except ExportError:
            out.unlink(missing_ok=True)
            raise
    return {"path": out, "sha256": hashlib.sha256(out.read_bytes()).hexdigest(), "contract": contract,
            "parity": report.to_dict() if report else None, "report_text": report.format() if report else ""}


def attach_yolo_contract(onnx_in: Path | str, onnx_out: Path | str, anchors: Sequence[Sequence[Sequence[float]]],
                         strides: Sequence[int], classes: Sequence[str], layout: str, input_size_wh: tuple[int, int],
                         output_names: Sequence[str] | None = None, color: str = "rgb", name: str = "external-yolo"
                         ) -> ModelContract:
    """Give an anchor-based YOLO ONNX model made elsewhere (raw head outputs, YOLOv3/v5-style layouts) the
    contract that ``realtime`` needs, and write it to ``onnx_out``. ``output_names`` default to the graph outputs
    in order, one per stride."""
    model = onnx.load(str(onnx_in))
    graph_inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(graph_inputs) != 1:
        raise ExportError(f"{onnx_in}: expected one image input, found {graph_inputs}")
    outputs = tuple(output_names or [o.name for o in model.graph.output])
    head = YoloHead(anchors=tuple(tuple((float(w), float(h)) for w, h in s) for s in anchors),
                    strides=tuple(int(s) for s in strides), num_classes=len(classes), layout=layout)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    fixed = all(d.HasField("dim_value") for d in list(dims)[2:4]) if len(dims) == 4 else False
    contract = ModelContract(
        kind="yolo", name=name,
        input=InputSpec(name=graph_inputs[0], size_wh=tuple(input_size_wh) if fixed else None,
                        default_size_wh=tuple(input_size_wh), size_multiple=max(head.strides), color=color),
        outputs=outputs, classes=tuple(classes), anchors=head.anchors, strides=head.strides, output_layout=layout,
    )
    attach_contract(model, contract)
    onnx.save(model, str(onnx_out))
    return contract


def torch_runner(checkpoint: Path | str, threads: int = 1):
    """A PyTorch eager runner for ``realtime.bench.detector``: float32 (N, 3, H, W) -> list of raw outputs.

    ``checkpoint``: an rtv YOLO checkpoint or an rtv darknet checkpoint ('rtv import darknet ... --checkpoint');
    a darknet network's outputs are its heads in the order its ONNX export has them. Sets
    ``torch.set_num_threads(threads)`` when called (the benchmark's thread count), not at import."""
    from models.darknet import is_darknet_checkpoint, load_darknet_checkpoint

    torch.set_num_threads(int(threads))
    if is_darknet_checkpoint(checkpoint):
        net, _classes, _data = load_darknet_checkpoint(checkpoint)
        return torch_forward(net.eval())
    model, _ = load_checkpoint(checkpoint)
    return torch_forward(model.eval())
