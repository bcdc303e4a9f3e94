"""Static INT8 quantisation of an exported model: ONNX Runtime's QDQ format, per-channel weights, activations
calibrated on real inputs. The model contract (and every other metadata entry) of the float model is kept, with a
``quantization`` entry added to its ``extra``.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from realtime.contract import CONTRACT_KEY
from realtime.errors import ExportError


class CalibrationReader:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over a list of input arrays."""

    def __init__(self, input_name: str, batches: Sequence[np.ndarray]):
        self._items = iter([{input_name: np.ascontiguousarray(b, dtype=np.float32)} for b in batches])

    def get_next(self):
        return next(self._items, None)

    def rewind(self) -> None:  # pragma: no cover - not used by the MinMax calibrator
        pass


def quantize_qdq(float_path: Path | str, out_path: Path | str, calibration_nchw: Iterable[np.ndarray],
                 per_channel: bool = True, method: str = "minmax", exclude_op_types: Sequence[str] = (),
                 float_nodes: Sequence[str] = (), note: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the INT8 (QDQ, signed 8-bit weights and activations) version of ``float_path`` to ``out_path``.

    ``calibration_nchw``: float32 (N, 3, H, W) arrays, each a model input exactly as the runtime feeds it (sizes may
    differ between arrays when the model has dynamic axes). ``method``: ``minmax`` or ``percentile`` (99.999).
    ``exclude_op_types``: operator types left in float; ``float_nodes``: names of nodes left in float (e.g. a
    detector's output heads). Activations are unsigned 8-bit: ONNX Runtime's x86 kernels fuse U8S8 QDQ pairs into
    ``QLinearConv`` (with signed activations many convolutions stay float between Dequantize/Quantize). Returns what was done (for the manifest).
    """
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    float_path, out_path = Path(float_path).resolve(), Path(out_path).resolve()
    if out_path.resolve() == float_path.resolve():
        raise ExportError(f"{out_path}: the INT8 file must not replace its float model")
    batches = list(calibration_nchw)
    if not batches:
        raise ExportError("INT8 calibration needs at least one input")
    source = onnx.load(str(float_path))
    input_name = source.graph.input[0].name
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise ExportError(f"calibration method {method!r}: use one of {', '.join(methods)}")
    op_types = sorted({n.op_type for n in source.graph.node} - set(exclude_op_types))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # ONNX Runtime's shape inference and calibrator drop scratch files into the working folder: work in the temp one
    with tempfile.TemporaryDirectory(prefix="rtv_int8_") as tmp, contextlib.chdir(tmp):
        prepared = Path(tmp) / "prepared.onnx"
        folded = _fold_constants(float_path, Path(tmp) / "folded.onnx")
        try:
            quant_pre_process(str(folded), str(prepared), skip_optimization=True, skip_symbolic_shape=False)
        except Exception:  # noqa: BLE001 - symbolic inference gives up on some dynamic graphs; ONNX's own is enough
            quant_pre_process(str(folded), str(prepared), skip_optimization=True, skip_symbolic_shape=True)
        extra = {"CalibPercentile": 99.999} if method == "percentile" else {}
        quantize_static(str(prepared), str(Path(tmp) / "int8.onnx"), CalibrationReader(input_name, batches),
                        quant_format=QuantFormat.QDQ, per_channel=per_channel, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=methods[method],
                        op_types_to_quantize=op_types, nodes_to_exclude=list(float_nodes) or None,
                        extra_options={**extra, "ActivationSymmetric": False})
        quantized = onnx.load(str(Path(tmp) / "int8.onnx"))
    info = {"format": "QDQ", "weights": "int8 per-channel" if per_channel else "int8 per-tensor",
            "activations": "uint8 (asymmetric)", "calibration_method": method,
            "calibration_inputs": len(batches), "float_model": float_path.name,
            "excluded_op_types": list(exclude_op_types), "float_nodes": list(float_nodes), **(note or {})}
    _copy_metadata(source, quantized, info)
    onnx.save(quantized, str(out_path))
    return info


def _fold_constants(float_path: Path, out_path: Path) -> Path:
    """``float_path`` after ONNX Runtime's basic (hardware-independent) optimisations: constants folded and
    batch-norm / scale / bias nodes fused into their convolutions, so each convolution's weight is one initializer
    the quantiser can turn into an INT8 ``QLinearConv`` (left unfused, the weight is computed at run time and the
    convolution stays float between extra Dequantize/Quantize nodes)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(out_path)
    options.log_severity_level = 3
    ort.InferenceSession(str(float_path), options, providers=["CPUExecutionProvider"])
    return out_path


def _copy_metadata(source, target, info: dict[str, Any]) -> None:
    """Every metadata entry of ``source`` onto ``target``; the contract's ``extra.quantization`` set to ``info``."""
    for prop in list(target.metadata_props):
        target.metadata_props.remove(prop)
    for prop in source.metadata_props:
        value = prop.value
        if prop.key == CONTRACT_KEY:
            data = json.loads(value)
            data.setdefault("extra", {})["quantization"] = info
            data["name"] = f"{data.get('name', 'model')}_int8"
            value = json.dumps(data, sort_keys=True)
        entry = target.metadata_props.add()
        entry.key, entry.value = prop.key, value
