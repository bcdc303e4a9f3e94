"""The detector benchmark runs end to end on a tiny hand-built ONNX YOLO (no timing assertions)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from export.metadata import attach_contract  # noqa: E402
from realtime.bench.detector import bench_detector, bench_nms, format_bench_table, load_frames  # noqa: E402
from realtime.contract import InputSpec, ModelContract  # noqa: E402
from realtime.errors import SourceError  # noqa: E402


def _tiny_yolo(path):
    """One strided Conv: (N, 3, H, W) -> (N, 1 * (5 + 2), H / 32, W / 32), a valid yolov3_nchw head."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(0, 0.5, (7, 3, 32, 32)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.array([0, 0, 0, 0, 3, 1, -1], np.float32), "b")
    node = helper.make_node("Conv", ["images", "w", "b"], ["stride32"], strides=[32, 32])
    graph = helper.make_graph([node], "tiny", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                            ["n", 3, "h", "w"])],
                              [helper.make_tensor_value_info("stride32", TensorProto.FLOAT, ["n", 7, "h32", "w32"])],
                              [weight, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    contract = ModelContract(kind="yolo", name="tiny", input=InputSpec(name="images", default_size_wh=(64, 64)),
                             outputs=("stride32",), classes=("a", "b"), anchors=(((40.0, 40.0),),), strides=(32,),
                             output_layout="yolov3_nchw")
    onnx.save(attach_contract(model, contract), str(path))
    return path


def test_bench_detector_reports_each_size_and_backend(tmp_path):
    path = _tiny_yolo(tmp_path / "tiny.onnx")
    calls = []

    def fake_runner_factory():
        def run(x):
            calls.append(x.shape)
            # logits of -20: objectness ~2e-9, so no box passes any threshold (decode keeps score >= threshold)
            return [np.full((1, 7, x.shape[2] // 32, x.shape[3] // 32), -20.0, np.float32)]
        return run

    result = bench_detector(path, sizes=(64, 96), frames=3, warmup=1, extra_runners={"other": fake_runner_factory})
    assert [(r["size"], r["backend"]) for r in result["rows"]] == [(64, "onnxruntime"), (64, "other"),
                                                                   (96, "onnxruntime"), (96, "other")]
    assert all(r["total_ms"] > 0 for r in result["rows"]) and result["frames"] == 3
    assert calls[0] == (1, 3, 64, 64) and calls[-1] == (1, 3, 96, 96)
    assert result["rows"][0]["detections"] > 0 and result["rows"][1]["detections"] == 0
    assert "onnxruntime" in format_bench_table(result)


def test_bench_nms_and_frames(tmp_path):
    result = bench_nms(n=200, repeats=2)
    assert result["clustered/nms"]["kept"] > 0 and result["uniform/batched_nms"]["ms"] > 0
    assert len(load_frames(None, 2)) == 2
    with pytest.raises(SourceError, match="no frames"):
        load_frames(tmp_path, 2)


def test_variants_are_interleaved_and_compared_to_the_first(tmp_path):
    from realtime.runtime import RuntimeOptions

    path = _tiny_yolo(tmp_path / "tiny.onnx")
    variants = {"a": (path, RuntimeOptions(providers="cpu")), "b": (path, RuntimeOptions(providers="cpu"))}
    result = bench_detector(path, sizes=[64, 96], frames=3, warmup=1, variants=variants)
    assert [(r["size"], r["backend"]) for r in result["rows"]] == [(64, "a"), (64, "b"), (96, "a"), (96, "b")]
    assert set(result["variants"]) == {"a", "b"} and result["variants"]["a"]["providers"][0] == "CPUExecutionProvider"
    table = format_bench_table(result)
    assert "speed-up" in table and table.count("1.00x") >= 2  # each size's first backend is the base
