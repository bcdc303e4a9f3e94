"""``rtv doctor``: what this machine offers rtv: versions, video I/O, providers, models, camera."""

from __future__ import annotations

import argparse

import json
import platform
import re
import sys
from pathlib import Path
from typing import Any

from realtime.config import ZOO_DIR, Config
from realtime.errors import ModelError


def video_backends(build_info: str) -> dict[str, str]:
    """The "Video I/O" block of ``cv2.getBuildInformation()`` as {backend: status}."""
    block = build_info.split("Video I/O:", 1)[-1].split("\n\n", 1)[0]
    out = {}
    for line in block.splitlines():
        m = re.match(r"\s{4}(\S[^:]*):\s+(.*)$", line)
        if m:
            out[m.group(1).strip()] = m.group(2).strip()
    return out


def model_report(path: Path) -> dict[str, Any]:
    from realtime.runtime import OnnxModel, RuntimeOptions

    try:
        with OnnxModel(path, RuntimeOptions(providers="cpu")) as model:
            c = model.contract
            return {"file": str(path), "ok": True, "kind": c.kind, "name": c.name, "sha256": model.sha256[:16],
                    "input": {"size_wh": c.input.size_wh, "default_size_wh": c.input.default_size_wh,
                              "color": c.input.color}, "classes": list(c.classes)[:10],
                    "embedding_size": c.embedding_size}
    except ModelError as exc:
        return {"file": str(path), "ok": False, "error": str(exc)}


def camera_report(index: int = 0) -> dict[str, Any]:
    import cv2

    cap = cv2.VideoCapture(index)
    try:
        if not cap.isOpened():
            return {"index": index, "opens": False}
        ok, frame = cap.read()
        return {"index": index, "opens": True, "reads": bool(ok),
                "size": [int(frame.shape[1]), int(frame.shape[0])] if ok else None}
    finally:
        cap.release()


def collect(config: Config, camera_index: int | None = 0) -> dict[str, Any]:
    import av
    import cv2
    import numpy as np
    import onnxruntime as ort

    available = ort.get_available_providers()
    models = sorted(ZOO_DIR.glob("*.onnx"))
    usable = usable_providers(available, min(models, key=lambda p: p.stat().st_size) if models else None)
    for configured in (config.detector.model, config.faces.detector_model, config.faces.embedder_model):
        if configured and Path(configured) not in models:
            models.append(Path(configured))
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "opencv_video_io": video_backends(cv2.getBuildInformation()),
        "pyav": av.__version__,
        "pyav_h264_encoder": "libx264" in av.codecs_available,
        "onnxruntime": ort.__version__,
        "providers_available": available,
        "providers_usable": usable,
        "providers_policy": config.runtime.providers,
        "acceleration": acceleration_report(config),
        "threads": thread_report(config),
        "models": [model_report(p) for p in models],
        "camera": camera_report(camera_index) if camera_index is not None else None,
        "torch_installed": _has_module("torch"),
        "data": data_report(config),
    }


def data_report(config: Config) -> dict[str, Any]:
    """Where this config keeps its data: the data folder, the gallery, the audit log and its key."""
    from realtime.data_dir import DATA_DIR_ENV, data_dir, default_audit_key

    def entry(path: str | Path) -> dict[str, Any]:
        return {"path": str(path), "exists": Path(path).exists()}

    return {"data_dir": {**entry(data_dir()), "override": DATA_DIR_ENV},
            "gallery": entry(config.faces.gallery), "audit_log": entry(config.door.audit),
            "audit_key": entry(config.door.audit_key_file) if config.door.audit_key_file else None,
            "audit_key_default": str(default_audit_key())}


def acceleration_report(config: Config) -> dict[str, Any]:
    """This CPU, the OpenVINO plugin's state, the provider ``runtime.providers`` resolves to and the precision
    (and file) each model role runs in, with the reasons."""
    from realtime.build import precision_choice
    from realtime.cpu import cpu_info
    from realtime.errors import ConfigError, ProviderError
    from realtime.runtime import openvino_devices, register_openvino_plugin, resolve_provider

    report: dict[str, Any] = {"cpu": cpu_info().to_dict(),
                              "openvino_plugin": register_openvino_plugin() or "registered",
                              "openvino_cpu_device": bool(openvino_devices())}
    try:
        decision = resolve_provider(config.runtime.providers)
    except ProviderError as exc:
        report["provider"] = {"name": None, "reason": str(exc)}
        return report
    report["provider"] = {"name": decision.name, "reason": decision.reason}
    configured = {"detector": config.detector.model, "face_detector": config.faces.detector_model,
                  "face_embedder": config.faces.embedder_model, "style": ""}
    models = {}
    for role, path in configured.items():
        try:
            models[role] = precision_choice(role, config.runtime, bool(path)).to_dict()
        except ConfigError as exc:
            models[role] = {"error": str(exc)}
    report["models"] = models
    return report


def thread_report(config: Config) -> dict[str, Any]:
    """The thread plan the pipeline would use here (realtime/threads.py), as configured and as resolved."""
    from realtime.build import analysis_branches
    from realtime.threads import plan_threads

    plan = plan_threads(config.runtime, branches=analysis_branches(config))
    configured = {k: getattr(config.runtime, k) for k in ("workers", "intra_op_threads", "inter_op_threads",
                                                           "opencv_threads", "blas_threads")}
    return {"configured": configured, "chosen": plan.to_dict(), "summary": plan.describe()}


# Providers that run no local compute (Azure sends requests to a remote endpoint): not reported as usable.
REMOTE_PROVIDERS = frozenset({"AzureExecutionProvider"})


def usable_providers(available: list[str], probe_model: Path | None) -> list[str] | None:
    """Local providers a real session on ``probe_model`` actually uses when each is asked for (None: nothing to
    probe). Deliberately not :func:`realtime.runtime.open_session`: this asks for one provider at a time."""
    import onnxruntime as ort

    if probe_model is None:
        return None
    usable = []
    for provider in available:
        if provider in REMOTE_PROVIDERS:
            continue
        try:
            session = ort.InferenceSession(str(probe_model), providers=[provider])
        except Exception:  # noqa: BLE001 - a provider that cannot start is exactly what we report
            continue
        if provider in session.get_providers():
            usable.append(provider)
    return usable


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"python       {report['python']}  ({report['platform']})",
        f"numpy        {report['numpy']}",
        f"opencv       {report['opencv']}  video I/O: " + ", ".join(
            f"{k}={v.split()[0]}" for k, v in report["opencv_video_io"].items()),
        f"pyav         {report['pyav']}  H.264 encoder (libx264): {'yes' if report['pyav_h264_encoder'] else 'NO'}",
        f"onnxruntime  {report['onnxruntime']}  providers: {', '.join(report['providers_available'])} "
        f"(usable: {', '.join(report['providers_usable'] or ['not probed'])}; policy {report['providers_policy']})",
        *acceleration_lines(report["acceleration"]),
        f"threads      {report['threads']['summary']}",
        f"torch        {'installed (export/training available)' if report['torch_installed'] else 'not installed'}",
        "models:",
    ]
    for m in report["models"]:
        if m["ok"]:
            lines.append(f"  {Path(m['file']).name:<24} {m['kind']:<14} {m['name']}  sha256 {m['sha256']}…  "
                         f"input {m['input']['size_wh'] or m['input']['default_size_wh']} {m['input']['color']}")
        else:
            lines.append(f"  {Path(m['file']).name:<24} BROKEN: {m['error']}")
    if not report["models"]:
        lines.append("  (none found)")
    data = report["data"]

    def where(item: dict[str, Any]) -> str:
        return f"{item['path']}{'' if item['exists'] else '  (not created yet)'}"

    lines += [f"data folder  {where(data['data_dir'])}  (set {data['data_dir']['override']} to move it)",
              f"gallery      {where(data['gallery'])}",
              f"audit log    {where(data['audit_log'])}",
              f"audit key    "
              f"{where(data['audit_key']) if data['audit_key'] else 'none (records are hashed, not MACed)'}"
              f"{'' if data['audit_key'] else '; rtv audit keygen writes ' + data['audit_key_default']}"]
    cam = report["camera"]
    if cam is not None:
        state = "opens and reads" if cam.get("reads") else ("opens but reads nothing" if cam["opens"] else
                                                           "does not open")
        lines.append(f"camera {cam['index']}     {state}")
    return "\n".join(lines)


def acceleration_lines(acc: dict[str, Any]) -> list[str]:
    cpu = acc["cpu"]
    provider = acc["provider"]
    lines = [f"cpu          {cpu['model']} (class {cpu['isa']}; {' '.join(cpu['flags']) or 'no vector flags'})",
             f"openvino     plugin {acc['openvino_plugin']}; CPU device offered: "
             f"{'yes' if acc['openvino_cpu_device'] else 'no'}",
             f"provider     {provider['name'] or 'NONE'}: {provider['reason']}"]
    for role, m in acc.get("models", {}).items():
        if "error" in m:
            lines.append(f"  {role:<14} {m['error']}")
        else:
            hint = f", OpenVINO hint {m['hint']}" if m["hint"] else ""
            lines.append(f"  {role:<14} {m['precision']:<5} {m['file'] or '-'}{hint}: {m['reason']}")
    return lines


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2)


def cmd_doctor(args: argparse.Namespace) -> int:
    
    from realtime.cli.args import load_from_args

    config = load_from_args(args)
    report = collect(config, camera_index=None if args.no_camera else args.camera)
    print(to_json(report) if args.json else format_report(report))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="versions, video I/O backends, ONNX Runtime providers, models, camera")
    p.add_argument("--camera", type=int, default=0, help="camera index to try (default 0)")
    p.add_argument("--no-camera", action="store_true", help="do not try to open a camera")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_doctor)
