"""FaceEmbedder on the shipped dlib_resnet128.onnx: dlib parity, batching, identity separation, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from realtime.errors import ModelError
from realtime.face.align import TEMPLATE5_150
from realtime.face.embedder import FaceEmbedder
from realtime.runtime import OnnxModel, RuntimeOptions

REPO = Path(__file__).resolve().parents[3]
ZOO_MODEL = REPO / "realtime" / "zoo" / "dlib_resnet128.onnx"
REFERENCE = REPO / "tests" / "data" / "reference" / "dlib_face_reference.npz"


@pytest.fixture(scope="module")
def embedder():
    if not ZOO_MODEL.is_file():
        pytest.skip(f"{ZOO_MODEL} is absent; make it with 'python -m export.dlib_embedder'")
    with FaceEmbedder(OnnxModel(ZOO_MODEL, RuntimeOptions(providers="cpu", intra_op_threads=1),
                                expected_kind="face_embedder")) as emb:
        yield emb


@pytest.fixture(scope="module")
def reference():
    if not REFERENCE.is_file():
        pytest.skip(f"dlib reference data not found at {REFERENCE} (tests/data/reference)")
    with np.load(REFERENCE, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _bgr(chips_rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(chips_rgb[..., ::-1])


def test_contract(embedder):
    contract = embedder.model.contract
    assert contract.name == "dlib_resnet_v1" and contract.embedding_size == 128
    assert contract.input.color == "rgb" and contract.input.size_wh == (150, 150)
    assert contract.input.std == (256.0, 256.0, 256.0)
    assert embedder.match_threshold == 0.6 and embedder.distance == "euclidean"
    np.testing.assert_allclose(embedder.template5, TEMPLATE5_150, atol=1e-3)
    assert ZOO_MODEL.stat().st_size < 25 * 2 ** 20


@pytest.mark.parametrize("chips_key, desc_key", [("chips", "descriptors"), ("noface_chips", "noface_descriptors")])
def test_reproduces_dlib_descriptors(embedder, reference, chips_key, desc_key):
    got = embedder.embed(_bgr(reference[chips_key]))
    assert got.dtype == np.float32 and got.shape == reference[desc_key].shape
    distances = np.linalg.norm(got - reference[desc_key], axis=1)
    assert distances.max() < 0.01, f"worst chip {int(distances.argmax())}: {distances.max():.4g}"


def test_batching_and_empty(embedder, reference):
    chips = _bgr(reference["chips"][:3])
    batch = embedder.embed(chips)
    single = np.concatenate([embedder.embed(chips[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    empty = embedder.embed(np.zeros((0, 150, 150, 3), np.uint8))
    assert empty.shape == (0, 128) and empty.dtype == np.float32


def test_mirror_is_same_person_and_other_face_is_not(embedder, reference):
    names = list(reference["names"])
    # Chip 0 is the astronaut's face (v0); the camera image's only chip is the cameraman.
    assert names[0] == "astronaut/v0"
    astronaut = _bgr(reference["chips"][0])
    cameraman = _bgr(reference["chips"][names.index("camera/v3")])
    a, mirrored, other = embedder.embed(np.stack([astronaut, astronaut[:, ::-1], cameraman]))
    same = float(np.linalg.norm(a - mirrored))
    different = float(np.linalg.norm(a - other))
    assert same < 0.6 < different
    assert same < different / 2


def test_bad_chips_raise(embedder):
    with pytest.raises(ModelError, match=r"\(N, 150, 150, 3\)"):
        embedder.embed(np.zeros((1, 112, 112, 3), np.uint8))
    with pytest.raises(ModelError, match="uint8"):
        embedder.embed(np.zeros((1, 150, 150, 3), np.float32))


def test_template_fallback_and_wrong_kind(tmp_path, onnx_factory):
    make_tiny_onnx, tiny_contract_json = onnx_factory
    path = make_tiny_onnx(tmp_path / "tiny.onnx", tiny_contract_json())
    with FaceEmbedder(OnnxModel(path)) as tiny:
        np.testing.assert_array_equal(tiny.template5, TEMPLATE5_150)
        out = tiny.embed(np.full((2, 8, 8, 3), 3, np.uint8))
        np.testing.assert_allclose(out, 3.0)
    bad = make_tiny_onnx(tmp_path / "bad.onnx", tiny_contract_json(extra={"template5_150": [[1, 2]]}))
    with pytest.raises(ModelError, match="template5_150"):
        FaceEmbedder(OnnxModel(bad))
    other = make_tiny_onnx(tmp_path / "det.onnx", tiny_contract_json(kind="style"))
    with pytest.raises(ModelError, match="face_embedder"):
        FaceEmbedder(OnnxModel(other))
