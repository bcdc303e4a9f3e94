"""INT8 variants of the face models, calibrated and measured on separate registry photos.

CenterFace: calibrated on scikit-image's photos (astronaut, cameraman, coffee, cat, rocket; scaled, mirrored,
darker) and OpenCV's sample images without faces; measured on the photos of PyPI ``face_recognition`` 1.3.0's
``tests/test_images`` (Obama, Biden), OpenCV's ``messi5.jpg`` and mosaics of scikit-image's LFW faces, none used
for calibration: recall and precision of the INT8 faces against the float faces (IoU >= 0.5), landmark error in
pixels and in inter-ocular distances, score differences.

dlib embedder: calibrated on chips aligned (float CenterFace + our alignment) from the face_recognition photos,
OpenCV's messi5 and upscaled LFW faces, plus non-face crops of OpenCV sample images; measured on dlib's own chips
of the astronaut and the cameraman in ``tests/data/reference`` (never used for calibration): descriptor distance
to the float model (and to dlib's descriptors) and every same/different verification decision at the match
threshold, float against INT8.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from realtime.errors import ExportError

FACE_RECOGNITION = "face_recognition==1.3.0"
OPENCV_DOC = "opencv-doc"
CALIBRATION_OPENCV = ("baboon.jpg", "home.jpg", "fruits.jpg", "building.jpg", "HappyFish.jpg", "stuff.jpg",
                      "aero3.jpg", "orange.jpg")
HELDOUT_FACE_RECOGNITION = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "obama_partial_face.jpg",
                            "obama_partial_face2.jpg")


def media_cache() -> Path:
    return Path.home() / ".cache" / "rtv" / "registry" / "media"


def _run(cmd: list[str], cwd: Path) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()
        raise ExportError(f"{' '.join(cmd)} failed: {tail[-1] if tail else 'no output'}")


def registry_media(cache: Path | None = None) -> dict[str, Path]:
    """Folders of the registry photos used here, fetched once with the registries' own clients:
    ``face_recognition`` (PyPI sdist, ``pip download --no-deps --no-binary :all:``; MIT) and ``opencv_data``
    (Debian ``opencv-doc``, ``apt-get download`` then ``dpkg -x``; Apache-2.0/BSD-3-Clause)."""
    cache = cache or media_cache()
    cache.mkdir(parents=True, exist_ok=True)
    fr_dir = cache / "face_recognition_test_images"
    if not fr_dir.is_dir():
        sdists = sorted(cache.glob("face_recognition-*.tar.gz"))
        if not sdists:
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d",
                  str(cache), FACE_RECOGNITION], cache)
            sdists = sorted(cache.glob("face_recognition-*.tar.gz"))
        with tarfile.open(sdists[0]) as tar:
            tmp = cache / "fr_tmp"
            members = [m for m in tar.getmembers() if m.isfile() and "/tests/test_images/" in m.name]
            tar.extractall(tmp, members=members, filter="data")
        found = next(tmp.rglob("test_images"))
        found.rename(fr_dir)
    ocv_dir = cache / "opencv_data"
    if not ocv_dir.is_dir():
        debs = sorted(cache.glob(f"{OPENCV_DOC}_*.deb"))
        if not debs:
            _run(["apt-get", "download", OPENCV_DOC], cache)
            debs = sorted(cache.glob(f"{OPENCV_DOC}_*.deb"))
        tmp = cache / "ocv_tmp"
        _run(["dpkg", "-x", str(debs[0]), str(tmp)], cache)
        (tmp / "usr/share/doc/opencv-doc/examples/data").rename(ocv_dir)
    return {"face_recognition": fr_dir, "opencv_data": ocv_dir}


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ExportError(f"cannot read {path}")
    return image


def _fit(image: np.ndarray, max_side: int = 640) -> np.ndarray:
    scale = max_side / max(image.shape[:2])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image


def _variants(image: np.ndarray) -> list[np.ndarray]:
    """The image, mirrored, at 60%, and darker (uint8 BGR each)."""
    small = cv2.resize(image, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    dark = np.clip(image.astype(np.float32) * 0.6, 0, 255).astype(np.uint8)
    return [image, np.ascontiguousarray(image[:, ::-1]), small, dark]


def calibration_frames(media: dict[str, Path]) -> list[np.ndarray]:
    """CenterFace calibration frames: scikit-image photos and OpenCV samples (no measurement photo among them)."""
    from realtime.samples.clips import _photos

    frames = []
    for photo in _photos().values():
        frames += _variants(_fit(photo))
    for name in CALIBRATION_OPENCV:
        frames.append(_fit(_read(media["opencv_data"] / name)))
    return frames


def lfw_mosaics(count: int = 10, per_frame: int = 10, seed: int = 0) -> list[np.ndarray]:
    """``count`` 640x480 grey frames, each with ``per_frame`` of scikit-image's LFW faces (25x25 crops) enlarged
    to 48-110 px at random non-overlapping places."""
    from skimage import data

    faces = (np.asarray(data.lfw_subset())[:100] * 255).astype(np.uint8)
    rng = np.random.default_rng(seed)
    frames = []
    k = 0
    for _ in range(count):
        frame = np.full((480, 640), 128, np.uint8)
        cols, rows = 5, 2
        for j in range(per_frame):
            size = int(rng.integers(48, 111))
            cx = (j % cols) * 128 + int(rng.integers(0, 128 - size + 1))
            cy = (j // cols % rows) * 240 + int(rng.integers(0, 240 - size + 1))
            frame[cy:cy + size, cx:cx + size] = cv2.resize(faces[k % 100], (size, size),
                                                           interpolation=cv2.INTER_CUBIC)
            k += 1
        frames.append(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    return frames


def heldout_face_frames(media: dict[str, Path]) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 BGR frame) pairs for measuring CenterFace: never used for calibration."""
    out = []
    for name in HELDOUT_FACE_RECOGNITION:
        image = _fit(_read(media["face_recognition"] / name))
        for v, frame in zip(("", "_mirror", "_small", "_dark"), _variants(image)):
            out.append((f"{name}{v}", frame))
    messi = _read(media["opencv_data"] / "messi5.jpg")
    out += [("messi5.jpg", messi), ("messi5.jpg_x2", cv2.resize(messi, None, fx=2, fy=2))]
    out += [(f"lfw_mosaic{i}", f) for i, f in enumerate(lfw_mosaics())]
    return out


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of float (N, 4) and (M, 4) xyxy boxes -> (N, M)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def compare_faces(reference, candidate, iou: float = 0.5) -> dict[str, Any]:
    """Greedy one-to-one matching of ``candidate`` faces to ``reference`` faces (both :class:`realtime.types.FaceDetections`)."""
    m = _box_iou(reference.boxes_xyxy, candidate.boxes_xyxy)
    pairs = []
    while m.size and m.max() >= iou:
        i, j = np.unravel_index(int(np.argmax(m)), m.shape)
        pairs.append((i, j, float(m[i, j])))
        m[i, :] = -1
        m[:, j] = -1
    lm_px, lm_iod, score_diff = [], [], []
    for i, j, _ in pairs:
        ref, cand = reference.landmarks5[i], candidate.landmarks5[j]
        err = np.linalg.norm(ref - cand, axis=1).max()
        iod = max(float(np.linalg.norm(ref[0] - ref[1])), 1.0)
        lm_px.append(float(err))
        lm_iod.append(float(err / iod))
        score_diff.append(abs(float(reference.scores[i]) - float(candidate.scores[j])))
    return {"reference": len(reference), "candidate": len(candidate), "matched": len(pairs),
            "ious": [p[2] for p in pairs], "landmark_px": lm_px, "landmark_iod": lm_iod, "score_diff": score_diff}


def _time_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(times))


def measure_face_detector(float_path: Path, int8_path: Path, frames: list[tuple[str, np.ndarray]],
                          detect_widths: tuple[int, ...] = (320, 640), repeats: int = 30) -> dict[str, Any]:
    """INT8 CenterFace against float CenterFace on ``frames`` at each detect width (score threshold 0.5)."""
    from realtime.face.detector import FaceDetector
    from realtime.runtime import OnnxModel, RuntimeOptions

    options = RuntimeOptions(providers="cpu", intra_op_threads=1)
    report: dict[str, Any] = {"frames": len(frames), "score_threshold": 0.5, "iou_match": 0.5, "by_width": {}}
    for width in detect_widths:
        detectors = [FaceDetector(OnnxModel(p, options, expected_kind="face_detector"), detect_width=width,
                                  score_threshold=0.5, iou_threshold=0.4) for p in (float_path, int8_path)]
        try:
            totals = {"reference": 0, "candidate": 0, "matched": 0}
            ious, lm_px, lm_iod, sdiff = [], [], [], []
            for _name, frame in frames:
                c = compare_faces(detectors[0].detect(frame), detectors[1].detect(frame))
                for k in totals:
                    totals[k] += c[k]
                ious += c["ious"]
                lm_px += c["landmark_px"]
                lm_iod += c["landmark_iod"]
                sdiff += c["score_diff"]
            bench = cv2.resize(frames[0][1], (640, 480))
            speed = [_time_ms(lambda d=d: d.detect(bench), repeats) for d in detectors]
        finally:
            for d in detectors:
                d.close()
        report["by_width"][str(width)] = {
            "float_faces": totals["reference"], "int8_faces": totals["candidate"], "matched": totals["matched"],
            "recall_vs_float": round(totals["matched"] / max(totals["reference"], 1), 4),
            "precision_vs_float": round(totals["matched"] / max(totals["candidate"], 1), 4),
            "min_iou": round(min(ious), 4) if ious else None,
            "mean_iou": round(float(np.mean(ious)), 4) if ious else None,
            "landmark_error_px": {"mean": round(float(np.mean(lm_px)), 3), "max": round(max(lm_px), 3)}
            if lm_px else None,
            "landmark_error_iod": {"mean": round(float(np.mean(lm_iod)), 4), "max": round(max(lm_iod), 4)}
            if lm_iod else None,
            "score_abs_diff": {"mean": round(float(np.mean(sdiff)), 4), "max": round(max(sdiff), 4)}
            if sdiff else None,
            "ms_640x480_one_thread": {"float": round(speed[0], 2), "int8": round(speed[1], 2),
                                      "speedup": round(speed[0] / speed[1], 2)},
        }
    return report


def embedder_calibration_chips(media: dict[str, Path], float_detector_path: Path,
                                float_embedder_path: Path | None = None) -> np.ndarray:
    """uint8 (N, 150, 150, 3) BGR chips for calibrating the embedder: faces of the face_recognition photos,
    messi5 and LFW found by float CenterFace and cut the way the runtime cuts them for ``float_embedder_path``
    (its contract's alignment: dlib's 5 points or the template), plus non-face crops of OpenCV samples."""
    import dataclasses

    from realtime.config import FacesConfig, RuntimeConfig
    from realtime.face.align import align_faces
    from realtime.face.detector import FaceDetector
    from realtime.runtime import OnnxModel, RuntimeOptions
    from realtime.zoo import open_face_embedder

    embedder = None
    if float_embedder_path is not None:
        embedder = open_face_embedder(dataclasses.replace(FacesConfig(), embedder_model=str(float_embedder_path)),
                                      RuntimeConfig(providers="cpu", workers=1, intra_op_threads=1))

    images = [_read(media["face_recognition"] / n) for n in HELDOUT_FACE_RECOGNITION]
    images.append(_read(media["opencv_data"] / "messi5.jpg"))
    images += lfw_mosaics(count=4, seed=1)
    chips = []
    try:
        with OnnxModel(float_detector_path, RuntimeOptions(providers="cpu", intra_op_threads=1)) as model:
            detector = FaceDetector(model, detect_width=640, score_threshold=0.5)
            for image in images:
                for variant in _variants(_fit(image, 1024))[:2]:
                    faces = detector.detect(variant)
                    if len(faces):
                        if embedder is not None:
                            chips += list(embedder.align(variant, faces.boxes_xyxy, faces.landmarks5)[0])
                        else:
                            chips += list(align_faces(variant, faces.landmarks5))
    finally:
        if embedder is not None:
            embedder.close()
    rng = np.random.default_rng(0)
    for name in CALIBRATION_OPENCV[:4]:
        image = _read(media["opencv_data"] / name)
        for _ in range(2):
            s = int(rng.integers(80, min(image.shape[:2])))
            y, x = int(rng.integers(0, image.shape[0] - s + 1)), int(rng.integers(0, image.shape[1] - s + 1))
            chips.append(cv2.resize(image[y:y + s, x:x + s], (150, 150), interpolation=cv2.INTER_AREA))
    return np.stack(chips)


def reference_chips(reference_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """dlib's own chips (BGR uint8 (N, 150, 150, 3)), their identities (N,), dlib's descriptors (N, 128) and the
    non-face chips (M, 150, 150, 3) from both reference files."""
    face = np.load(reference_dir / "dlib_face_reference.npz", allow_pickle=False)
    shape5 = np.load(reference_dir / "dlib_shape5_reference.npz", allow_pickle=False)
    chips = np.concatenate([face["chips"], shape5["chips"]])[..., ::-1]
    names = [str(n).split("/")[0] for n in face["names"]]
    names += [str(shape5["image_names"][i]).split("/")[0] for i in shape5["box_image"]]
    descriptors = np.concatenate([face["descriptors"], shape5["descriptors"]])
    return (np.ascontiguousarray(chips), np.asarray(names), descriptors.astype(np.float32),
            np.ascontiguousarray(face["noface_chips"][..., ::-1]))


def measure_embedder(float_path: Path, int8_path: Path, reference_dir: Path, threshold: float = 0.6,
                     repeats: int = 20) -> dict[str, Any]:
    """INT8 embedder against float on dlib's reference chips: descriptor distances and verification decisions."""
    from realtime.face.embedder import FaceEmbedder
    from realtime.runtime import OnnxModel, RuntimeOptions

    chips, names, dlib_desc, noface = reference_chips(reference_dir)
    options = RuntimeOptions(providers="cpu", intra_op_threads=1)
    embedders = [FaceEmbedder(OnnxModel(p, options, expected_kind="face_embedder")) for p in (float_path, int8_path)]
    try:
        desc = [np.concatenate([e.embed(chips[i:i + 16]) for i in range(0, len(chips), 16)]) for e in embedders]
        nof = [e.embed(noface) for e in embedders]
        speed = [_time_ms(lambda e=e: e.embed(chips[:3]), repeats) for e in embedders]
    finally:
        for e in embedders:
            e.close()
    to_float = np.linalg.norm(desc[0] - desc[1], axis=1)
    same = names[:, None] == names[None, :]
    iu = np.triu_indices(len(names), 1)
    decisions = []
    for d in desc:
        dist = np.linalg.norm(d[:, None, :] - d[None, :, :], axis=2)[iu]
        decisions.append(dist < threshold)
    truth = same[iu]
    return {
        "chips": int(len(chips)), "identities": sorted(set(names.tolist())), "pairs": int(len(truth)),
        "match_threshold": threshold,
        "int8_to_float_distance": {"mean": round(float(to_float.mean()), 4), "max": round(float(to_float.max()), 4)},
        "noface_int8_to_float_distance_max": round(float(np.linalg.norm(nof[0] - nof[1], axis=1).max()), 4),
        "to_dlib_distance_max": {"float": round(float(np.linalg.norm(desc[0] - dlib_desc, axis=1).max()), 4),
                                 "int8": round(float(np.linalg.norm(desc[1] - dlib_desc, axis=1).max()), 4)},
        "verification_decisions_changed": int((decisions[0] != decisions[1]).sum()),
        "verification_accuracy": {"float": round(float((decisions[0] == truth).mean()), 4),
                                  "int8": round(float((decisions[1] == truth).mean()), 4)},
        "ms_batch3_one_thread": {"float": round(speed[0], 2), "int8": round(speed[1], 2),
                                 "speedup": round(speed[0] / speed[1], 2)},
    }


def detector_inputs(float_path: Path, frames: list[np.ndarray], detect_widths: tuple[int, ...] = (320, 640)
                    ) -> list[np.ndarray]:
    """Each frame as CenterFace's runtime input (letterboxed at each detect width): float32 (1, 3, H, W) each."""
    from realtime.face.detector import working_size_wh
    from realtime.preprocess import letterbox, to_input_nchw
    from realtime.runtime import OnnxModel, RuntimeOptions

    with OnnxModel(float_path, RuntimeOptions(providers="cpu", intra_op_threads=1)) as model:
        spec = model.contract.input
    out = []
    for frame in frames:
        for width in detect_widths:
            size = working_size_wh((frame.shape[1], frame.shape[0]), width, spec.size_multiple)
            image, _ = letterbox(frame, size, pad_value=0, center=False)
            out.append(to_input_nchw([image], spec))
    return out


def embedder_inputs(float_path: Path, chips_bgr: np.ndarray, batch: int = 8) -> list[np.ndarray]:
    """Chips as the embedder's runtime input, in batches: float32 (B, 3, 150, 150) each."""
    from realtime.preprocess import to_input_nchw
    from realtime.runtime import OnnxModel, RuntimeOptions

    with OnnxModel(float_path, RuntimeOptions(providers="cpu", intra_op_threads=1)) as model:
        spec = model.contract.input
    return [to_input_nchw(chips_bgr[i:i + batch], spec) for i in range(0, len(chips_bgr), batch)]


CENTERFACE_HEAD = ("/head/feat/conv/Conv", "/head/pos_conv/Conv", "/head/Sigmoid", "/head/reg_conv/Conv",
                   "/head/off_conv/Conv", "/head/lm_conv/Conv")


def build_int8_face_detector(float_path: Path, out_path: Path, media: dict[str, Path],
                             method: str = "minmax", float_head: bool = True) -> dict[str, Any]:
    """Quantise CenterFace on :func:`calibration_frames` and measure it on :func:`heldout_face_frames`."""
    from export.qdq import quantize_qdq

    calibration = calibration_frames(media)
    info = quantize_qdq(float_path, out_path, detector_inputs(float_path, calibration), method=method,
                        float_nodes=CENTERFACE_HEAD if float_head else (), note={"calibration_data": "scikit-image astronaut, camera, coffee, chelsea, rocket (as is, "
                              "mirrored, 60%, darker) and opencv-doc " + ", ".join(CALIBRATION_OPENCV) +
                              "; letterboxed at detect widths 320 and 640"})
    measured = measure_face_detector(float_path, out_path, heldout_face_frames(media))
    measured["heldout_data"] = ("face_recognition 1.3.0 tests/test_images " + ", ".join(HELDOUT_FACE_RECOGNITION)
                                + " (as is, mirrored, 60%, darker), opencv-doc messi5.jpg (1x, 2x), 10 mosaics "
                                "of 10 scikit-image LFW faces each at 48-110 px")
    return {"quantization": info, "accuracy_vs_float": measured}


def build_int8_embedder(float_path: Path, out_path: Path, media: dict[str, Path], detector_path: Path,
                        reference_dir: Path, method: str = "minmax") -> dict[str, Any]:
    """Quantise the dlib embedder on :func:`embedder_calibration_chips`, measure on the reference chips."""
    from export.qdq import quantize_qdq

    chips = embedder_calibration_chips(media, detector_path, float_path)
    info = quantize_qdq(float_path, out_path, embedder_inputs(float_path, chips), method=method,
                        note={"calibration_data": f"{len(chips)} chips: faces of face_recognition 1.3.0 "
                              "test_images, opencv-doc messi5.jpg and 40 scikit-image LFW faces found by float "
                              "CenterFace (as is and mirrored) and cut as the runtime cuts them for this model "
                              "(its contract's alignment), 8 non-face crops of opencv-doc samples"})
    measured = measure_embedder(float_path, out_path, reference_dir)
    measured["heldout_data"] = ("dlib's own chips of scikit-image astronaut and camera variants in "
                                "tests/data/reference/dlib_face_reference.npz and dlib_shape5_reference.npz")
    return {"quantization": info, "accuracy_vs_float": measured}


# What "a small accuracy cost" means here, decided before measuring (the file ships only when it holds):
FACE_DETECTOR_LIMITS = {"recall_vs_float_min": 0.99, "precision_vs_float_min": 0.99, "landmark_error_iod_mean_max": 0.03}
EMBEDDER_LIMITS = {"int8_to_float_distance_max": 0.06, "verification_decisions_changed_fraction_max": 0.001}


def face_detector_holds(measured: dict[str, Any]) -> tuple[bool, str]:
    """Whether INT8 CenterFace keeps :data:`FACE_DETECTOR_LIMITS` at the default detect width (320)."""
    at = measured["by_width"]["320"]
    lim = FACE_DETECTOR_LIMITS
    failures = []
    if at["recall_vs_float"] < lim["recall_vs_float_min"]:
        failures.append(f"recall vs float {at['recall_vs_float']:.3f} < {lim['recall_vs_float_min']}")
    if at["precision_vs_float"] < lim["precision_vs_float_min"]:
        failures.append(f"precision vs float {at['precision_vs_float']:.3f} < {lim['precision_vs_float_min']}")
    lm = (at["landmark_error_iod"] or {}).get("mean", 0.0)
    if lm > lim["landmark_error_iod_mean_max"]:
        failures.append(f"mean landmark error {lm:.3f} inter-ocular distances > {lim['landmark_error_iod_mean_max']}")
    return (not failures, "; ".join(failures) or "within limits")


def embedder_holds(measured: dict[str, Any]) -> tuple[bool, str]:
    """Whether the INT8 embedder keeps :data:`EMBEDDER_LIMITS` on the reference chips."""
    lim = EMBEDDER_LIMITS
    failures = []
    worst = measured["int8_to_float_distance"]["max"]
    if worst > lim["int8_to_float_distance_max"]:
        failures.append(f"max distance to float {worst:.3f} > {lim['int8_to_float_distance_max']}")
    changed = measured["verification_decisions_changed"] / max(measured["pairs"], 1)
    if changed > lim["verification_decisions_changed_fraction_max"]:
        failures.append(f"{measured['verification_decisions_changed']} of {measured['pairs']} verification "
                        f"decisions changed (> {lim['verification_decisions_changed_fraction_max']:.1%})")
    return (not failures, "; ".join(failures) or "within limits")
