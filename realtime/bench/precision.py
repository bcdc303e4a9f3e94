"""``rtv bench precision``: each shipped model in float, bf16 (OpenVINO hint) and INT8 on the providers asked for,
measured against float on the CPU provider with the model's declared rule, and timed in the same run.

Rules (a variant passes only if every part holds):
- COCO detector: AP@0.5 of the variant's detections (score > 0.01) against the reference's detections (score > 0.5)
  as ground truth, for person, car and truck (classes with at least 20 reference boxes), each >= 0.99, on held-out
  street frames (``--clip``, e.g. OpenCV's vtest.avi, every 3rd frame).
- CenterFace: recall of the reference's faces (IoU >= 0.5) >= 0.99 and mean landmark error <= 0.03 inter-ocular
  distances, on scikit-image faces at two scales and mirrored.
- dlib embedder: max descriptor distance to the reference <= 0.02 and no verification decision (pairs at the
  model's threshold) flipped, on the reference chips (``--dlib-reference``) or chips aligned from the face frames.
- style: PSNR against the reference >= 35 dB on held-out photos.

Every variant's ms per call (median) is measured in the same process, the variants interleaved call by call, so
the ratios hold even on a loaded machine; absolute figures depend on the load.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from realtime.boxes import box_iou
from realtime.config import ZOO_DIR
from realtime.errors import ModelError, ProviderError
from realtime.precision import ROLE_FILES, hint_for
from realtime.runtime import OnnxModel, RuntimeOptions, resolve_provider

PRECISIONS_BY_PROVIDER = {"cpu": ("float", "int8"), "openvino": ("float", "bf16", "int8"), "cuda": ("float",)}
DETECTOR_CLASSES = ("person", "car", "truck")
LIMITS = {"detector": {"ap50_min": 0.99, "min_reference_boxes": 20},
          "face_detector": {"recall_min": 0.99, "landmark_error_iod_mean_max": 0.03},
          "face_embedder": {"max_distance": 0.02, "decisions_flipped": 0},
          "style": {"psnr_db_min": 35.0}}


@dataclass(frozen=True)
class Variant:
    provider: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.precision}"


def variants(providers: Sequence[str], role: str, zoo_dir: Path = ZOO_DIR) -> tuple[list[Variant], list[str]]:
    """The (provider, precision) pairs to measure for ``role``; and a line for each provider that is not here."""
    out, missing = [], []
    for provider in providers:
        try:
            resolve_provider(provider)
        except ProviderError as exc:
            missing.append(f"{provider}: {exc}")
            continue
        for precision in PRECISIONS_BY_PROVIDER[provider]:
            if precision == "int8" and not (zoo_dir / ROLE_FILES.get(role, {}).get("int8", "-")).is_file():
                continue
            out.append(Variant(provider, precision))
    return out, missing


def model_file(role: str, precision: str, zoo_dir: Path = ZOO_DIR) -> Path:
    files = ROLE_FILES[role]
    return zoo_dir / files["int8" if precision == "int8" else "float"]


def options(variant: Variant, threads: int) -> RuntimeOptions:
    return RuntimeOptions(providers=variant.provider, precision_hint=hint_for(variant.precision, variant.provider),
                          intra_op_threads=threads)


def interleaved_ms(calls: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median ms of each call, the calls taken in turn ``repeats`` times (load drifts hit them alike)."""
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {k: float(np.median(v)) for k, v in times.items()}


# ------------------------------------------------------------------ agreement measures (pure numpy)

def average_precision_50(pred: Sequence[tuple[np.ndarray, np.ndarray]], truth: Sequence[np.ndarray]) -> float:
    """AP@0.5 (all-point interpolation) of one class: ``pred`` per frame (boxes xyxy, scores), ``truth`` per
    frame boxes xyxy; each truth box matched at most once, highest score first. NaN without truth boxes."""
    total = sum(len(t) for t in truth)
    if total == 0:
        return float("nan")
    scored = []
    for frame, (boxes, scores) in enumerate(pred):
        scored += [(float(s), frame, i) for i, s in enumerate(scores)]
    scored.sort(key=lambda x: -x[0])
    used = [np.zeros(len(t), bool) for t in truth]
    hits = np.zeros(len(scored))
    for rank, (_, frame, i) in enumerate(scored):
        t = truth[frame]
        if len(t) == 0:
            continue
        iou = box_iou(pred[frame][0][i:i + 1], t)[0]
        iou[used[frame]] = -1.0
        best = int(np.argmax(iou))
        if iou[best] >= 0.5:
            used[frame][best] = True
            hits[rank] = 1
    tp = np.cumsum(hits)
    recall = tp / total
    precision = tp / np.arange(1, len(scored) + 1)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def face_agreement(reference: Sequence[tuple[np.ndarray, np.ndarray]],
                   candidate: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Recall of the reference faces (IoU >= 0.5, greedy) and landmark error of matched faces in inter-ocular
    distances; per frame (boxes xyxy (N, 4), landmarks5 (N, 5, 2))."""
    found = matched = 0
    errors = []
    for (rb, rl), (cb, cl) in zip(reference, candidate):
        found += len(rb)
        if len(rb) == 0 or len(cb) == 0:
            continue
        iou = box_iou(rb, cb)
        for _ in range(min(len(rb), len(cb))):
            r, c = np.unravel_index(int(np.argmax(iou)), iou.shape)
            if iou[r, c] < 0.5:
                break
            matched += 1
            iod = float(np.linalg.norm(rl[r, 0] - rl[r, 1])) or 1.0
            errors.append(float(np.linalg.norm(cl[c] - rl[r], axis=1).mean()) / iod)
            iou[r, :] = -1
            iou[:, c] = -1
    return {"reference_faces": found, "matched": matched, "recall": matched / found if found else float("nan"),
            "landmark_error_iod_mean": float(np.mean(errors)) if errors else float("nan"),
            "landmark_error_iod_max": float(np.max(errors)) if errors else float("nan")}


def embedding_agreement(reference: np.ndarray, candidate: np.ndarray, threshold: float) -> dict[str, float]:
    """Max / mean distance between each chip's descriptors, and verification decisions (every pair of chips at
    ``threshold``) that differ between the two."""
    dist = np.linalg.norm(reference - candidate, axis=1)
    i, j = np.triu_indices(len(reference), 1)
    same_ref = np.linalg.norm(reference[i] - reference[j], axis=1) < threshold
    same_cand = np.linalg.norm(candidate[i] - candidate[j], axis=1) < threshold
    return {"chips": int(len(reference)), "max_distance": float(dist.max()), "mean_distance": float(dist.mean()),
            "pairs": int(len(i)), "decisions_flipped": int((same_ref != same_cand).sum())}


# ------------------------------------------------------------------ per model

def eval_detector(frames: Sequence[np.ndarray], providers: Sequence[str], threads: int = 1, size: int = 416,
                  repeats: int = 20) -> dict[str, Any]:
    from realtime.detect.yolo import YoloDetector

    todo, missing = variants(providers, "detector")
    ref_variant = Variant("cpu", "float")
    opened = {}
    try:
        for v in [ref_variant] + [v for v in todo if v != ref_variant]:
            model = OnnxModel(model_file("detector", v.precision), options(v, threads), expected_kind="yolo")
            opened[v] = YoloDetector(model, input_size=(size, size), score_threshold=0.01, max_detections=300)
        names = opened[ref_variant].class_names
        runs = {v: [d.detect(f) for f in frames] for v, d in opened.items()}
        ms = interleaved_ms({v.label: (lambda d=d: d.detect(frames[0])) for v, d in opened.items()}, repeats)
    finally:
        for d in opened.values():
            d.model.close()
    truth_all = [(r.boxes_xyxy[r.scores > 0.5], r.class_ids[r.scores > 0.5]) for r in runs[ref_variant]]
    rows = []
    for v in todo:
        per_class = {}
        for name in DETECTOR_CLASSES:
            k = names.index(name)
            truth = [b[c == k] for b, c in truth_all]
            if sum(len(t) for t in truth) < LIMITS["detector"]["min_reference_boxes"]:
                continue
            pred = [(r.boxes_xyxy[r.class_ids == k], r.scores[r.class_ids == k]) for r in runs[v]]
            per_class[name] = {"ap50": round(average_precision_50(pred, truth), 4),
                               "reference_boxes": int(sum(len(t) for t in truth))}
        ok = bool(per_class) and all(c["ap50"] >= LIMITS["detector"]["ap50_min"] for c in per_class.values())
        rows.append({"provider": v.provider, "precision": v.precision, "ms": round(ms[v.label], 2), "pass": ok,
                     "figures": per_class, "file": model_file("detector", v.precision).name,
                     "summary": ", ".join(f"{n} AP {c['ap50']:.3f}" for n, c in per_class.items())})
    return {"role": "detector", "frames": len(frames), "size": size, "rows": rows, "missing": missing}


def eval_face_detector(frames: Sequence[np.ndarray], providers: Sequence[str], threads: int = 1,
                       detect_width: int = 640, repeats: int = 20) -> dict[str, Any]:
    from realtime.face.detector import FaceDetector

    todo, missing = variants(providers, "face_detector")
    ref_variant = Variant("cpu", "float")
    opened = {}
    try:
        for v in [ref_variant] + [v for v in todo if v != ref_variant]:
            model = OnnxModel(model_file("face_detector", v.precision), options(v, threads),
                              expected_kind="face_detector")
            opened[v] = FaceDetector(model, detect_width=detect_width)
        runs = {v: [(f.boxes_xyxy, f.landmarks5) for f in (d.detect(x) for x in frames)] for v, d in opened.items()}
        ms = interleaved_ms({v.label: (lambda d=d: d.detect(frames[0])) for v, d in opened.items()}, repeats)
    finally:
        for d in opened.values():
            d.close()
    rows = []
    lim = LIMITS["face_detector"]
    for v in todo:
        fig = face_agreement(runs[ref_variant], runs[v])
        ok = fig["recall"] >= lim["recall_min"] and fig["landmark_error_iod_mean"] <= lim["landmark_error_iod_mean_max"]
        rows.append({"provider": v.provider, "precision": v.precision, "ms": round(ms[v.label], 2), "pass": bool(ok),
                     "figures": {k: round(x, 4) if isinstance(x, float) else x for k, x in fig.items()},
                     "file": model_file("face_detector", v.precision).name,
                     "summary": f"recall {fig['recall']:.3f}, landmarks {fig['landmark_error_iod_mean']:.4f} IOD"})
    return {"role": "face_detector", "frames": len(frames), "detect_width": detect_width, "rows": rows,
            "missing": missing}


def eval_embedder(chips_bgr: np.ndarray, providers: Sequence[str], threads: int = 1, repeats: int = 20,
                  chips_source: str = "") -> dict[str, Any]:
    from realtime.face.embedder import FaceEmbedder

    todo, missing = variants(providers, "face_embedder")
    ref_variant = Variant("cpu", "float")
    opened = {}
    try:
        for v in [ref_variant] + [v for v in todo if v != ref_variant]:
            model = OnnxModel(model_file("face_embedder", v.precision), options(v, threads),
                              expected_kind="face_embedder")
            opened[v] = FaceEmbedder(model)
        threshold = opened[ref_variant].match_threshold
        runs = {v: e.embed(chips_bgr) for v, e in opened.items()}
        batch = chips_bgr[:3]
        ms = interleaved_ms({v.label: (lambda e=e: e.embed(batch)) for v, e in opened.items()}, repeats)
    finally:
        for e in opened.values():
            e.close()
    rows = []
    lim = LIMITS["face_embedder"]
    for v in todo:
        fig = embedding_agreement(runs[ref_variant], runs[v], threshold)
        ok = fig["max_distance"] <= lim["max_distance"] and fig["decisions_flipped"] <= lim["decisions_flipped"]
        rows.append({"provider": v.provider, "precision": v.precision, "ms": round(ms[v.label], 2), "pass": bool(ok),
                     "figures": {k: round(x, 5) if isinstance(x, float) else x for k, x in fig.items()},
                     "file": model_file("face_embedder", v.precision).name,
                     "summary": f"max distance {fig['max_distance']:.4f}, {fig['decisions_flipped']} of "
                                f"{fig['pairs']} decisions flipped"})
    return {"role": "face_embedder", "chips": int(len(chips_bgr)), "chips_source": chips_source,
            "threshold": threshold, "ms_batch": int(len(batch)), "rows": rows, "missing": missing}


def eval_style(style_file: Path, frames_rgb: Sequence[np.ndarray], providers: Sequence[str], threads: int = 1,
               repeats: int = 10) -> dict[str, Any]:
    """``frames_rgb`` at the model's input size (a student's fixed size)."""
    from realtime.style.stage import StyleChoice, StyleTransfer, open_style_model, style_names

    todo, missing = variants(providers, "style")
    ref_variant = Variant("cpu", "float")
    opened = {}
    try:
        for v in [ref_variant] + [v for v in todo if v != ref_variant]:
            model = open_style_model(style_file, options(v, threads))
            teacher = model.contract.extra.get("role") == "teacher"
            opened[v] = StyleTransfer([StyleChoice(style_names(model)[0], model, 0 if teacher else None)],
                                      adaptive=False, stabilise=False)
        runs = {v: [t.paint_rgb(f) for f in frames_rgb] for v, t in opened.items()}
        ms = interleaved_ms({v.label: (lambda t=t: t.paint_rgb(frames_rgb[0])) for v, t in opened.items()}, repeats)
    finally:
        for t in opened.values():
            t.close()
    rows = []
    for v in todo:
        worst = min(psnr_db(a, b) for a, b in zip(runs[ref_variant], runs[v]))
        rows.append({"provider": v.provider, "precision": v.precision, "ms": round(ms[v.label], 2),
                     "pass": bool(worst >= LIMITS["style"]["psnr_db_min"]), "figures": {"min_psnr_db": round(worst, 2)},
                     "file": style_file.name, "summary": f"min PSNR {worst:.1f} dB"})
    return {"role": "style", "model": style_file.name, "frames": len(frames_rgb), "rows": rows, "missing": missing}


def style_students(zoo_dir: Path) -> list[tuple[Path, tuple[int, int]]]:
    """Shipped one-style students and their input size (w, h)."""
    out = []
    for path in sorted(Path(zoo_dir).glob("style_*.onnx")):
        with OnnxModel(path, RuntimeOptions(providers="cpu")) as model:
            if model.contract.kind == "style" and model.contract.extra.get("role") != "teacher":
                out.append((path, model.contract.input.working_size_wh()))
    return out


def format_table(report: dict[str, Any]) -> str:
    """One block per model: variant, ms, ratio to cpu/float, verdict, figures."""
    lines = []
    for block in report["models"]:
        rows = block["rows"]
        base = next((r["ms"] for r in rows if (r["provider"], r["precision"]) == ("cpu", "float")), None)
        lines.append(f"{block['role']}  (rule: {json_line(LIMITS[block['role']])})")
        lines.append(f"  {'provider/precision':<20}{'ms':>8}{'x cpu/float':>12}  verdict  figures")
        for r in rows:
            ratio = f"{base / r['ms']:.2f}x" if base and r["ms"] else "-"
            lines.append(f"  {r['provider'] + '/' + r['precision']:<20}{r['ms']:>8.2f}{ratio:>12}  "
                         f"{'pass' if r['pass'] else 'FAIL':<7}  {r['summary']}")
        for m in block.get("missing", []):
            lines.append(f"  (not measured) {m}")
    return "\n".join(lines)


def json_line(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())


def manifest_records(report: dict[str, Any], command: str) -> dict[str, list[dict[str, Any]]]:
    """Precision records to store under each float model's manifest entry (key: the float file name)."""
    cpu = report["cpu"]
    out: dict[str, list[dict[str, Any]]] = {}
    for block in report["models"]:
        key = ROLE_FILES.get(block["role"], {}).get("float") or block.get("model")
        for r in block["rows"]:
            out.setdefault(key, []).append({**r, "isa": cpu["isa"], "cpu": cpu["model"], "command": command,
                                            "measured": report["measured"]})
    return out


def merge_records(manifest: dict[str, Any], new: dict[str, list[dict[str, Any]]], rules: dict[str, str]
                  ) -> dict[str, Any]:
    """``manifest`` with ``new`` records replacing those of the same (provider, precision, CPU class)."""
    for key, records in new.items():
        entry = manifest.setdefault(key, {})
        block = entry.setdefault("precision", {})
        role = next((r for r, f in ROLE_FILES.items() if f.get("float") == key), "style")
        block["rule"] = rules.get(role, block.get("rule", ""))
        block["limits"] = LIMITS[role]
        fresh = {(r["provider"], r["precision"], r["isa"]) for r in records}
        block["records"] = [r for r in block.get("records", [])
                            if (r["provider"], r["precision"], r["isa"]) not in fresh] + records
    return manifest


RULES = {
    "detector": "AP@0.5 of the variant's detections (score > 0.01) against the float file on the CPU provider "
                "(score > 0.5) as ground truth, for person, car and truck (those with >= 20 reference boxes), each "
                ">= 0.99, on held-out street frames",
    "face_detector": "recall of the float detector's faces (IoU >= 0.5) >= 0.99 and mean landmark error <= 0.03 "
                     "inter-ocular distances",
    "face_embedder": "max descriptor distance to float <= 0.02 and no verification decision (all chip pairs at the "
                     "model's threshold) flipped",
    "style": "PSNR against float >= 35 dB on every held-out photo",
}
