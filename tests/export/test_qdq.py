"""INT8 QDQ quantisation keeps the contract, turns convolutions into INT8 kernels, stays close to float; the
accept/refuse rules for the face models."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")

from export.int8_faces import compare_faces, embedder_holds, face_detector_holds  # noqa: E402
from export.qdq import quantize_qdq  # noqa: E402
from realtime.runtime import OnnxModel, RuntimeOptions  # noqa: E402
from realtime.types import FaceDetections  # noqa: E402


def conv_model(path, contract_json):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(8, np.float32), "b")
    scale = numpy_helper.from_array(rng.uniform(0.5, 1.5, (1, 8, 1, 1)).astype(np.float32), "s")
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 8])
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c", "s"], ["m"]),  # an affine after the conv, like dlib's
             helper.make_node("Relu", ["m"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["embedding"], axis=1)]
    model = helper.make_model(helper.make_graph(nodes, "conv", [x], [y], [w, b, scale]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "rtv.contract", contract_json
    onnx.save(model, str(path))
    return path


def test_quantized_model_keeps_the_contract_and_runs_int8_convolutions(tmp_path):
    import json

    from tests.conftest import tiny_contract_json

    float_path = conv_model(tmp_path / "f.onnx", tiny_contract_json(embedding_size=8))
    rng = np.random.default_rng(1)
    calibration = [rng.uniform(0, 1, (2, 3, 16, 16)).astype(np.float32) for _ in range(4)]
    info = quantize_qdq(float_path, tmp_path / "q.onnx", calibration, note={"calibration_data": "random"})
    assert info["format"] == "QDQ" and info["calibration_inputs"] == 4
    options = RuntimeOptions(providers="cpu")
    with OnnxModel(float_path, options) as f, OnnxModel(tmp_path / "q.onnx", options) as q:
        assert q.contract.name == "tiny_int8" and q.contract.extra["quantization"]["calibration_data"] == "random"
        assert q.contract.embedding_size == f.contract.embedding_size
        x = rng.uniform(0, 1, (1, 3, 16, 16)).astype(np.float32)
        a, b = f.run(x)[0], q.run(x)[0]
        assert np.abs(a - b).max() < 0.05 * np.abs(a).max()
    graph = onnx.load(str(tmp_path / "q.onnx")).graph
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)
    with pytest.raises(Exception, match="must not replace"):
        quantize_qdq(float_path, float_path, calibration)
    assert json.loads(next(p.value for p in onnx.load(str(float_path)).metadata_props))["name"] == "tiny"


def test_face_matching_counts_recall_and_landmark_error():
    lm = np.array([[[10, 10], [30, 10], [20, 20], [12, 30], [28, 30]]], np.float32)
    ref = FaceDetections(np.array([[0, 0, 40, 40]], np.float32), np.array([0.9], np.float32), lm)
    cand = FaceDetections(np.array([[1, 0, 41, 40]], np.float32), np.array([0.8], np.float32), lm + [2, 0])
    c = compare_faces(ref, cand)
    assert c["matched"] == 1 and c["landmark_px"] == [2.0] and c["landmark_iod"] == [0.1]
    assert c["score_diff"] == [pytest.approx(0.1)]
    assert compare_faces(ref, FaceDetections())["matched"] == 0


def test_limits_decide_what_ships():
    good = {"by_width": {"320": {"recall_vs_float": 1.0, "precision_vs_float": 1.0,
                                 "landmark_error_iod": {"mean": 0.01}}}}
    assert face_detector_holds(good)[0]
    bad = {"by_width": {"320": {"recall_vs_float": 0.96, "precision_vs_float": 1.0,
                                "landmark_error_iod": {"mean": 0.05}}}}
    ok, why = face_detector_holds(bad)
    assert not ok and "recall" in why and "landmark" in why
    assert embedder_holds({"int8_to_float_distance": {"max": 0.04}, "verification_decisions_changed": 1,
                           "pairs": 3321})[0]
    assert not embedder_holds({"int8_to_float_distance": {"max": 0.1}, "verification_decisions_changed": 0,
                               "pairs": 10})[0]
