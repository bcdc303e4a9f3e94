"""The model contract in an ONNX model's metadata: write it, read it back from a file."""

from __future__ import annotations

import onnx

from pathlib import Path

from realtime.contract import CONTRACT_KEY, ModelContract, contract_from_dict
from realtime.errors import ExportError


def attach_contract(model: onnx.ModelProto, contract: ModelContract) -> onnx.ModelProto:
    """Store ``contract`` as JSON under :data:`CONTRACT_KEY` (replacing an older entry) and return ``model``.

    The JSON is parsed back once so a contract the runtime would refuse never gets written.
    """
    text = contract.to_json()
    import json

    contract_from_dict(json.loads(text), source=contract.name)
    for prop in list(model.metadata_props):
        if prop.key == CONTRACT_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key = CONTRACT_KEY
    entry.value = text
    return model


def read_contract(onnx_path: Path | str) -> ModelContract:
    """The contract stored in ``onnx_path``'s metadata (weights not loaded); :class:`ExportError` when absent."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    text = next((p.value for p in model.metadata_props if p.key == CONTRACT_KEY), None)
    if text is None:
        raise ExportError(f"{onnx_path}: has no {CONTRACT_KEY!r} metadata")
    return ModelContract.from_json(text, str(onnx_path))
