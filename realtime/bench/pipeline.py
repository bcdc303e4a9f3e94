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
    OpenCV and BLAS, float models, the detector on every frame."""
    from realtime.zoo import model_path

    runtime = dataclasses.replace(config.runtime, workers=1, intra_op_threads=1, inter_op_threads=1,
                                  opencv_threads=1, blas_threads=1, frames_in_flight=1)
    detector = config.detector
    if detector.enabled:
        path = model_path("detector", detector.model, required=bool(detector.model))
        detector = dataclasses.replace(detector, every=1, model=str(float_variant(path)) if path else "")
    faces = config.faces
    if faces.enabled:
        faces = dataclasses.replace(
            faces, detector_model=str(float_variant(model_path("face_detector", faces.detector_model))),
            embedder_model=str(float_variant(model_path("face_embedder", faces.embedder_model)))
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
    from realtime.zoo import model_path

    def resolve(configured: str, role: str, enabled: bool) -> str:
        if not enabled:
            return "(off)"
        path = model_path(role, configured, required=bool(configured))
        return str(path) if path is not None else "(none)"

    return {"detector": resolve(config.detector.model, "detector", config.detector.enabled),
            "face_detector": resolve(config.faces.detector_model, "face_detector", config.faces.enabled),
            "face_embedder": resolve(config.faces.embedder_model, "face_embedder",
                                     config.faces.enabled and config.faces.recognize)}


def compare_pipeline(config: Config, clip: Path) -> dict[str, Any]:
    """In one process on one clip: the naive configuration (:func:`naive_config`) and ``config`` as given (the
    tuned default), each as :func:`bench_pipeline`'s two runs. ``speedup``: tuned over naive unpaced FPS."""
    configs = {"naive": naive_config(config), "tuned": config}
    runs, details = {}, {}
    for label, cfg in configs.items():
        report = bench_pipeline(cfg, clip)
        runs[label] = {"throughput": run_figures(report["throughput"]), "live": run_figures(report["live"])}
        details[label] = {"stages": report["stages"], "threads": report["threads"],
                          "models": _resolved_models(cfg),
                          "detector_every": cfg.detector.every}
    naive_fps = runs["naive"]["throughput"]["fps"]
    speedup = runs["tuned"]["throughput"]["fps"] / naive_fps if naive_fps else float("nan")
    return {"clip": str(clip), "runs": runs, "speedup": round(speedup, 3), "configs": details}


def format_compare(report: dict[str, Any]) -> str:
    """Both configurations side by side with the tuned/naive ratio."""
    naive, tuned = report["runs"]["naive"], report["runs"]["tuned"]

    def ratio(a: float, b: float) -> str:
        return f"{b / a:.2f}x" if a else "-"

    rows = [("unpaced FPS", naive["throughput"]["fps"], tuned["throughput"]["fps"], True),
            ("live FPS (30 FPS source)", naive["live"]["fps"], tuned["live"]["fps"], True),
            ("live dropped frames", naive["live"]["dropped"], tuned["live"]["dropped"], False),
            ("live latency p50 ms", naive["live"]["capture_to_output_ms"]["p50"],
             tuned["live"]["capture_to_output_ms"]["p50"], False),
            ("live latency p95 ms", naive["live"]["capture_to_output_ms"]["p95"],
             tuned["live"]["capture_to_output_ms"]["p95"], False),
            ("unpaced queueing p95 ms *", naive["throughput"]["capture_to_output_ms"]["p95"],
             tuned["throughput"]["capture_to_output_ms"]["p95"], False)]
    stages = list(dict.fromkeys([*naive["throughput"]["stages_ms"], *tuned["throughput"]["stages_ms"]]))
    for name in stages:
        a = naive["throughput"]["stages_ms"].get(name, {}).get("p50", float("nan"))
        b = tuned["throughput"]["stages_ms"].get(name, {}).get("p50", float("nan"))
        rows.append((f"  {name} p50 ms (unpaced)", a, b, False))
    lines = [f"{'':<30}{'naive':>10}{'tuned':>10}{'tuned/naive':>13}"]
    for label, a, b, higher_better in rows:
        lines.append(f"{label:<30}{a:>10.1f}{b:>10.1f}{ratio(a, b) if higher_better else '':>13}")
    lines.append(f"speedup (unpaced FPS, tuned / naive): {report['speedup']:.2f}x")
    lines.append("* unpaced capture-to-output is queueing (frames wait in the source queue), not latency")
    for label, d in report["configs"].items():
        t = d["threads"]
        lines.append(f"{label}: stages {', '.join(d['stages'])}; workers {t.get('workers')}, intra-op "
                     f"{t.get('intra_op')}, OpenCV {t.get('opencv')}, BLAS {t.get('blas')}; detector every "
                     f"{d['detector_every']}; models {', '.join(Path(m).name for m in d['models'].values())}")
    return "\n".join(lines)
