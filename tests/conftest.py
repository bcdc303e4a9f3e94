"""Shared fixtures: synthetic frames and videos, a tiny ONNX model with a contract, the shared reference folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def pytest_collection_modifyitems(config, items):
    """Skip @pytest.mark.gpu tests unless onnxruntime offers the CUDA provider."""
    try:
        import onnxruntime as ort

        has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs onnxruntime's CUDAExecutionProvider (onnxruntime-gpu and a GPU)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def make_frame(index: int, size_wh: tuple[int, int] = (160, 120)) -> np.ndarray:
    """A deterministic uint8 BGR frame whose content encodes ``index`` (a moving square on a gradient)."""
    w, h = size_wh
    frame = np.zeros((h, w, 3), np.uint8)
    frame[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    frame[..., 1] = (index * 7) % 256
    x = (index * 5) % max(1, w - 20)
    frame[10:30, x:x + 20] = 255
    return frame


def write_video(path: Path, n_frames: int, size_wh: tuple[int, int] = (160, 120), fps: float = 25.0) -> Path:
    """An H.264 MP4 of ``n_frames`` synthetic frames, written through the project's own writer."""
    from realtime.io.sinks import Mp4Writer

    with Mp4Writer(path, fps=fps, crf=18, preset="ultrafast") as writer:
        for i in range(n_frames):
            writer.write(make_frame(i, size_wh))
    return path


@pytest.fixture
def video_file(tmp_path: Path) -> Path:
    return write_video(tmp_path / "clip.mp4", 24)


def make_tiny_onnx(path: Path, contract_json: str | None, input_name: str = "input", channels: int = 3,
                   output_name: str = "embedding") -> Path:
    """A real ONNX model (GlobalAveragePool + Flatten): (N, C, H, W) -> (N, C), optional contract metadata."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", channels, "H", "W"])
    y = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", channels])
    nodes = [helper.make_node("GlobalAveragePool", [input_name], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], [output_name], axis=1)]
    graph = helper.make_graph(nodes, "tiny", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if contract_json is not None:
        entry = model.metadata_props.add()
        entry.key = "rtv.contract"
        entry.value = contract_json
    onnx.save(model, str(path))
    return path


def tiny_contract_json(**overrides) -> str:
    import json

    data = {"schema": 1, "kind": "face_embedder", "name": "tiny",
            "input": {"name": "input", "size_wh": None, "default_size_wh": [8, 8], "color": "rgb",
                      "scale": 1.0, "mean": [0, 0, 0], "std": [1, 1, 1]},
            "outputs": ["embedding"], "embedding_size": 3}
    data.update(overrides)
    return json.dumps(data)


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    return make_tiny_onnx(tmp_path / "tiny.onnx", tiny_contract_json())


@pytest.fixture
def frame_factory():
    return make_frame


@pytest.fixture
def video_factory():
    return write_video


@pytest.fixture
def onnx_factory():
    return make_tiny_onnx, tiny_contract_json
