"""Provider policy (CPU / OpenVINO plugin / CUDA), the plugin's one registration, the fallback without it, and the
precision choice from measured records."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from realtime import runtime as rt
from realtime.config import RuntimeConfig
from realtime.cpu import CpuInfo, isa_class, parse_cpuinfo
from realtime.errors import ConfigError, ProviderError
from realtime.precision import choose_precision

INTEL_AMX = CpuInfo("Intel Xeon", "GenuineIntel", "x86_64", frozenset({"avx2", "avx512f", "avx512_vnni",
                                                                      "amx_bf16", "amx_int8", "amx_tile"}))
AMD_AVX2 = CpuInfo("AMD EPYC", "AuthenticAMD", "x86_64", frozenset({"avx2", "fma"}))


@pytest.fixture(autouse=True)
def fresh_plugin_state():
    rt.forget_openvino_plugin()
    yield
    rt.forget_openvino_plugin()


@dataclass
class FakeDevice:
    type: str = "OrtHardwareDeviceType.CPU"


@dataclass
class FakeEpDevice:
    ep_name: str
    device: FakeDevice = field(default_factory=FakeDevice)
    ep_metadata: dict = field(default_factory=dict)


class FakeOrt:
    """Just the onnxruntime calls the provider policy makes."""

    def __init__(self, providers=("CPUExecutionProvider",), ov_device=True):
        self.providers = list(providers)
        self.ov_device = ov_device
        self.registered: list[tuple[str, str]] = []

    def get_available_providers(self):
        return list(self.providers)

    def register_execution_provider_library(self, name, path):
        self.registered.append((name, path))

    def get_ep_devices(self):
        devices = [FakeEpDevice("CPUExecutionProvider")]
        if self.registered and self.ov_device:
            devices.append(FakeEpDevice("OpenVINOExecutionProvider", ep_metadata={"ov_device": "GPU"}))
            devices.append(FakeEpDevice("OpenVINOExecutionProvider", ep_metadata={"ov_device": "CPU"}))
        return devices


class FakePlugin:
    @staticmethod
    def get_ep_name():
        return "OpenVINOExecutionProvider"

    @staticmethod
    def get_library_path():
        return "/fake/libopenvino_plugin.so"


@pytest.fixture
def fake_plugin(monkeypatch):
    monkeypatch.setitem(sys.modules, rt.OPENVINO_PLUGIN, FakePlugin)


@pytest.fixture
def no_plugin(monkeypatch):
    monkeypatch.setitem(sys.modules, rt.OPENVINO_PLUGIN, None)  # import raises ImportError


def test_auto_prefers_cuda_then_openvino_on_wide_cpus_then_cpu(fake_plugin):
    def resolve(policy, ort, cpu):
        rt.forget_openvino_plugin()  # one fake onnxruntime per case (the real one registers once per process)
        return rt.resolve_provider(policy, ort, cpu)

    assert resolve("auto", FakeOrt(["CUDAExecutionProvider", "CPUExecutionProvider"]), INTEL_AMX).name == "cuda"
    assert resolve("auto", FakeOrt(), INTEL_AMX).name == "openvino"
    decision = resolve("auto", FakeOrt(), AMD_AVX2)
    assert decision.name == "cpu" and "avx2" in decision.reason
    decision = resolve("auto", FakeOrt(ov_device=False), INTEL_AMX)
    assert decision.name == "cpu" and "no device" in decision.reason
    assert resolve("openvino", FakeOrt(), AMD_AVX2).name == "openvino"  # forced
    with pytest.raises(ProviderError, match="no device"):
        resolve("openvino", FakeOrt(ov_device=False), INTEL_AMX)
    assert resolve("cpu", FakeOrt(), INTEL_AMX).name == "cpu"


def test_plugin_registers_once_per_process(fake_plugin):
    ort = FakeOrt()
    for _ in range(3):
        assert rt.register_openvino_plugin(ort) is None
        rt.openvino_devices(ort)
        rt.resolve_provider("auto", ort, INTEL_AMX)
    assert ort.registered == [("OpenVINOExecutionProvider", "/fake/libopenvino_plugin.so")]
    assert [d.ep_metadata["ov_device"] for d in rt.openvino_devices(ort)] == ["CPU"]


def test_without_the_plugin_auto_falls_back_and_openvino_says_how_to_install(no_plugin, tiny_model):
    ort = FakeOrt()
    decision = rt.resolve_provider("auto", ort, INTEL_AMX)
    assert decision.name == "cpu" and "not installed" in decision.reason
    with pytest.raises(ProviderError, match="pip install onnxruntime-ep-openvino"):
        rt.resolve_provider("openvino", ort, INTEL_AMX)
    # a real session with the plugin hidden: auto runs on the CPU provider
    with rt.OnnxModel(tiny_model, rt.RuntimeOptions(providers="auto")) as model:
        assert model.providers[0] == "CPUExecutionProvider" and model.provider == "cpu"
        (out,) = model.run(np.ones((1, 3, 8, 8), np.float32))
    assert out.shape == (1, 3)


def test_openvino_settings_go_through_load_config(monkeypatch, fake_plugin, tiny_model):
    """The session gets the OpenVINO device through add_provider_for_devices, its hint and threads as JSON."""
    import onnxruntime as ort

    calls = []
    fake = FakeOrt()
    monkeypatch.setattr(rt, "resolve_provider", lambda policy, ort=None, cpu=None: rt.ProviderDecision(
        "openvino", "test") if policy == "openvino" else rt.ProviderDecision("cpu", "test"))
    monkeypatch.setattr(rt, "openvino_devices", lambda ort=None: ["ov-cpu-device"])
    monkeypatch.setattr(ort.SessionOptions, "add_provider_for_devices",
                        lambda self, devices, options: calls.append((devices, options)), raising=False)
    session = rt.open_session(tiny_model, rt.RuntimeOptions(providers="openvino", precision_hint="bf16",
                                                            intra_op_threads=2))
    assert session is not None and fake.registered == []
    (devices, options), = calls
    assert devices == ["ov-cpu-device"]
    assert json.loads(options["load_config"]) == {"CPU": {"INFERENCE_PRECISION_HINT": "bf16",
                                                          "INFERENCE_NUM_THREADS": "2"}}


def test_real_plugin_answer_is_consistent_on_this_machine(tiny_model):
    """Whatever this machine has (plugin or not, a device for this CPU or not), auto opens a working session on
    the provider it names."""
    decision = rt.resolve_provider("auto")
    with rt.OnnxModel(tiny_model, rt.RuntimeOptions(providers="auto")) as model:
        assert model.provider == decision.name
        assert model.providers[0] == {"cpu": "CPUExecutionProvider", "openvino": "OpenVINOExecutionProvider",
                                      "cuda": "CUDAExecutionProvider"}[decision.name]


def test_config_accepts_the_new_policies():
    from realtime.config import load_config

    config = load_config(None, ["runtime.providers=openvino", "runtime.precision=bf16"])
    assert (config.runtime.providers, config.runtime.precision) == ("openvino", "bf16")
    with pytest.raises(ConfigError):
        load_config(None, ["runtime.precision=fp8"])


def test_cpuinfo_parsing_and_classes():
    info = parse_cpuinfo("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx avx2"
                         "\n\nprocessor\t: 1\nmodel name\t: other\n", machine="x86_64")
    assert (info.model, info.vendor, info.isa, info.has_vnni) == ("AMD EPYC", "AuthenticAMD", "avx2", False)
    assert isa_class({"avx2", "avx_vnni"}) == "avx_vnni" and isa_class(set()) == "baseline"
    assert INTEL_AMX.isa == "amx" and INTEL_AMX.has_bf16 and INTEL_AMX.has_vnni


def _manifest(*records):
    return {"yolov3_tiny_coco.onnx": {"precision": {"records": list(records)}},
            "dlib_resnet128.onnx": {"precision": {"records": list(records)}}}


def _zoo(tmp_path: Path) -> Path:
    for name in ("yolov3_tiny_coco.onnx", "yolov3_tiny_coco_int8.onnx", "dlib_resnet128.onnx",
                 "dlib_resnet128_int8.onnx"):
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_auto_precision_takes_the_fastest_passing_record_for_this_provider_and_cpu_class(tmp_path):
    zoo = _zoo(tmp_path)
    failing_int8 = {"provider": "cpu", "precision": "int8", "isa": "avx2", "pass": False, "ms": 10}
    choice = choose_precision("detector", "cpu", "auto", AMD_AVX2, _manifest(failing_int8), zoo)
    assert (choice.precision, choice.file, choice.hint) == ("float", "yolov3_tiny_coco.onnx", "")
    passing_elsewhere = {"provider": "cpu", "precision": "int8", "isa": "amx", "pass": True, "ms": 10}
    assert choose_precision("detector", "cpu", "auto", AMD_AVX2, _manifest(passing_elsewhere), zoo).precision == \
        "float"
    assert choose_precision("detector", "cpu", "auto", INTEL_AMX, _manifest(passing_elsewhere), zoo).file == \
        "yolov3_tiny_coco_int8.onnx"
    bf16 = {"provider": "openvino", "precision": "bf16", "isa": "amx", "pass": True, "ms": 6}
    int8_ov = {"provider": "openvino", "precision": "int8", "isa": "amx", "pass": True, "ms": 9}
    choice = choose_precision("detector", "openvino", "auto", INTEL_AMX, _manifest(bf16, int8_ov), zoo)
    assert (choice.precision, choice.file, choice.hint) == ("bf16", "yolov3_tiny_coco.onnx", "bf16")
    # the embedder's file never changes under auto (galleries are keyed by its hash)
    emb_int8 = {"provider": "cpu", "precision": "int8", "isa": "amx", "pass": True, "ms": 1}
    assert choose_precision("face_embedder", "cpu", "auto", INTEL_AMX, _manifest(emb_int8), zoo).file == \
        "dlib_resnet128.onnx"


def test_explicit_precision_is_honoured_or_refused(tmp_path):
    zoo = _zoo(tmp_path)
    assert choose_precision("detector", "cpu", "int8", AMD_AVX2, {}, zoo).file == "yolov3_tiny_coco_int8.onnx"
    with pytest.raises(ConfigError, match="OpenVINO"):
        choose_precision("detector", "cpu", "bf16", AMD_AVX2, {}, zoo)
    assert choose_precision("detector", "openvino", "float", INTEL_AMX, {}, zoo).hint == "f32"
    configured = choose_precision("detector", "openvino", "bf16", INTEL_AMX, {}, zoo, configured_file=True)
    assert (configured.file, configured.hint) == (None, "bf16")


def test_default_detector_on_this_machine_passes_its_record():
    """The file auto picks for the detector here is float or has a passing record for this CPU class."""
    from realtime.build import precision_choice
    from realtime.config import ZOO_DIR
    from realtime.cpu import cpu_info
    from realtime.precision import manifest_for, precision_records

    choice = precision_choice("detector", RuntimeConfig())
    if choice.precision != "float":
        assert any(r["precision"] == choice.precision and r["isa"] == cpu_info().isa and r["pass"]
                   for r in precision_records(manifest_for(ZOO_DIR), "yolov3_tiny_coco.onnx"))


def test_doctor_names_the_provider_and_each_models_precision(no_plugin, capsys):
    from realtime.cli.main import main

    assert main(["doctor", "--no-camera", "--json"]) == 0
    acc = json.loads(capsys.readouterr().out)["acceleration"]
    assert acc["provider"]["name"] == "cpu" and "not installed" in acc["provider"]["reason"]
    assert acc["openvino_plugin"].startswith("the onnxruntime-ep-openvino plugin is not installed")
    assert {m["precision"] for m in acc["models"].values()} <= {"float", "int8"}
    assert acc["models"]["detector"]["file"] in ("yolov3_tiny_coco.onnx", "yolov3_tiny_coco_int8.onnx")
    assert acc["cpu"]["isa"] in ("amx", "avx512_vnni", "avx_vnni", "avx512", "avx2", "baseline")
    assert main(["doctor", "--no-camera"]) == 0
    text = capsys.readouterr().out
    assert "provider     cpu: the onnxruntime-ep-openvino plugin is not installed" in text
