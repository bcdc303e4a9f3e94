import numpy as np
import pytest

from realtime.errors import ModelError, ProviderError
from realtime.runtime import OnnxModel, RuntimeOptions, requested_providers


def test_provider_policy():
    cpu_only = ["CPUExecutionProvider"]
    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert requested_providers("auto", cpu_only) == ["CPUExecutionProvider"]
    assert requested_providers("auto", both) == both
    assert requested_providers("cpu", both) == ["CPUExecutionProvider"]
    assert requested_providers("cuda", both) == both
    with pytest.raises(ProviderError, match="onnxruntime-gpu"):
        requested_providers("require-gpu", cpu_only)
    with pytest.raises(ProviderError, match="not one of"):
        requested_providers("tpu", both)


def test_session_runs_and_reports(tiny_model):
    with OnnxModel(tiny_model, RuntimeOptions(providers="cpu"), expected_kind="face_embedder") as model:
        assert model.providers == ("CPUExecutionProvider",)
        assert model.contract.embedding_size == 3
        x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        (out,) = model.run(x)
    np.testing.assert_allclose(out, x.mean(axis=(2, 3)), rtol=1e-5)


def test_require_gpu_fails_loudly_on_cpu_build(tiny_model):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ProviderError, match="CUDAExecutionProvider"):
        OnnxModel(tiny_model, RuntimeOptions(providers="require-gpu"))


def test_missing_and_not_onnx(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        OnnxModel(tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a model")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        OnnxModel(bad)


def test_model_without_contract_is_refused(tmp_path, onnx_factory):
    make, _ = onnx_factory
    path = make(tmp_path / "plain.onnx", None)
    with pytest.raises(ModelError, match="rtv.contract"):
        OnnxModel(path)


@pytest.mark.parametrize("overrides, match", [
    ({"input": {"name": "images", "default_size_wh": [8, 8]}}, "not a graph input"),
    ({"outputs": ["boxes"]}, "not graph outputs"),
    ({"kind": "banana"}, "kind"),
    ({"embedding_size": None}, "embedding_size"),
    ({"input": {"name": "input"}}, "size_wh"),
    ({"input": {"name": "input", "default_size_wh": [8, 8], "color": "gbr"}}, "input.color"),
])
def test_contract_mismatch_is_refused(tmp_path, onnx_factory, overrides, match):
    make, contract = onnx_factory
    path = make(tmp_path / "m.onnx", contract(**overrides))
    with pytest.raises(ModelError, match=match):
        OnnxModel(path)


def test_wrong_kind(tiny_model):
    with pytest.raises(ModelError, match="expected a 'yolo' model"):
        OnnxModel(tiny_model, expected_kind="yolo")


@pytest.mark.gpu
def test_require_gpu_runs_on_cuda(tiny_model):
    with OnnxModel(tiny_model, RuntimeOptions(providers="require-gpu")) as model:
        assert model.providers[0] == "CUDAExecutionProvider"
        x = np.ones((1, 3, 8, 8), np.float32)
        np.testing.assert_allclose(model.run(x)[0], np.ones((1, 3)), rtol=1e-6)
