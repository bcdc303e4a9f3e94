"""Parity between a PyTorch module and its ONNX export, and which execution provider runs each graph node.

Raw outputs are compared by max absolute error and max relative error (absolute error over the largest reference
magnitude of that output). For detectors, both sides are decoded and NMS'd with the same numpy code, then boxes are
matched (same class, greedy by IoU in reference-score order) and the report gives the smallest matched IoU, the
largest score difference and the unmatched counts.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from realtime.boxes import box_iou
from realtime.errors import ExportError
from realtime.runtime import OnnxModel, RuntimeOptions, open_session, requested_providers

Decoded = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes_xyxy (K, 4), scores (K,), class_ids (K,)


@dataclass(frozen=True)
class Tolerance:
    """Limits a parity check must meet. ``max_unmatched``: detections allowed to appear on one side only (boxes
    whose score sits right at the threshold can flip)."""

    raw_abs: float = 1e-3
    raw_rel: float = 1e-4
    min_iou: float = 0.99
    score_abs: float = 1e-3
    max_unmatched: int = 0


@dataclass
class ParityReport:
    """Per-input figures, the provider report and the verdict."""

    cases: list[dict[str, Any]] = field(default_factory=list)
    providers: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "cases": self.cases, "providers": self.providers, "failures": self.failures}

    def format(self) -> str:
        lines = ["parity: PyTorch vs ONNX Runtime",
                 f"{'input':>16} {'max abs':>10} {'max rel':>10} {'boxes t/o':>10} {'min IoU':>8} {'max dscore':>10}"]
        for c in self.cases:
            det = c.get("detections") or {}
            boxes = f"{det.get('reference', '-')}/{det.get('candidate', '-')}" if det else "-"
            iou = f"{det['min_iou']:.5f}" if det.get("min_iou") is not None else "-"
            ds = f"{det['max_score_diff']:.2e}" if det.get("max_score_diff") is not None else "-"
            lines.append(f"{c['input']:>16} {c['max_abs']:>10.2e} {c['max_rel']:>10.2e} {boxes:>10} {iou:>8} {ds:>10}")
        for provider, info in self.providers.get("by_provider", {}).items():
            ops = ", ".join(f"{op} x{n}" for op, n in sorted(info["ops"].items()))
            lines.append(f"{provider}: {info['nodes']} nodes ({ops})")
        lines.append("OK" if self.ok else "FAILED: " + "; ".join(self.failures))
        return "\n".join(lines)


def output_errors(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], names: Sequence[str]
                  ) -> dict[str, dict[str, float]]:
    """Per named output: ``max_abs`` error and ``max_rel`` (that error over the reference's max magnitude).
    Raises :class:`ExportError` when a shape differs."""
    out = {}
    for name, ref, new in zip(names, reference, candidate):
        if ref.shape != new.shape:
            raise ExportError(f"parity: {name!r} shape differs: {new.shape} (candidate) vs {ref.shape} (reference)")
        err = float(np.max(np.abs(ref.astype(np.float64) - new.astype(np.float64)))) if ref.size else 0.0
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        out[name] = {"max_abs": err, "max_rel": err / max(scale, 1e-12)}
    return out


def raw_errors(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> dict[str, float]:
    """Max absolute and relative error over all outputs (see :func:`output_errors`)."""
    if len(reference) != len(candidate):
        raise ExportError(f"output count differs: {len(reference)} (PyTorch) vs {len(candidate)} (ONNX Runtime)")
    per = output_errors(reference, candidate, [f"output {i}" for i in range(len(reference))]).values()
    return {"max_abs": max((p["max_abs"] for p in per), default=0.0),
            "max_rel": max((p["max_rel"] for p in per), default=0.0)}


def match_detections(reference: Decoded, candidate: Decoded) -> dict[str, Any]:
    """Greedy one-to-one matching of same-class boxes by IoU, in reference-score order.

    Returns counts, ``matched``, ``min_iou`` / ``max_score_diff`` over matches (None when nothing matched) and
    ``unmatched`` (boxes on either side without a partner with IoU > 0.5).
    """
    rb, rs, rc = reference
    cb, cs, cc = candidate
    ious = box_iou(rb, cb) if len(rb) and len(cb) else np.zeros((len(rb), len(cb)))
    ious = np.where(np.asarray(rc)[:, None] == np.asarray(cc)[None, :], ious, 0.0)
    used = np.zeros(len(cb), bool)
    matched_iou, score_diff = [], []
    for i in np.argsort(-np.asarray(rs), kind="stable"):
        if not len(cb):
            break
        row = np.where(used, -1.0, ious[i])
        j = int(np.argmax(row))
        if row[j] > 0.5:
            used[j] = True
            matched_iou.append(float(row[j]))
            score_diff.append(abs(float(rs[i]) - float(cs[j])))
    return {"reference": int(len(rb)), "candidate": int(len(cb)), "matched": len(matched_iou),
            "unmatched": int(len(rb) + len(cb) - 2 * len(matched_iou)),
            "min_iou": min(matched_iou) if matched_iou else None,
            "max_score_diff": max(score_diff) if score_diff else None}


def provider_report(onnx_path: Path | str, input_nchw: np.ndarray, providers: str = "cpu",
                    threads: int = 1) -> dict[str, Any]:
    """Which execution provider ran each graph node, from one profiled ONNX Runtime run.

    Returns ``{"requested": [...], "session": [...], "by_provider": {provider: {"nodes": n, "ops": {op: n}}}}``.
    """
    import onnxruntime as ort

    wanted = requested_providers(providers, ort.get_available_providers())
    with tempfile.TemporaryDirectory() as tmp:
        session = open_session(onnx_path, RuntimeOptions(providers=providers, intra_op_threads=threads),
                               profile_prefix=os.path.join(tmp, "profile"))
        session.run(None, {session.get_inputs()[0].name: input_nchw})
        profile = session.end_profiling()
        events = json.loads(Path(profile).read_text())
    nodes: dict[str, tuple[str, str]] = {}
    for event in events:
        args = event.get("args", {})
        if event.get("cat") == "Node" and "provider" in args:
            name = event["name"].removesuffix("_kernel_time").removesuffix("_fence_before").removesuffix(
                "_fence_after")
            nodes[name] = (args["provider"], args.get("op_name", "?"))
    by_provider: dict[str, dict[str, Any]] = {}
    for provider, op in nodes.values():
        entry = by_provider.setdefault(provider, {"nodes": 0, "ops": Counter()})
        entry["nodes"] += 1
        entry["ops"][op] += 1
    for entry in by_provider.values():
        entry["ops"] = dict(entry["ops"])
    return {"requested": wanted, "session": list(session.get_providers()), "by_provider": by_provider}


def run_parity(torch_forward: Callable[[np.ndarray], list[np.ndarray]], onnx_path: Path | str,
               inputs: Sequence[np.ndarray], decode: Callable[[list[np.ndarray]], Decoded] | None = None,
               tolerance: Tolerance = Tolerance(), providers: str = "cpu", expected_kind: str | None = None
               ) -> ParityReport:
    """Compare ``torch_forward`` (numpy in, list of numpy out) with ONNX Runtime on each input.

    ``inputs``: float32 (N, 3, H, W) arrays, e.g. of two sizes. ``decode`` turns raw outputs of the first image
    into detections (decode + NMS) for the box comparison. Failures are listed in the report; the caller decides
    whether to raise (see :func:`require_parity`).
    """
    report = ParityReport()
    with OnnxModel(onnx_path, RuntimeOptions(providers=providers), expected_kind=expected_kind) as model:
        for x in inputs:
            label = "x".join(str(d) for d in x.shape)
            ref = [np.asarray(o) for o in torch_forward(x)]
            got = model.run(x)
            case: dict[str, Any] = {"input": label, **raw_errors(ref, got)}
            bad = sum(int((~np.isfinite(o)).sum()) for o in [*ref, *got])
            if bad:  # NaN - NaN is NaN, which no tolerance comparison catches
                report.failures.append(f"{label}: {bad} output values are NaN or infinite (weights out of range?)")
            if case["max_abs"] > tolerance.raw_abs and case["max_rel"] > tolerance.raw_rel:
                report.failures.append(f"{label}: raw max abs {case['max_abs']:.2e} > {tolerance.raw_abs:g} and "
                                       f"max rel {case['max_rel']:.2e} > {tolerance.raw_rel:g}")
            if decode is not None:
                det = match_detections(decode(ref), decode(got))
                case["detections"] = det
                if det["unmatched"] > tolerance.max_unmatched:
                    report.failures.append(f"{label}: {det['unmatched']} detections unmatched "
                                           f"(PyTorch {det['reference']}, ONNX Runtime {det['candidate']})")
                if det["min_iou"] is not None and det["min_iou"] < tolerance.min_iou:
                    report.failures.append(f"{label}: matched box IoU {det['min_iou']:.5f} < {tolerance.min_iou}")
                if det["max_score_diff"] is not None and det["max_score_diff"] > tolerance.score_abs:
                    report.failures.append(f"{label}: score difference {det['max_score_diff']:.2e} > "
                                           f"{tolerance.score_abs:g}")
            report.cases.append(case)
    report.providers = provider_report(onnx_path, np.ascontiguousarray(inputs[0][:1]), providers)
    return report


def torch_forward(module) -> Callable[[np.ndarray], list[np.ndarray]]:
    """``module`` (a ``torch.nn.Module`` in eval mode) as a numpy function: float32 (N, C, H, W) -> its outputs
    (a tensor or a sequence of tensors) as a list of numpy arrays, without gradients."""
    import torch

    def forward(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            out = module(torch.from_numpy(x))
        return [o.numpy() for o in (out if isinstance(out, (list, tuple)) else [out])]
    return forward


def yolo_decoder(head, score_threshold: float, iou_threshold: float = 0.45) -> Callable[[list[np.ndarray]], Decoded]:
    """The runtime's YOLO decode (``realtime.detect.yolo``) then class-aware NMS, for the parity box comparison of
    any YOLO-family export (rtv checkpoints and darknet alike): raw head outputs of the first image -> Decoded."""
    from realtime.boxes import batched_nms
    from realtime.detect.yolo import GridCache, decode_yolo

    grids = GridCache(head)

    def decode(outputs: list[np.ndarray]) -> Decoded:
        boxes, scores, classes = decode_yolo(outputs, head, score_threshold, 1000, grids)
        keep = batched_nms(boxes, scores, classes, iou_threshold, 300)
        return boxes[keep], scores[keep], classes[keep]
    return decode


def require_parity(report: ParityReport) -> ParityReport:
    """Raise :class:`ExportError` with the formatted report when it failed; else return it."""
    if not report.ok:
        raise ExportError("parity check failed:\n" + report.format())
    return report
