"""INT8 static quantisation (QDQ, per-channel) of a darknet import, and the agreement measure."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")

from export.darknet import export_darknet  # noqa: E402
from export.metadata import read_contract  # noqa: E402
from export.quantize import agreement, quantize_detector  # noqa: E402
from realtime.config import ZOO_DIR  # noqa: E402
from realtime.errors import ExportError  # noqa: E402


def _frames(n, seed=0):
    rng = np.random.default_rng(seed)
    return [np.repeat(np.repeat(rng.integers(0, 255, (15, 20, 3), dtype=np.uint8), 16, 0), 16, 1)
            for _ in range(n)]


@pytest.fixture
def small_float(darknet_files, tmp_path):
    cfg, weights = darknet_files("yolov3-tiny", seed=5, head_bias=0.0)
    return export_darknet(cfg, weights, tmp_path / "f.onnx", check=False)["path"]


def test_quantize_writes_qdq_graph_with_the_contract(small_float, tmp_path):
    out = tmp_path / "q.onnx"
    contract = quantize_detector(small_float, out, _frames(4), size=128)
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    read = read_contract(out)
    assert read == contract and read.extra["int8"]["float_model"] == "f.onnx"
    assert read.extra["int8"]["calibration_frames"] == 4 and read.classes == read_contract(small_float).classes
    with pytest.raises(ExportError, match="calibration method 'kl'"):
        quantize_detector(small_float, tmp_path / "x.onnx", _frames(1), method="kl")


def test_agreement_of_a_model_with_itself_is_perfect(small_float):
    result = agreement(small_float, small_float, _frames(6, 1), size=128, gt_threshold=0.2, min_boxes=1)
    assert result["float_boxes"] > 0, "the random model must find something for this test to mean anything"
    assert all(v["ap50"] == pytest.approx(1.0) for v in result["per_class"].values()), result


SHIPPED = ZOO_DIR / "yolov3_tiny_coco_int8.onnx"


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the INT8 model does not ship")
def test_shipped_int8_entry_records_agreement_and_speed():
    entry = json.loads((ZOO_DIR / "MANIFEST.json").read_text())["yolov3_tiny_coco_int8.onnx"]
    for size in ("416", "320"):
        assert entry["agreement_with_float"][size]["per_class"]["person"]["ap50"] >= 0.9
    # the declared rule (person, car and truck AP@0.5 >= 0.99) is not met: truck 0.983 at 416
    assert entry["default_ok"] is False and entry["quantisation"]["format"] == "QDQ"
    assert entry["agreement_with_float"]["416"]["per_class"]["truck"]["ap50"] < 0.99
    assert set(entry["speed"]["yolov3_tiny_coco.onnx"]) == {"320", "416"}
    assert "vtest.avi" not in " ".join(entry["quantisation"]["calibration_sources"])


def test_output_convolutions_can_stay_float_and_weights_use_7_bits(small_float, tmp_path):
    graph = onnx.load(str(small_float)).graph
    outputs = {o.name for o in graph.output}
    heads = [n.name for n in graph.node if n.op_type == "Conv" and set(n.output) & outputs]
    assert heads, "the darknet export ends in convolutions"
    out = tmp_path / "q.onnx"
    contract = quantize_detector(small_float, out, _frames(2), size=128, reduce_range=True, float_nodes=heads)
    assert contract.extra["int8"]["reduce_range"] is True and contract.extra["int8"]["float_nodes"] == heads
    quantized = onnx.load(str(out)).graph
    produced_by = {o: n for n in quantized.node for o in n.output}
    for name in {o.name for o in quantized.output}:  # each output comes straight from a float Conv
        node = produced_by[name]
        assert node.op_type == "Conv"
        weight = produced_by.get(node.input[1])
        assert weight is None or weight.op_type != "DequantizeLinear"
