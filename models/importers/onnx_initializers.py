"""Load an ONNX file's initializers (its weights) into a PyTorch module, checked by name and shape.

Three small steps, each testable on its own:

* :func:`read_initializers` -- every initializer of an ONNX model as a numpy array, by name;
* :func:`initializer_names_in_node_order` -- the initializers the graph's nodes consume, in execution order
  (useful when an exporter gave folded weights numeric names like ``"542"``);
* :func:`load_initializers` -- copy them into ``module.state_dict()`` through an explicit mapping, checking that every
  tensor is filled exactly once, every shape agrees and no source tensor is used twice.

This module lives in ``models/`` and so never imports ``realtime/``; its errors are :class:`WeightImportError`
(a ``ValueError``), which export code turns into ``realtime.errors.ExportError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import onnx
import torch
from onnx import numpy_helper


class WeightImportError(ValueError):
    """The weights in a file do not fit the module: a missing, surplus, reused or wrongly shaped tensor."""


def _as_model(model_or_path: onnx.ModelProto | Path | str) -> onnx.ModelProto:
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    path = Path(model_or_path)
    if not path.is_file():
        raise WeightImportError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises protobuf DecodeError and others for a file that is not ONNX
        raise WeightImportError(f"{path}: not a readable ONNX file ({type(exc).__name__}: {exc})") from exc


def read_initializers(model_or_path: onnx.ModelProto | Path | str) -> dict[str, np.ndarray]:
    """All initializers of an ONNX model: ``{name: array}`` with the file's shapes and dtypes, in file order."""
    model = _as_model(model_or_path)
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def initializer_names_in_node_order(model_or_path: onnx.ModelProto | Path | str,
                                    op_types: Iterable[str] | None = None) -> list[str]:
    """Names of the initializers that graph nodes consume, in node order, each once (at its first use).

    ``op_types`` restricts the walk to those node types (e.g. ``{"Conv", "ConvTranspose", "BatchNormalization"}``).
    Within a node, inputs keep their ONNX order (Conv: W, B; BatchNormalization: scale, B, mean, var), which is
    also the order of the matching PyTorch ``state_dict`` entries (weight, bias, running_mean, running_var).
    Initializers no node reads (e.g. ``num_batches_tracked`` left over by an exporter) are not listed.
    """
    model = _as_model(model_or_path)
    names = {init.name for init in model.graph.initializer}
    wanted = None if op_types is None else set(op_types)
    seen: set[str] = set()
    order: list[str] = []
    for node in model.graph.node:
        if wanted is not None and node.op_type not in wanted:
            continue
        for name in node.input:
            if name in names and name not in seen:
                seen.add(name)
                order.append(name)
    return order


def load_initializers(module: torch.nn.Module, initializers: Mapping[str, np.ndarray],
                      mapping: Mapping[str, str] | Sequence[str], skip: Iterable[str] = ("num_batches_tracked",),
                      ) -> dict[str, str]:
    """Fill every tensor of ``module.state_dict()`` from ``initializers`` and return the mapping used.

    ``mapping`` is either ``{state_dict_key: initializer_name}`` or a sequence of initializer names, one per
    state-dict key in ``module.state_dict()`` order (after ``skip``). Keys whose last dotted part is in ``skip``
    (by default BatchNorm's ``num_batches_tracked`` counter) are left alone and must not be mapped.

    Raises :class:`WeightImportError` naming the offending key when a key is unmapped or unknown, an initializer is
    missing or mapped twice, a shape differs, or a value is not finite. The module is only written when every check
    passes, so a failed import leaves it unchanged.
    """
    state = module.state_dict()
    skip_set = set(skip)
    keys = [k for k in state if k.rsplit(".", 1)[-1] not in skip_set]
    if isinstance(mapping, Mapping):
        pairs = dict(mapping)
    else:
        names = list(mapping)
        if len(names) != len(keys):
            raise WeightImportError(
                f"ordered mapping has {len(names)} initializer names but the module has {len(keys)} tensors to fill "
                f"(first unmatched: {keys[len(names)] if len(names) < len(keys) else names[len(keys)]!r}); "
                "pass exactly one name per state-dict key"
            )
        pairs = dict(zip(keys, names))
    unknown = [k for k in pairs if k not in state or k.rsplit(".", 1)[-1] in skip_set]
    if unknown:
        raise WeightImportError(f"mapping names {unknown[:5]} which are not tensors to fill in "
                                f"{type(module).__name__} (e.g. {keys[:3]})")
    unfilled = [k for k in keys if k not in pairs]
    if unfilled:
        raise WeightImportError(f"{len(unfilled)} tensors of {type(module).__name__} have no source, first "
                                f"{unfilled[:5]}; add them to the mapping")
    used: dict[str, str] = {}
    for key, name in pairs.items():
        if name in used:
            raise WeightImportError(f"initializer {name!r} is mapped to both {used[name]!r} and {key!r}; "
                                    "each source tensor may fill one parameter only")
        used[name] = key
    tensors: dict[str, torch.Tensor] = {}
    for key in keys:
        name = pairs[key]
        if name not in initializers:
            raise WeightImportError(f"{key!r} is mapped to initializer {name!r}, which the file does not hold")
        value = np.asarray(initializers[name])
        target = state[key]
        if tuple(value.shape) != tuple(target.shape):
            raise WeightImportError(f"{key!r} has shape {tuple(target.shape)} but initializer {name!r} has shape "
                                    f"{tuple(value.shape)}; the mapping pairs the wrong tensors")
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise WeightImportError(f"initializer {name!r} (for {key!r}) holds NaN or infinite values")
        tensors[key] = torch.from_numpy(np.array(value, copy=True)).to(target.dtype)
    with torch.no_grad():
        for key, tensor in tensors.items():
            state[key].copy_(tensor)
    return {key: pairs[key] for key in keys}
