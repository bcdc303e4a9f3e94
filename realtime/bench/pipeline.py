"""``rtv bench pipeline``: the configured pipeline on a clip, headless, through the same run loop as every command."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from realtime.build import build_pipeline
from realtime.config import Config
from realtime.io.capture import open_source
from realtime.session import annotate, run_session
from realtime.types import FramePacket


class ViewSink:
    """Asks the loop to render the overlay (as a live window would) and discards it: the view's cost is counted."""

    needs_display = True

    def write(self, packet: FramePacket, display_bgr: np.ndarray | None) -> None:
        pass

    def finish(self, result) -> None:
        pass

    def close(self) -> None:
        pass


def bench_pipeline(config: Config, clip: Path) -> dict[str, Any]:
    """Two headless runs of the configured pipeline on ``clip``.

    ``throughput``: every frame, as fast as possible (per-stage ms, FPS the pipeline can sustain).
    ``live``: the clip replayed at its own frame rate with the ``latest`` policy, as a camera would deliver it,
    overlays rendered as in a live view: FPS delivered, frames dropped, capture-to-output latency.
    """
    with build_pipeline(config) as pipeline:
        throughput = annotate(config, str(clip), None, None, progress=False, pipeline=pipeline)
    # A fresh pipeline for the second run: trackers and caches start empty, as in a real live session.
    live_source = dataclasses.replace(config.source, policy="latest", pace=True)
    with build_pipeline(config) as pipeline, open_source(live_source, str(clip)) as source:
        live = run_session(source, pipeline, [ViewSink()], config.overlay)
        stages = list(pipeline.names)
        plan = pipeline.thread_plan.to_dict() if pipeline.thread_plan is not None else {}
    return {"clip": str(clip), "stages": stages, "threads": plan,
            "throughput": throughput.summary, "live": live.summary}


def float_variant(path: Path) -> Path:
    """The float model an INT8 file was made from (its manifest entry's ``int8_of`` or
    ``quantization.float_model``, else the name without ``_int8``); ``path`` itself when it is not INT8."""
    import json

    path = Path(path)
    manifest = path.parent / "MANIFEST.json"
    entry = {}
    if manifest.is_file():
        entry = json.loads(manifest.read_text(encoding="utf-8")).get(path.name, {})
    name = entry.get("int8_of") or (entry.get("quantization") or {}).get("float_model")
    if not name and path.stem.endswith("_int8"):
        name = path.stem[:-len("_int8")] + path.suffix
    candidate = path.parent / name if name else path
    return candidate if candidate.is_file() else path


def naive_config(config: Config) -> Config:
    """``config`` as the naive baseline: every stage in sequence on the main thread, one thread for ONNX Runtime,
    OpenCV and BLAS, float models on the CPU provider, the detector on every frame."""
    from realtime.build import model_path

    runtime = dataclasses.replace(config.runtime, providers="cpu", precision="float", workers=1,
                                  intra_op_threads=1, inter_op_threads=1, opencv_threads=1, blas_threads=1,
                                  frames_in_flight=1)
    detector = config.detector
    if detector.enabled:
        path = model_path(detector.model, "detector", required=bool(detector.model))
        detector = dataclasses.replace(detector, every=1, model=str(float_variant(path)) if path else "")
    faces = config.faces
    if faces.enabled:
        faces = dataclasses.replace(
            faces, detector_model=str(float_variant(model_path(faces.detector_model, "face_detector"))),
            embedder_model=str(float_variant(model_path(faces.embedder_model, "face_embedder")))
            if faces.recognize else faces.embedder_model)
    return dataclasses.replace(config, runtime=runtime, detector=detector, faces=faces)


def run_figures(summary: dict[str, Any]) -> dict[str, Any]:
    """One run's figures in the ``--compare`` JSON shape: fps, dropped, stages_ms {name: {p50, p95}},
    capture_to_output_ms {p50, p95} and what that figure means (``latency`` or ``queueing``)."""
    return {
        "fps": summary["fps"], "dropped": summary["dropped"], "frames": summary["frames"],
        "stages_ms": {name: {"p50": s["p50_ms"], "p95": s["p95_ms"]} for name, s in summary["stages"].items()},
        "capture_to_output_ms": {"p50": summary["latency"]["p50_ms"], "p95": summary["latency"]["p95_ms"]},
        "capture_to_output_is": summary.get("capture_to_output", "unknown"),
    }


def _resolved_models(config: Config) -> dict[str, str]:
    from realtime.build import model_path

    def resolve(configured: str, role: str, enabled: bool) -> str:
        if not enabled:
            return "(off)"
        path = model_path(configured, role, required=bool(configured), runtime=config.runtime)
        return str(path) if path is not None else "(none)"

    return {"detector": resolve(config.detector.model, "detector", config.detector.enabled),
            "face_detector": resolve(config.faces.detector_model, "face_detector", config.faces.enabled),
            "face_embedder": resolve(config.faces.embedder_model, "face_embedder",
                                     config.faces.enabled and config.faces.recognize)}


def _precisions(config: Config) -> dict[str, str]:
    from realtime.build import precision_choice
    from realtime.runtime import resolve_provider

    out = {"provider": resolve_provider(config.runtime.providers).name}
    for role, configured in (("detector", config.detector.model), ("face_detector", config.faces.detector_model),
                             ("face_embedder", config.faces.embedder_model)):
        out[role] = precision_choice(role, config.runtime, bool(configured)).precision
    return out


def provider_configs(config: Config, providers: list[str] | None) -> dict[str, Config]:
    """``config`` once per provider (label ``tuned/<provider>``), or as given (label ``tuned``)."""
    if not providers:
        return {"tuned": config}
    return {f"tuned/{p}": dataclasses.replace(config, runtime=dataclasses.replace(config.runtime, providers=p))
            for p in providers}


def compare_pipeline(config: Config, clip: Path, providers: list[str] | None = None,
                     naive: bool = True) -> dict[str, Any]:
    """In one process on one clip: the naive configuration (:func:`naive_config`, when ``naive``) and ``config``
    (the tuned default; once per provider in ``providers``), each as :func:`bench_pipeline`'s two runs.
    ``speedup``: the first tuned run's unpaced FPS over naive; ``speedups``: every run's over the first run."""
    configs = {"naive": naive_config(config)} if naive else {}
    configs.update(provider_configs(config, providers))
    runs, details = {}, {}
    for label, cfg in configs.items():
        report = bench_pipeline(cfg, clip)
        runs[label] = {"throughput": run_figures(report["throughput"]), "live": run_figures(report["live"])}
        details[label] = {"stages": report["stages"], "threads": report["threads"],
                          "models": _resolved_models(cfg), "precision": _precisions(cfg),
                          "detector_every": cfg.detector.every}
    labels = list(runs)
    base_fps = runs[labels[0]]["throughput"]["fps"]
    speedups = {k: round(v["throughput"]["fps"] / base_fps, 3) if base_fps else float("nan") for k, v in runs.items()}
    result = {"clip": str(clip), "runs": runs, "configs": details, "speedups": speedups, "base": labels[0]}
    if naive:
        result["speedup"] = speedups[labels[1]]
    return result


def format_compare(report: dict[str, Any]) -> str:
    """Every run side by side with its ratio to the first (naive when there is one)."""
    runs = report["runs"]
    labels = list(runs)
    base = runs[labels[0]]

    def row(label: str, get, higher_better: bool) -> tuple[str, list[float], bool]:
        return label, [get(runs[k]) for k in labels], higher_better

    rows = [row("unpaced FPS", lambda r: r["throughput"]["fps"], True),
            row("live FPS (30 FPS source)", lambda r: r["live"]["fps"], True),
            row("live dropped frames", lambda r: r["live"]["dropped"], False),
            row("live latency p50 ms", lambda r: r["live"]["capture_to_output_ms"]["p50"], False),
            row("live latency p95 ms", lambda r: r["live"]["capture_to_output_ms"]["p95"], False),
            row("unpaced queueing p95 ms *", lambda r: r["throughput"]["capture_to_output_ms"]["p95"], False)]
    stages = list(dict.fromkeys(n for k in labels for n in runs[k]["throughput"]["stages_ms"]))
    for name in stages:
        rows.append(row(f"  {name} p50 ms (unpaced)",
                        lambda r, n=name: r["throughput"]["stages_ms"].get(n, {}).get("p50", float("nan")), False))
    width = max(12, *(len(k) + 2 for k in labels))
    lines = [f"{'':<30}" + "".join(f"{k:>{width}}" for k in labels)]
    for label, values, higher_better in rows:
        lines.append(f"{label:<30}" + "".join(f"{v:>{width}.1f}" for v in values))
    lines.append(f"{'ratio to ' + labels[0] + ' (FPS)':<30}" + "".join(
        f"{report['speedups'][k]:>{width - 1}.2f}x" for k in labels))
    if "speedup" in report:
        lines.append(f"speedup (unpaced FPS, {labels[1]} / naive): {report['speedup']:.2f}x")
    lines.append("* unpaced capture-to-output is queueing (frames wait in the source queue), not latency")
    for label, d in report["configs"].items():
        t = d["threads"]
        p = d.get("precision", {})
        lines.append(f"{label}: provider {p.get('provider', '?')}; stages {', '.join(d['stages'])}; workers "
                     f"{t.get('workers')}, intra-op {t.get('intra_op')}, OpenCV {t.get('opencv')}, BLAS "
                     f"{t.get('blas')}; detector every {d['detector_every']}; models " + ", ".join(
                         f"{Path(m).name} ({p.get(role, '?')})" for role, m in d["models"].items()))
    return "\n".join(lines)
