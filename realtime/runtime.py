"""ONNX Runtime sessions with an explicit provider policy and the model contract read from metadata."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from realtime.contract import CONTRACT_KEY, ModelContract, shape_disagreement
from realtime.errors import ModelError, ProviderError

log = logging.getLogger(__name__)

PROVIDER_POLICIES = ("auto", "cpu", "openvino", "cuda", "require-gpu")
_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"
_OPENVINO = "OpenVINOExecutionProvider"
OPENVINO_PLUGIN = "onnxruntime_ep_openvino"
# CPU classes on which the OpenVINO provider is chosen by ``auto`` (wide vector or matrix units); elsewhere
# ``providers: openvino`` still forces it.
OPENVINO_AUTO_ISA = frozenset({"amx", "avx512_vnni", "avx512", "avx_vnni"})


@dataclass(frozen=True)
class RuntimeOptions:
    """How sessions are made. ``intra_op_threads`` 0 lets ONNX Runtime pick (one per core); ``allow_spinning``
    False stops idle pool threads from spinning (when sessions run beside other work on the same cores)."""

    providers: str = "auto"
    precision_hint: str = ""  # OpenVINO's INFERENCE_PRECISION_HINT ("", "f32", "bf16"); ignored off OpenVINO
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    graph_optimization: str = "all"
    allow_spinning: bool = True


def import_onnxruntime():
    """The onnxruntime module, or a :class:`ModelError` that says how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelError("onnxruntime is not installed: pip install -e '.[cpu]' (or '.[gpu]' for CUDA, never "
                         "both)") from exc
    return onnxruntime


@dataclass(frozen=True)
class ProviderDecision:
    """The provider a policy resolves to on this machine: ``name`` "cpu", "openvino" or "cuda"; ``reason``: why."""

    name: str
    reason: str


_plugin_lock = threading.Lock()
_plugin_state: dict[str, str | None] = {}


def register_openvino_plugin(ort=None) -> str | None:
    """Register the ``onnxruntime-ep-openvino`` plugin with ONNX Runtime once per process (later calls return the
    first answer). Returns None when registered, else why not (plugin not installed, registration failed)."""
    with _plugin_lock:
        if "result" in _plugin_state:
            return _plugin_state["result"]
        ort = ort or import_onnxruntime()
        try:
            import importlib

            plugin = importlib.import_module(OPENVINO_PLUGIN)
        except ImportError:
            result: str | None = "the onnxruntime-ep-openvino plugin is not installed"
        else:
            try:
                ort.register_execution_provider_library(plugin.get_ep_name(), plugin.get_library_path())
                result = None
            except Exception as exc:  # onnxruntime raises its own untyped errors
                result = f"the OpenVINO plugin did not register ({type(exc).__name__}: {exc})"
        _plugin_state["result"] = result
        return result


def forget_openvino_plugin() -> None:
    """Tests only: forget the registration answer (ONNX Runtime keeps a registered library for the process)."""
    with _plugin_lock:
        _plugin_state.clear()


def openvino_devices(ort=None) -> list:
    """The OpenVINO provider's CPU devices ONNX Runtime offers here (empty without the plugin, or where the plugin
    offers no device for this CPU)."""
    ort = ort or import_onnxruntime()
    if register_openvino_plugin(ort) is not None:
        return []
    return [d for d in ort.get_ep_devices() if d.ep_name == _OPENVINO and d.ep_metadata.get("ov_device") == "CPU"]


def resolve_provider(policy: str, ort=None, cpu=None) -> ProviderDecision:
    """What ``runtime.providers`` means on this machine. ``auto``: CUDA when this onnxruntime offers it, else
    OpenVINO when its plugin offers this CPU and the CPU has wide vector or matrix units (AVX-512, VNNI, AMX),
    else the CPU provider. ``cpu``/``openvino``/``cuda``/``require-gpu`` force one and raise
    :class:`ProviderError` when it is not there."""
    from realtime.cpu import cpu_info

    if policy not in PROVIDER_POLICIES:
        raise ProviderError(f"providers policy {policy!r} is not one of {', '.join(PROVIDER_POLICIES)}")
    if policy == "cpu":
        return ProviderDecision("cpu", "as configured")
    ort = ort or import_onnxruntime()
    available = ort.get_available_providers()
    if policy in ("cuda", "require-gpu"):
        requested_providers(policy, available)  # raises when CUDA is missing
        return ProviderDecision("cuda", "as configured")
    if policy == "openvino":
        missing = register_openvino_plugin(ort)
        if missing is None and not openvino_devices(ort):
            missing = "the OpenVINO plugin offers no device for this CPU"
        if missing:
            how = ("pip install onnxruntime-ep-openvino (x86-64 Linux/Windows) or use providers=auto"
                   if "not installed" in missing else "use providers=auto or cpu")
            raise ProviderError(f"providers=openvino: {missing}; {how}")
        return ProviderDecision("openvino", "as configured")
    if _CUDA in available:
        return ProviderDecision("cuda", "onnxruntime offers CUDAExecutionProvider")
    cpu = cpu or cpu_info()
    missing = register_openvino_plugin(ort)
    if missing is not None:
        return ProviderDecision("cpu", missing)
    if not openvino_devices(ort):
        return ProviderDecision("cpu", f"the OpenVINO plugin offers no device for this CPU ({cpu.model})")
    if cpu.isa not in OPENVINO_AUTO_ISA:
        return ProviderDecision("cpu", f"this CPU ({cpu.model}) has no AVX-512/VNNI/AMX units (class {cpu.isa}); "
                                       "providers: openvino forces OpenVINO")
    return ProviderDecision("openvino", f"the OpenVINO plugin offers this CPU ({cpu.model}, class {cpu.isa})")


def openvino_load_config(hint: str, threads: int) -> str:
    """The provider option ``load_config``: OpenVINO's CPU settings as JSON (the plugin ignores
    ``num_of_threads``; ``INFERENCE_NUM_THREADS`` 0 is OpenVINO's own default)."""
    return json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": hint or "f32", "INFERENCE_NUM_THREADS": str(int(threads))}})


def requested_providers(policy: str, available: Sequence[str]) -> list[str]:
    """The provider list to ask ONNX Runtime for under ``policy``, given what the installed build offers."""
    if policy not in PROVIDER_POLICIES:
        raise ProviderError(f"providers policy {policy!r} is not one of {', '.join(PROVIDER_POLICIES)}")
    if policy == "cpu":
        return [_CPU]
    if policy == "openvino":
        return [_OPENVINO, _CPU]
    if policy in ("cuda", "require-gpu"):
        if _CUDA not in available:
            raise ProviderError(
                f"providers={policy!r} needs CUDAExecutionProvider, but this onnxruntime offers only "
                f"{', '.join(available)}; install onnxruntime-gpu (not beside onnxruntime) or use providers=cpu"
            )
        return [_CUDA, _CPU]
    return [_CUDA, _CPU] if _CUDA in available else [_CPU]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def open_session(model: Path | str | bytes, options: RuntimeOptions = RuntimeOptions(),
                 profile_prefix: str | None = None):
    """The one place an ONNX Runtime session is opened: graph optimisation, intra/inter-op threads, sequential
    execution, quiet logs and the provider policy from ``options``. ``model``: a file or serialised bytes.
    ``profile_prefix``: turn ORT's profiler on (``session.end_profiling()`` returns the trace file).
    Raises :class:`ModelError` for a graph ONNX Runtime cannot load."""
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }[options.graph_optimization]
    so.intra_op_num_threads = int(options.intra_op_threads)
    so.inter_op_num_threads = int(options.inter_op_threads)
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    if not options.allow_spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    decision = resolve_provider(options.providers, ort)
    source = model if isinstance(model, bytes) else str(model)
    name = "model bytes" if isinstance(model, bytes) else str(model)
    try:
        if decision.name == "openvino":
            so.add_provider_for_devices(openvino_devices(ort), {
                "load_config": openvino_load_config(options.precision_hint, options.intra_op_threads)})
            return ort.InferenceSession(source, sess_options=so)
        wanted = [_CUDA, _CPU] if decision.name == "cuda" else [_CPU]
        return ort.InferenceSession(source, sess_options=so, providers=wanted)
    except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable graphs
        raise ModelError(f"{name}: not a loadable ONNX model ({type(exc).__name__}: {exc})") from exc


class OnnxModel:
    """An ONNX Runtime session, its contract and its file hash. A context manager; ``close()`` is idempotent."""

    def __init__(self, path: Path | str, options: RuntimeOptions = RuntimeOptions(), expected_kind: str | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model file not found: {self.path}")
        self.sha256 = file_sha256(self.path)
        self.session = open_session(self.path, options)
        used = self.session.get_providers()
        if options.providers in ("cuda", "require-gpu") and _CUDA not in used:
            raise ProviderError(f"{self.path}: CUDAExecutionProvider was required but the session uses {used}")
        decision = resolve_provider(options.providers)
        wanted = {"cuda": _CUDA, "openvino": _OPENVINO, "cpu": _CPU}[decision.name]
        if wanted != used[0]:
            log.warning("%s: asked for %s, ONNX Runtime uses %s", self.path.name, wanted, used)
        self.providers = tuple(used)
        self.provider = decision.name
        self.precision_hint = options.precision_hint if decision.name == "openvino" else ""
        self.contract = read_contract(self.session, str(self.path))
        if expected_kind is not None and self.contract.kind != expected_kind:
            raise ModelError(f"{self.path}: is a {self.contract.kind!r} model, expected a {expected_kind!r} model")
        check_graph_matches_contract(self.session, self.contract, str(self.path))
        self._input_name = self.contract.input.name
        check_outputs_by_probe(self.session, self.contract, str(self.path))
        log.info("loaded %s (%s) on %s", self.path.name, self.contract.kind, ", ".join(used))

    def run(self, input_nchw: np.ndarray, extra_inputs: dict[str, np.ndarray] | None = None) -> list[np.ndarray]:
        """One session run. ``input_nchw``: float32 (N, 3, H, W). Returns the contract's outputs, in order."""
        feeds = {self._input_name: input_nchw}
        if extra_inputs:
            feeds.update(extra_inputs)
        return self.session.run(list(self.contract.outputs), feeds)

    def close(self) -> None:
        self.session = None

    def __enter__(self) -> "OnnxModel":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_contract(session, source: str) -> ModelContract:
    """The contract stored in a session's metadata; :class:`ModelError` naming ``source`` when absent."""
    meta = session.get_modelmeta().custom_metadata_map
    if CONTRACT_KEY not in meta:
        raise ModelError(
            f"{source}: has no {CONTRACT_KEY!r} metadata; export it with 'rtv export' so the runtime knows its "
            "input size, colour order, normalisation and outputs"
        )
    return ModelContract.from_json(meta[CONTRACT_KEY], source)


def check_graph_matches_contract(session, contract: ModelContract, source: str) -> None:
    """Refuse a model whose graph inputs/outputs disagree with its contract (names, rank, dtype, fixed size)."""
    inputs = {i.name: i for i in session.get_inputs()}
    spec = contract.input
    if spec.name not in inputs:
        raise ModelError(f"{source}: contract input {spec.name!r} is not a graph input (graph has {sorted(inputs)})")
    graph_input = inputs[spec.name]
    if graph_input.type != "tensor(float)":
        raise ModelError(f"{source}: input {spec.name!r} is {graph_input.type}, the contract needs tensor(float)")
    shape = graph_input.shape
    if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
        raise ModelError(f"{source}: input {spec.name!r} has shape {shape}, the contract needs (N, 3, H, W)")
    if spec.size_wh is not None:
        w, h = spec.size_wh
        if isinstance(shape[2], int) and isinstance(shape[3], int) and (shape[2], shape[3]) != (h, w):
            raise ModelError(f"{source}: input is {shape[3]}x{shape[2]} but the contract says {w}x{h}")
    outputs = {o.name: o for o in session.get_outputs()}
    missing = [o for o in contract.outputs if o not in outputs]
    if missing:
        raise ModelError(f"{source}: contract outputs {missing} are not graph outputs (graph has {sorted(outputs)})")
    for index, name in enumerate(contract.outputs):
        problem = shape_disagreement(contract, index, tuple(outputs[name].shape))
        if problem:
            raise ModelError(f"{source}: {problem}; the graph and its contract disagree (re-export the model)")


def probe_input_nchw(contract: ModelContract) -> np.ndarray:
    """A zero float32 (1, 3, H, W) input at the contract's working size (its fixed or default size)."""
    w, h = contract.input.working_size_wh()
    return np.zeros((1, 3, h, w), dtype=np.float32)


def check_outputs_by_probe(session, contract: ModelContract, source: str) -> None:
    """Run the model once on a zero input when the session opens and check every output's shape against the
    contract, so a model whose outputs differ (e.g. a 64-wide embedding under a 128 contract) is refused now, not
    at the first face. Models with more inputs than the contract's one (a multi-style teacher) are checked only
    statically, by :func:`check_graph_matches_contract`."""
    if len(session.get_inputs()) != 1:
        return
    probe = probe_input_nchw(contract)
    try:
        results = session.run(list(contract.outputs), {contract.input.name: probe})
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"{source}: a {probe.shape[3]}x{probe.shape[2]} test input fails to run "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    for index, result in enumerate(results):
        shape = tuple(int(d) for d in np.shape(result))
        problem = shape_disagreement(contract, index, shape)
        if problem is None and contract.kind in ("face_embedder", "yolo", "face_detector") and shape[:1] != (1,):
            problem = f"output {contract.outputs[index]!r} has batch {shape[:1]} for a batch of 1"
        if problem:
            raise ModelError(f"{source}: {problem} on a test input; the model and its contract disagree "
                             "(re-export it with 'rtv export')")
