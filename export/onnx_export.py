"""Generic PyTorch -> ONNX export: opset 17, dynamic batch (and optionally spatial) axes, contract in the
metadata, ``onnx.checker`` on the result."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Sequence

import onnx
import torch

from export.metadata import attach_contract
from realtime.contract import ModelContract
from realtime.errors import ExportError

OPSET = 17


def trace_to_onnx(module: torch.nn.Module, example_input: torch.Tensor, input_name: str, output_names: Sequence[str],
                  dynamic_axes: dict[str, dict[int, str]], opset: int = OPSET) -> onnx.ModelProto:
    """The one tracing export: ``module`` (eval mode) on ``example_input`` with the TorchScript exporter, constant
    folding on, then ``onnx.checker`` (full check). Raises :class:`ExportError` for either failure."""
    buffer = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: onnxscript not needed
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # fixed shapes are intended
            torch.onnx.export(module.eval(), (example_input,), buffer, dynamo=False, opset_version=opset,
                              input_names=[input_name], output_names=list(output_names), dynamic_axes=dynamic_axes,
                              do_constant_folding=True)
    except Exception as exc:  # the exporter raises many untyped errors; report them as one typed error
        raise ExportError(f"torch.onnx.export failed for {type(module).__name__}: {type(exc).__name__}: {exc}") from exc
    model = onnx.load_from_string(buffer.getvalue())
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker refused the exported {type(module).__name__}: {exc}") from exc
    return model


def export_onnx(module: torch.nn.Module, example_input: torch.Tensor, out_path: Path | str,
                contract: ModelContract, output_names: Sequence[str] | None = None,
                dynamic_batch: bool = True, dynamic_spatial: bool = False, opset: int = OPSET) -> Path:
    """Export ``module`` (put in eval mode) traced on ``example_input`` (float32 (N, 3, H, W)) to ``out_path``.

    The graph input is named ``contract.input.name`` and the outputs ``output_names`` (default
    ``contract.outputs``). Dynamic axes: batch (axis 0 of input and outputs) when ``dynamic_batch``; H and W of
    the input and axes 2, 3 of every 4-D/5-D output when ``dynamic_spatial``. Raises :class:`ExportError` when tracing
    fails or the checker refuses the graph.
    """
    out_path = Path(out_path)
    names = list(output_names or contract.outputs)
    input_name = contract.input.name
    axes: dict[str, dict[int, str]] = {input_name: {}, **{n: {} for n in names}}
    if dynamic_batch:
        axes[input_name][0] = "batch"
        for n in names:
            axes[n][0] = "batch"
    module = module.eval()
    with torch.no_grad():
        sample = module(example_input)
    sample = list(sample) if isinstance(sample, (list, tuple)) else [sample]
    if len(sample) != len(names):
        raise ExportError(f"module returns {len(sample)} outputs but {len(names)} output names were given")
    if dynamic_spatial:  # input (N, 3, H, W); outputs (N, C, H, W) or (N, A, H, W, F): spatial axes 2 and 3
        axes[input_name].update({2: "height", 3: "width"})
        for i, (n, t) in enumerate(zip(names, sample)):
            if t.ndim >= 4:
                axes[n].update({2: f"h{i}", 3: f"w{i}"})
    model = trace_to_onnx(module, example_input, input_name, names, axes, opset)
    attach_contract(model, contract)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker refused the exported {contract.name!r}: {exc}") from exc
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    return out_path
