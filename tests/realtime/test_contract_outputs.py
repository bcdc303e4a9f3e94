"""A model whose outputs disagree with its contract is refused when its session opens (ModelError, exit 4), not at
the first face or frame."""

from __future__ import annotations

import pytest

from realtime.contract import ModelContract, shape_disagreement
from realtime.errors import ModelError
from realtime.runtime import OnnxModel


def _dynamic_width_model(path, contract_json: str):
    """(N, 3, H, W) -> (N, 3*H*W) (Flatten): the width depends on the input size, so only a run shows it (192 at the
    contract's 8x8)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", "D"])
    nodes = [helper.make_node("Flatten", ["input"], ["embedding"], axis=1)]
    model = helper.make_model(helper.make_graph(nodes, "dyn", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "rtv.contract", contract_json
    onnx.save(model, str(path))
    return path


def test_static_output_width_that_differs_from_the_contract_is_refused(tmp_path, onnx_factory):
    make, contract = onnx_factory
    path = make(tmp_path / "m.onnx", contract(embedding_size=128))  # the graph says (N, 3)
    with pytest.raises(ModelError, match="axis -1"):
        OnnxModel(path)


def test_dynamic_output_width_is_checked_by_a_probe_run_at_open(tmp_path, onnx_factory):
    _make, contract = onnx_factory
    path = _dynamic_width_model(tmp_path / "dyn.onnx", contract(embedding_size=128))
    with pytest.raises(ModelError, match="test input"):
        OnnxModel(path)
    ok = _dynamic_width_model(tmp_path / "ok.onnx", contract(embedding_size=192))
    assert OnnxModel(ok).contract.embedding_size == 192


def test_shape_rules_per_kind():
    yolo = ModelContract.from_json('{"kind": "yolo", "input": {"name": "x", "size_wh": [64, 64]}, '
                                   '"outputs": ["a"], "classes": ["c0", "c1"], "anchors": [[[1, 2], [3, 4]]], '
                                   '"strides": [32]}')
    assert shape_disagreement(yolo, 0, ("N", 14, "h", "w")) is None  # 2 anchors x (5 + 2 classes)
    assert "the contract means 14" in shape_disagreement(yolo, 0, (1, 18, 2, 2))
    assert "rank" in shape_disagreement(yolo, 0, (1, 14, 4))
