"""Export + parity on a tiny randomly initialised YOLO at two input sizes; contract, refusals, provider report."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from export.parity import Tolerance, match_detections, raw_errors  # noqa: E402
from export.yolo_export import attach_yolo_contract, check_detector, export_detector  # noqa: E402
from models.yolo import YoloConfig, YoloNet, save_checkpoint  # noqa: E402
from realtime.contract import CONTRACT_KEY, ModelContract  # noqa: E402
from realtime.errors import ExportError, ModelError  # noqa: E402
from realtime.runtime import OnnxModel  # noqa: E402
from realtime.detect.yolo import YoloDetector  # noqa: E402


def _tiny(tmp_path, strides=(16, 32), seed=0, name="tiny.pt"):
    torch.manual_seed(seed)
    anchors = (((12.0, 16.0), (30.0, 24.0)), ((50.0, 60.0), (90.0, 80.0)))[-len(strides):]
    model = YoloNet(YoloConfig(classes=("a", "b"), anchors=anchors, strides=strides, width=8, img_size=96))
    for head in model.heads():  # random biases so that decode + NMS have boxes to compare
        torch.nn.init.normal_(head.bias, 0.0, 1.0)
    path = tmp_path / name
    save_checkpoint(path, model, epoch=0)
    return path


@pytest.mark.parametrize("strides", [(16, 32), (32,)])
def test_export_with_parity_at_two_sizes(tmp_path, strides):
    ckpt = _tiny(tmp_path, strides)
    result = export_detector(ckpt, tmp_path / "m.onnx")
    proto = onnx.load(str(result["path"]))
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version == 17
    meta = {p.key: p.value for p in proto.metadata_props}
    contract = ModelContract.from_json(meta[CONTRACT_KEY])
    assert contract.kind == "yolo" and contract.classes == ("a", "b") and contract.strides == strides
    assert contract.output_layout == "yolov3_nchw" and contract.input.color == "rgb"
    assert contract.input.size_wh is None and contract.input.default_size_wh == (96, 96)
    parity = result["parity"]
    assert parity["ok"] and len(parity["cases"]) == 2
    sizes = {c["input"] for c in parity["cases"]}
    assert sizes == {"2x3x96x96", "1x3x64x192"}
    for case in parity["cases"]:
        assert case["max_abs"] < 1e-3 and case["detections"]["matched"] > 0
        assert case["detections"]["min_iou"] > 0.999
    providers = parity["providers"]["by_provider"]
    assert "CPUExecutionProvider" in providers and providers["CPUExecutionProvider"]["ops"]["Conv"] > 0
    assert "OK" in result["report_text"]
    with OnnxModel(result["path"], expected_kind="yolo") as model:  # the runtime accepts it and serves it
        detector = YoloDetector(model, input_size=(128, 96), score_threshold=0.3)
        det = detector.detect(np.random.default_rng(0).integers(0, 255, (120, 200, 3), dtype=np.uint8))
        assert det.boxes_xyxy.shape[1] == 4 and (det.boxes_xyxy[:, [0, 2]] <= 200).all()
        # evaluation accepts the served detector too (random weights: AP is just a number in [0, 1])
        from models.datasets import make_synthetic_dataset
        from models.evaluate import evaluate_detector

        data = make_synthetic_dataset(tmp_path / "data", num_train=1, num_val=2, size=(96, 64), seed=0)
        for label in (tmp_path / "data" / "labels" / "val").glob("*.txt"):  # 3 colours -> this model's class 0
            label.write_text("".join("0" + line[1:] + "\n" for line in label.read_text().splitlines()))
        report = evaluate_detector(detector, tmp_path / "data" / "images" / "val")
        assert report["images"] == 2 and set(report["ap"]) <= {"a", "b"} and data.is_file()


def test_fixed_size_export_and_check_against_wrong_checkpoint(tmp_path):
    ckpt = _tiny(tmp_path)
    result = export_detector(ckpt, tmp_path / "fixed.onnx", img_size=64, dynamic_spatial=False)
    assert result["contract"].input.size_wh == (64, 64) and len(result["parity"]["cases"]) == 1
    other = _tiny(tmp_path, seed=1, name="other.pt")  # same anchors and classes, other weights
    with pytest.raises(ExportError, match="parity check failed"):
        check_detector(result["path"], other)
    assert check_detector(result["path"], ckpt).ok


def test_parity_helpers():
    a = [np.array([[1.0, 2.0]], np.float32)]
    assert raw_errors(a, [a[0] + 0.5]) == {"max_abs": 0.5, "max_rel": 0.25}
    with pytest.raises(ExportError, match="shape differs"):
        raw_errors(a, [np.zeros((2, 2), np.float32)])
    ref = (np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), np.array([0.9, 0.8]), np.array([0, 1]))
    got = (np.array([[0, 0, 10, 10.5], [20, 20, 30, 30]], float), np.array([0.9, 0.7]), np.array([0, 0]))
    m = match_detections(ref, got)
    assert m["matched"] == 1 and m["unmatched"] == 2 and m["min_iou"] == pytest.approx(10 / 10.5)
    assert Tolerance().max_unmatched == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_model_without_contract_is_refused_and_external_model_gets_one(tmp_path):
    torch.manual_seed(0)

    class External(torch.nn.Module):  # a YOLOv5-style head: (N, A, H, W, 5 + C) raw logits
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2 * 7, 3, stride=32, padding=1)

        def forward(self, x):
            y = self.conv(x)
            n, _, h, w = y.shape
            return y.view(n, 2, 7, h, w).permute(0, 1, 3, 4, 2)

    bare = tmp_path / "bare.onnx"
    torch.onnx.export(External(), (torch.zeros(1, 3, 64, 64),), str(bare), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["p5"])
    with pytest.raises(ModelError, match="has no 'rtv.contract' metadata"):
        OnnxModel(bare)
    wrapped = tmp_path / "wrapped.onnx"
    contract = attach_yolo_contract(bare, wrapped, anchors=[[[10, 13], [30, 40]]], strides=[32], classes=["a", "b"],
                                    layout="yolov5_nahwc", input_size_wh=(64, 64))
    assert contract.input.size_wh == (64, 64)
    with OnnxModel(wrapped, expected_kind="yolo") as model:
        det = YoloDetector(model, score_threshold=0.0).detect(np.full((64, 64, 3), 100, np.uint8))
        assert len(det) >= 1
