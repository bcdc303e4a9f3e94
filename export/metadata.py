"""Write the model contract into an ONNX model's metadata."""

from __future__ import annotations

import onnx

from realtime.contract import CONTRACT_KEY, ModelContract, contract_from_dict


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
