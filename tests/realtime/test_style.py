"""The style stage: pure steps (sizes, adaptation, stabiliser, blend), the stage on tiny ONNX style models,
fail-soft in the pipeline, style resolution errors, the shipped models when present."""

import json
import time
from pathlib import Path

import numpy as np
import pytest

from realtime.config import StyleConfig, load_config
from realtime.errors import ConfigError, ModelError
from realtime.pipeline import Pipeline
from realtime.runtime import RuntimeOptions
from realtime.zoo import ZOO_DIR
from realtime.style.stage import (StyleChoice, StyleTransfer, blend_strength, build_style_stage, change_weights,
                            next_style_width, open_style_model, resolve_styles, stabilise, style_size_wh)
from realtime.types import FramePacket


def style_onnx(path: Path, op: str = "invert", styles=("invert",), role: str = "student", bad_output=False,
               style_input: bool = False):
    """A real ONNX "style" model: invert (1 - x), or identity. ``bad_output`` returns a (N, 3, 1, 1) tensor;
    ``style_input`` adds a (unused) ``style_weights`` input declared in the contract, as the teacher has."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("stylized", TensorProto.FLOAT, None)
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    if bad_output:
        nodes = [helper.make_node("GlobalAveragePool", ["image"], ["stylized"])]
    elif op == "invert":
        nodes = [helper.make_node("Sub", ["one", "image"], ["stylized"])]
    else:
        nodes = [helper.make_node("Identity", ["image"], ["stylized"])]
    inputs = [x]
    if style_input:
        inputs.append(helper.make_tensor_value_info("style_weights", TensorProto.FLOAT, [len(styles)]))
    graph = helper.make_graph(nodes, "style", inputs, [y], initializer=[one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    contract = {"schema": 1, "kind": "style", "name": path.stem,
                "input": {"name": "image", "size_wh": None, "default_size_wh": [320, 240], "size_multiple": 8,
                          "color": "rgb", "scale": 1 / 255, "letterbox": False},
                "outputs": ["stylized"], "extra": {"role": role, "styles": list(styles)}}
    if style_input:
        contract["extra"].update({"style_input": "style_weights", "style_count": len(styles)})
    entry = model.metadata_props.add()
    entry.key, entry.value = "rtv.contract", json.dumps(contract)
    onnx.save(model, str(path))
    return path


def packet(frame, index=0):
    return FramePacket(index=index, t_capture=time.perf_counter(), t_source=0.0, frame_bgr=frame)


def test_style_size_keeps_aspect_and_multiple():
    assert style_size_wh((640, 480), 320, 8) == (320, 240)
    assert style_size_wh((1280, 720), 256, 8) == (256, 144)
    w, h = style_size_wh((641, 479), 333, 8)
    assert w % 8 == 0 and h % 8 == 0 and abs(w / h - 641 / 479) < 0.05
    assert style_size_wh((640, 480), 1, 8) == (8, 8)


def test_next_style_width_shrinks_grows_and_holds():
    # 15 FPS -> 66.7 ms per frame. Style takes 80 ms, the rest 10 ms: must shrink (at most x0.7)
    w = next_style_width(320, 80.0, 10.0, 15.0, 128, 640)
    assert 224 <= w < 320 and w % 8 == 0
    # style 10 ms, rest 10 ms: room to grow (at most x1.25)
    w = next_style_width(320, 10.0, 10.0, 15.0, 128, 640)
    assert 320 < w <= 400
    # about right: stays (hysteresis)
    assert next_style_width(320, 50.0, 10.0, 15.0, 128, 640) == 320
    # clamps at both ends; the rest alone over budget -> down towards min_width
    assert next_style_width(640, 5.0, 5.0, 15.0, 128, 640) == 640
    assert next_style_width(136, 300.0, 10.0, 15.0, 128, 640) == 128
    assert next_style_width(320, 20.0, 100.0, 15.0, 128, 640) < 320


def test_change_weights_and_stabilise():
    still = np.full((20, 20), 100.0, np.float32)
    moved = still.copy()
    moved[:, 10:] = 200.0
    w = change_weights(moved, still, threshold=12.0, strength=0.6)
    assert w.shape == (20, 20, 1)
    assert w[:, :5].min() == pytest.approx(0.6)   # unchanged pixels: full weight
    assert w[:, 14:].max() == 0.0                 # big change: none
    a = np.zeros((20, 20, 3), np.float32)
    b = np.full((20, 20, 3), 100.0, np.float32)
    out = stabilise(a, b, w)
    assert out[0, 0, 0] == pytest.approx(60.0) and out[0, 19, 0] == 0.0


def test_blend_strength():
    styled = np.full((4, 4, 3), 200, np.uint8)
    frame = np.zeros((4, 4, 3), np.uint8)
    assert blend_strength(styled, frame, 1.0) is styled
    assert blend_strength(styled, frame, 0.25)[0, 0, 0] == 50
    assert np.array_equal(blend_strength(styled, frame, 0.0), frame)


def test_stage_paints_at_frame_size_without_touching_the_frame(tmp_path, frame_factory):
    model = open_style_model(style_onnx(tmp_path / "style_invert.onnx"), RuntimeOptions(providers="cpu"))
    stage = StyleTransfer([StyleChoice("invert", model)], adaptive=False, stabilise=False, width=160)
    frame = frame_factory(3, (320, 240))
    before = frame.copy()
    out = stage(packet(frame))
    assert np.array_equal(frame, before)
    assert out.styled_bgr.shape == frame.shape and out.styled_bgr.dtype == np.uint8
    # 1 - x at half size, scaled back: close to 255 - frame away from sharp edges
    assert np.abs(out.styled_bgr.astype(int) - (255 - frame.astype(int))).mean() < 8
    assert out.style == {"name": "invert", "width": 160, "height": 120}
    stage.close()
    stage.close()


def test_strength_zero_returns_the_original(tmp_path, frame_factory):
    model = open_style_model(style_onnx(tmp_path / "style_invert.onnx"), RuntimeOptions(providers="cpu"))
    stage = StyleTransfer([StyleChoice("invert", model)], strength=0.0, adaptive=False)
    frame = frame_factory(1, (320, 240))
    assert np.array_equal(stage(packet(frame)).styled_bgr, frame)
    stage.close()


def test_cycle_moves_between_styles(tmp_path, frame_factory):
    a = open_style_model(style_onnx(tmp_path / "style_a.onnx", styles=("a",)), RuntimeOptions(providers="cpu"))
    b = open_style_model(style_onnx(tmp_path / "style_b.onnx", op="identity", styles=("b",)),
                         RuntimeOptions(providers="cpu"))
    stage = StyleTransfer([StyleChoice("a", a), StyleChoice("b", b)], adaptive=False, stabilise=False, width=320)
    frame = frame_factory(2, (320, 240))
    first = stage(packet(frame)).styled_bgr
    assert stage.cycle() == "b"
    second = stage(packet(frame)).styled_bgr
    assert np.abs(second.astype(int) - frame.astype(int)).max() <= 1   # identity at full size
    assert np.abs(first.astype(int) - (255 - frame.astype(int))).max() <= 1
    assert stage.cycle() == "a"
    stage.close()


def test_stabiliser_reduces_flicker_on_a_noisy_static_scene(tmp_path, frame_factory):
    from realtime.bench.style import flicker

    rng = np.random.default_rng(0)
    base = frame_factory(0, (320, 240)).astype(np.float32)
    frames = [np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8) for _ in range(8)]
    model = open_style_model(style_onnx(tmp_path / "style_id.onnx", op="identity", styles=("id",)),
                             RuntimeOptions(providers="cpu"))
    results = {}
    for on in (False, True):
        stage = StyleTransfer([StyleChoice("id", model)], adaptive=False, stabilise=on, width=320)
        results[on] = flicker([stage(packet(f, i)).styled_bgr for i, f in enumerate(frames)])
    assert results[True] < 0.6 * results[False]
    model.close()


def test_adaptive_width_follows_the_budget(tmp_path, frame_factory):
    model = open_style_model(style_onnx(tmp_path / "style_invert.onnx"), RuntimeOptions(providers="cpu"))
    stage = StyleTransfer([StyleChoice("invert", model)], target_fps=15.0, width=320, min_width=128,
                          max_width=640, adapt_every=1, stabilise=False)
    frame = frame_factory(0, (640, 480))
    for _ in range(8):   # other stages take 100 ms per frame (> 66.7 ms at 15 FPS): down to the minimum width
        time.sleep(0.1)
        stage(FramePacket(index=0, t_capture=time.perf_counter() - 0.1, t_source=0.0, frame_bgr=frame))
    assert stage.width == 128
    for _ in range(30):  # fresh frames, nothing else running, a cheap model: back up to the maximum
        stage(packet(frame))
    assert stage.width == 640
    stage.close()


def test_a_queued_file_frame_does_not_count_as_work(tmp_path, frame_factory):
    # frames that waited 1 s in a bounded file queue, processed back to back: the wait is not a cost of the frame
    model = open_style_model(style_onnx(tmp_path / "style_invert.onnx"), RuntimeOptions(providers="cpu"))
    stage = StyleTransfer([StyleChoice("invert", model)], target_fps=15.0, width=320, min_width=128,
                          max_width=640, adapt_every=1, stabilise=False)
    frame = frame_factory(0, (640, 480))
    for _ in range(20):
        stage(FramePacket(index=0, t_capture=time.perf_counter() - 1.0, t_source=0.0, frame_bgr=frame))
    assert stage.width >= 320
    stage.close()


def test_failing_style_stage_turns_itself_off(tmp_path, frame_factory, caplog):
    model = open_style_model(style_onnx(tmp_path / "style_bad.onnx", styles=("bad",), bad_output=True),
                             RuntimeOptions(providers="cpu"))
    stage = StyleTransfer([StyleChoice("bad", model)], adaptive=False)
    with Pipeline([stage]) as pipeline:
        out = pipeline(packet(frame_factory(0, (160, 120))))
        assert out.styled_bgr is None
        assert pipeline.names == ()
        assert "style" in pipeline.disabled[0] and "output has shape" in pipeline.disabled[0]
        pipeline(packet(frame_factory(1, (160, 120))))   # the run goes on


def test_resolve_styles_and_errors(tmp_path):
    opts = RuntimeOptions(providers="cpu")
    student = open_style_model(style_onnx(tmp_path / "style_s.onnx", styles=("teacher26_19",)), opts)
    teacher = open_style_model(style_onnx(tmp_path / "style_t.onnx", styles=("teacher26_00", "teacher26_19"),
                                          role="teacher", style_input=True), opts)
    assert [c.name for c in resolve_styles((), [student, teacher], quality=False)] == ["teacher26_19"]
    quality = resolve_styles((), [student, teacher], quality=True)
    assert [(c.name, c.index) for c in quality] == [("teacher26_19", 1)]
    painted = StyleTransfer(quality, adaptive=False)(packet(np.zeros((48, 64, 3), np.uint8))).styled_bgr
    assert painted.shape == (48, 64, 3) and painted.min() == 255   # the invert graph, fed its style weights
    with pytest.raises(ConfigError, match="unknown style 'nope'.*known: teacher26_19"):
        resolve_styles(("nope",), [student, teacher], quality=False)
    with pytest.raises(ConfigError, match="no model for quality mode"):
        resolve_styles((), [student], quality=True)


def test_model_contract_errors(tmp_path, onnx_factory):
    make_tiny_onnx, tiny_contract_json = onnx_factory
    embedder = make_tiny_onnx(tmp_path / "style_x.onnx", tiny_contract_json())
    with pytest.raises(ModelError, match="expected a 'style' model"):
        open_style_model(embedder, RuntimeOptions(providers="cpu"))
    teacher = style_onnx(tmp_path / "style_t.onnx", role="teacher")   # declares no style input
    with pytest.raises(ModelError, match="style input"):
        open_style_model(teacher, RuntimeOptions(providers="cpu"))


def test_build_style_stage_from_config(tmp_path):
    with pytest.raises(ModelError, match="no style_\\*.onnx"):
        build_style_stage(StyleConfig(enabled=True, model_dir=str(tmp_path)), RuntimeOptions(providers="cpu"),
                          ZOO_DIR)
    style_onnx(tmp_path / "style_a.onnx", styles=("a",))
    stage = build_style_stage(StyleConfig(enabled=True, model_dir=str(tmp_path)), RuntimeOptions(providers="cpu"),
                              ZOO_DIR)
    assert [c.name for c in stage.styles] == ["a"]
    stage.close()
    with pytest.raises(ConfigError, match="strength"):
        build_style_stage(StyleConfig(enabled=True, model_dir=str(tmp_path), strength=2.0),
                          RuntimeOptions(providers="cpu"), ZOO_DIR)


def test_config_section_and_pipeline_order(tmp_path):
    style_onnx(tmp_path / "style_a.onnx", styles=("a",))
    config = load_config(None, ["style.enabled=true", f"style.model_dir={tmp_path}", "style.styles=[a]",
                                "faces.recognize=false", "detector.enabled=false"])
    assert config.style.styles == ("a",)
    from realtime.build import build_pipeline

    if not (ZOO_DIR / "centerface.onnx").is_file():
        pytest.skip("centerface.onnx is not in the zoo")
    with build_pipeline(config) as pipeline:
        assert pipeline.names[-1] == "style"
    with pytest.raises(ConfigError, match="style.strenght"):
        load_config(None, ["style.strenght=1"])


SHIPPED = sorted(p for p in ZOO_DIR.glob("style_*.onnx") if p.name != "style_teacher26.onnx")


@pytest.mark.skipif(not SHIPPED, reason="no student style model in realtime/zoo")
def test_shipped_students_run_at_320x240(frame_factory):
    for path in SHIPPED:
        model = open_style_model(path, RuntimeOptions(providers="cpu"))
        stage = StyleTransfer([StyleChoice(model.contract.extra["styles"][0], model)], adaptive=False, width=320)
        out = stage(packet(frame_factory(0, (640, 480)))).styled_bgr
        assert out.shape == (480, 640, 3)
        assert out.std() > 5
        stage.close()
