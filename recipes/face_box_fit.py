"""Fit the face_recognition drop-in's box mapping: rtv's CenterFace faces -> the boxes dlib's detectors give.

``realtime.compat.face_recognition`` answers with boxes and descriptors close to what face_recognition 1.3.0 (dlib's
HOG detector, upsample 1, then dlib's 5-point predictor, chips and ResNet) gives on the same photo. This recipe
measures how close, on many faces, and fits the constants of that mapping. Three steps, three processes:

1. ``prepare`` (rtv's environment): photos with faces from several public sources, each photo also mirrored,
   shrunk, cropped and rotated, written as PNG files (lossless, so both libraries read the same pixels) with a
   manifest. The sources are measurement material only; nothing of them ships.
2. ``reference`` (a separate environment that has face_recognition 1.3.0 and dlib; never an rtv dependency): for
   every PNG, face_recognition's own answers (HOG boxes untrimmed, their 5 points and descriptors; with ``--cnn``
   also the CNN detector's boxes) into ``reference.npz``. Imports nothing of rtv.
3. ``fit`` (rtv's environment): runs rtv's face detector and shape predictor on the same PNGs, matches faces to
   dlib's boxes, fits the mapping (two linear least-squares stages, see below), and reports box IoU and
   descriptor distance against face_recognition's, on photos held out from the fit (two folds split by source
   photo: every variant of a photo falls in the same fold) and with the constants fitted on everything. Writes
   the figures as JSON.

The mapping (realtime.compat.face_recognition): stage 1 predicts dlib's square box (centre offset and log side,
in units of the CenterFace box width) linearly from the CenterFace box aspect and its 5 landmarks (normalised by
the box); dlib's shape predictor runs on that box; stage 2 predicts the box again, linearly from those 5 dlib points
(normalised by their centroid and spread). The predictor then runs on the stage-2 box: those points give the chip
and the descriptor, and that box is what ``face_locations`` returns.

Commands (as run for the figures in the module's comment)::

    python -m recipes.face_box_fit prepare --out /tmp/fbf --fr-photos FR_REPO --dlib-photos DLIB_REPO \
        --opencv-doc OPENCV_DOC_SHARE
    /path/to/dlib-venv/bin/python recipes/face_box_fit.py reference --images /tmp/fbf [--cnn]
    python -m recipes.face_box_fit fit --images /tmp/fbf --out /tmp/fbf/figures.json

``FR_REPO`` holds face_recognition's ``examples/`` and ``tests/test_images/`` (its GitHub repository),
``DLIB_REPO`` dlib's ``examples/faces`` and ``examples/johns``, ``OPENCV_DOC_SHARE`` Debian opencv-doc's
``usr/share``. scikit-image's and Matplotlib's sample photos come from the installed packages.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_SIDE = 1280
# opencv-doc photos that show real faces (the allow-list of recipes/face_cohort.py) and messi5.jpg.
OPENCV_DOC_PHOTOS = ("05.jpg", "06.jpg", "12.jpg", "2.jpg", "3.jpg", "227943776_1.jpg", "230501201_1.jpg",
                     "example.jpg", "face_swapped.jpg", "facereg.jpg", "imgs.jpg", "inpaint_basics.jpg",
                     "julia_facedetect_sample.jpg", "orig_comic.jpg", "fuzzy_filt_output.jpg",
                     "Basic_Linear_Transform_Tutorial_Result_big.jpg", "messi5.jpg")
MATCH_IOU = 0.3
RIDGE = 1e-3


# --- 1. prepare ------------------------------------------------------------------------------------------------------

def _photos(args) -> list[tuple[str, str, np.ndarray]]:
    """(group, name, RGB uint8) of every source photo, identical pixels once."""
    import cv2

    found: list[tuple[str, str, np.ndarray]] = []

    def add(group: str, name: str, rgb: np.ndarray) -> None:
        found.append((group, name, np.ascontiguousarray(rgb)))

    def read(path: Path) -> np.ndarray | None:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        return None if bgr is None else bgr[..., ::-1]

    if args.fr_photos:
        for path in sorted(Path(args.fr_photos).rglob("*")):
            if path.suffix.lower() in PHOTO_SUFFIXES and (rgb := read(path)) is not None:
                add("face_recognition", str(path.relative_to(args.fr_photos)), rgb)
    if args.dlib_photos:
        root = Path(args.dlib_photos)
        for path in sorted((root / "examples" / "faces").glob("*.jpg")):
            if path.name != "dogs.jpg" and (rgb := read(path)) is not None:
                add("dlib_faces", path.name, rgb)
        for path in sorted((root / "examples" / "johns").rglob("*.jpg")):
            if (rgb := read(path)) is not None:  # 150x150 crops of one face: upscaled 2x as a photo would show it
                add("dlib_johns", str(path.relative_to(root)), cv2.resize(rgb, None, fx=2, fy=2,
                                                                          interpolation=cv2.INTER_CUBIC))
    if args.opencv_doc:
        for name in OPENCV_DOC_PHOTOS:
            for path in sorted(Path(args.opencv_doc).rglob(name))[:1]:
                if (rgb := read(path)) is not None:
                    add("opencv_doc", name, rgb)
    import skimage

    data = Path(skimage.__file__).parent / "data"
    for name in ("astronaut.png", "camera.png"):
        bgr = cv2.imread(str(data / name), cv2.IMREAD_COLOR)
        add("skimage", name, bgr[..., ::-1])
    lfw = np.load(data / "lfw_subset.npy")[:100]  # the first 100 are faces (25x25 grey): a 10x10 grid, 4x up
    grid = np.full((10 * 130, 10 * 130), 128, np.uint8)
    for k, face in enumerate(lfw):
        up = cv2.resize((face * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC)
        r, c = divmod(k, 10)
        grid[r * 130 + 15:r * 130 + 115, c * 130 + 15:c * 130 + 115] = up
    add("skimage", "lfw_subset_grid", np.repeat(grid[..., None], 3, axis=2))
    try:
        import matplotlib

        path = Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"
        if (rgb := read(path)) is not None:
            add("matplotlib", "grace_hopper.jpg", rgb)
    except ImportError:
        pass
    seen, unique = set(), []
    for group, name, rgb in found:
        key = hashlib.sha256(rgb.tobytes() + str(rgb.shape).encode()).hexdigest()
        if key not in seen:
            seen.add(key)
            unique.append((group, name, rgb))
    return unique


def _variants(rgb: np.ndarray, rng: np.random.Generator, many: bool) -> list[tuple[str, np.ndarray]]:
    """The photo (at most MAX_SIDE) and, when ``many``, mirrored, shrunk, cropped and rotated copies."""
    import cv2

    h, w = rgb.shape[:2]
    if max(h, w) > MAX_SIDE:
        f = MAX_SIDE / max(h, w)
        rgb = cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
        h, w = rgb.shape[:2]
    out = [("orig", rgb)]
    if not many:
        return out + [("mirror", np.ascontiguousarray(rgb[:, ::-1]))]
    out.append(("mirror", np.ascontiguousarray(rgb[:, ::-1])))
    f = float(rng.uniform(0.5, 0.75))
    out.append((f"x{f:.2f}", cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)))
    f = float(rng.uniform(1.2, 1.5))
    if max(h, w) * f <= 1.3 * MAX_SIDE:
        out.append((f"x{f:.2f}", cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_LINEAR)))
    cw, ch = round(w * rng.uniform(0.75, 0.9)), round(h * rng.uniform(0.75, 0.9))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    out.append((f"crop{x0}_{y0}", np.ascontiguousarray(rgb[y0:y0 + ch, x0:x0 + cw])))
    angle = float(rng.choice([-1, 1]) * rng.uniform(4, 12))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    out.append((f"rot{angle:+.1f}", cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR,
                                                   borderMode=cv2.BORDER_REFLECT)))
    return out


def cmd_prepare(args) -> int:
    import cv2

    out = Path(args.out)
    (out / "png").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    manifest = []
    for group, name, rgb in _photos(args):
        for variant, image in _variants(rgb, rng, many=group != "dlib_johns"):
            key = f"{len(manifest):04d}"
            cv2.imwrite(str(out / "png" / f"{key}.png"), image[..., ::-1])
            manifest.append({"file": f"png/{key}.png", "group": group, "photo": f"{group}/{name}",
                             "variant": variant, "size": [int(image.shape[1]), int(image.shape[0])]})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    groups = {}
    for m in manifest:
        groups[m["group"]] = groups.get(m["group"], 0) + 1
    print(f"{len(manifest)} images from {len({m['photo'] for m in manifest})} photos: {groups}")
    return 0


# --- 2. reference (face_recognition's environment) ----------------------------------------------------------------

def _cnn_checked(item: dict, args) -> bool:
    """Whether the (slow) CNN detector runs on this image: photos themselves and their mirror images only, up to
    ``--cnn-max-side``."""
    return max(item["size"]) <= args.cnn_max_side and item["variant"] in ("orig", "mirror")


def cmd_reference(args) -> int:
    import face_recognition  # the measurement reference: never imported by rtv itself
    from face_recognition import api

    root = Path(args.images)
    manifest = json.loads((root / "manifest.json").read_text())
    rows: dict[str, list] = {k: [] for k in ("image", "box", "points", "descriptor")}
    cnn_rows: dict[str, list] = {"image": [], "box": []}
    seconds = 0.0
    for i, item in enumerate(manifest):
        image = face_recognition.load_image_file(str(root / item["file"]))
        t0 = time.perf_counter()
        rects = [] if args.cnn else api._raw_face_locations(image, 1, "hog")
        shapes = [api.pose_predictor_5_point(image, r) for r in rects]
        descriptors = [np.array(api.face_encoder.compute_face_descriptor(image, s, 1)) for s in shapes]
        seconds += time.perf_counter() - t0
        for r, s, d in zip(rects, shapes, descriptors):
            rows["image"].append(i)
            rows["box"].append([r.left(), r.top(), r.right(), r.bottom()])
            rows["points"].append([[p.x, p.y] for p in s.parts()])
            rows["descriptor"].append(d)
        if args.cnn and _cnn_checked(item, args):
            for det in api._raw_face_locations(image, 1, "cnn"):
                r = det.rect
                cnn_rows["image"].append(i)
                cnn_rows["box"].append([r.left(), r.top(), r.right(), r.bottom()])
        if i % 20 == 0:
            print(f"{i}/{len(manifest)} images, {len(rows['image'])} faces", flush=True)
    import dlib

    np.savez_compressed(
        root / ("reference_cnn.npz" if args.cnn else "reference.npz"),
        image=np.array(rows["image"], np.int64), box_ltrb=np.array(rows["box"], np.int64).reshape(-1, 4),
        points5=np.array(rows["points"], np.int64).reshape(-1, 5, 2),
        descriptor=np.array(rows["descriptor"], np.float64).reshape(-1, 128),
        cnn_image=np.array(cnn_rows["image"], np.int64), cnn_box_ltrb=np.array(cnn_rows["box"], np.int64).reshape(-1, 4),
        cnn_checked=np.array([_cnn_checked(m, args) for m in manifest]) if args.cnn else np.zeros(0, bool),
        dlib_version=np.array(dlib.__version__), seconds=np.array(seconds))
    print(f"{len(rows['image'])} HOG faces in {len(manifest)} images; dlib {dlib.__version__}; "
          f"{seconds / max(len(manifest), 1):.2f} s per image")
    return 0


# --- 3. fit ---------------------------------------------------------------------------------------------------------

def box_iou_ltrb(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of dlib inclusive rectangles, (N, 4) each, pairwise by row."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 1, 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 1, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0] + 1) * (r[:, 3] - r[:, 1] + 1)  # noqa: E731
    inter = w * h
    return inter / (area(a) + area(b) - inter)


def _match(dlib_ltrb: np.ndarray, cf_xyxy: np.ndarray) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs (dlib index, CenterFace index) with IoU >= MATCH_IOU."""
    if len(dlib_ltrb) == 0 or len(cf_xyxy) == 0:
        return []
    cf = np.asarray(cf_xyxy, np.float64)
    iou = np.zeros((len(dlib_ltrb), len(cf)))
    for i, d in enumerate(dlib_ltrb):
        iou[i] = box_iou_ltrb(np.repeat(d[None].astype(np.float64), len(cf), 0), cf - [0, 0, 1, 1])
    pairs = []
    while True:
        i, j = np.unravel_index(np.argmax(iou), iou.shape)
        if iou[i, j] < MATCH_IOU:
            return pairs
        pairs.append((int(i), int(j)))
        iou[i, :] = -1
        iou[:, j] = -1


def _lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ridge least squares (the intercept, column 0, unpenalised): coefficients (features, targets)."""
    penalty = RIDGE * len(x) * np.eye(x.shape[1])
    penalty[0, 0] = 0
    return np.linalg.solve(x.T @ x + penalty, x.T @ y)


def cmd_fit(args) -> int:
    import cv2

    from realtime.compat import face_recognition as frc
    from realtime.face.chip import dlib_face_chips

    root = Path(args.images)
    manifest = json.loads((root / "manifest.json").read_text())
    ref = np.load(root / "reference.npz")
    models = frc.models()
    detect_s, faces = 0.0, []  # one entry per dlib face that CenterFace also finds
    dlib_total, extra = 0, 0
    for i, item in enumerate(manifest):
        rgb = np.ascontiguousarray(cv2.imread(str(root / item["file"]), cv2.IMREAD_COLOR)[..., ::-1])
        t0 = time.perf_counter()
        det = models.detect(rgb, 1)
        detect_s += time.perf_counter() - t0
        rows = np.nonzero(ref["image"] == i)[0]
        dlib_total += len(rows)
        pairs = _match(ref["box_ltrb"][rows], det.boxes_xyxy)
        extra += len(det.boxes_xyxy) - len(pairs)
        for a, b in pairs:
            r = rows[a]
            faces.append({"image": i, "photo": item["photo"], "group": item["group"], "rgb": rgb,
                          "cf_box": det.boxes_xyxy[b].astype(np.float64), "cf_points": det.landmarks5[b].astype(np.float64),
                          "dlib_box": ref["box_ltrb"][r], "dlib_points": ref["points5"][r],
                          "dlib_desc": ref["descriptor"][r]})
        if i % 50 == 0:
            print(f"{i}/{len(manifest)} images, {len(faces)} matched faces", flush=True)
    print(f"matched {len(faces)} of {dlib_total} dlib faces; {extra} CenterFace faces dlib did not give")
    x1 = np.stack([frc.stage1_features(f["cf_box"][None], f["cf_points"][None])[0] for f in faces])
    y1 = np.stack([frc.stage1_targets(f["cf_box"][None], f["dlib_box"][None])[0] for f in faces])
    photos = sorted({f["photo"] for f in faces})
    fold_of = {p: int(hashlib.sha256(p.encode()).digest()[0] % 2) for p in photos}
    folds = np.array([fold_of[f["photo"]] for f in faces])
    predictor = models.predictor

    def points_on(boxes: np.ndarray) -> np.ndarray:
        return np.stack([predictor.predict(f["rgb"], b[None])[0] for f, b in zip(faces, boxes)])

    # rtv's port on dlib's own box, one box (no scaled copies): what is left when the box is right
    own_distance = np.array([np.linalg.norm(models.embedder.embed(dlib_face_chips(
        np.ascontiguousarray(f["rgb"][..., ::-1]), predictor.predict(f["rgb"], f["dlib_box"][None])))[0]
        - f["dlib_desc"]) for f in faces])

    def fit_on(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c1 = _lstsq(x1[mask], y1[mask])
        boxes1 = frc.stage1_boxes(np.stack([f["cf_box"] for f in faces]), np.stack([f["cf_points"] for f in faces]), c1)
        pts = points_on(boxes1)
        x2 = frc.stage2_features(pts)
        y2 = frc.stage2_targets(pts, np.stack([f["dlib_box"] for f in faces]))
        return c1, _lstsq(x2[mask], y2[mask])

    def evaluate(c1: np.ndarray, c2: np.ndarray, mask: np.ndarray) -> dict:
        idx = np.nonzero(mask)[0]
        cf_box = np.stack([faces[k]["cf_box"] for k in idx])
        cf_pts = np.stack([faces[k]["cf_points"] for k in idx])
        dl_box = np.stack([faces[k]["dlib_box"] for k in idx])
        boxes1 = frc.stage1_boxes(cf_box, cf_pts, c1)
        pts1 = np.stack([predictor.predict(faces[k]["rgb"], b[None])[0] for k, b in zip(idx, boxes1)])
        boxes2 = frc.stage2_boxes(pts1, c2)
        desc = []
        for k, b in zip(idx, boxes2):
            desc.append(models.encode(faces[k]["rgb"], b[None])[0])
        dl = np.stack([faces[k]["dlib_desc"] for k in idx])
        dist = np.linalg.norm(np.stack(desc) - dl, axis=1)
        own_dist = own_distance[idx]
        iou1, iou2 = box_iou_ltrb(boxes1, dl_box), box_iou_ltrb(boxes2, dl_box)
        side = dl_box[:, 2] - dl_box[:, 0] + 1
        worst = int(np.argmax(dist))
        groups = {}
        for g in sorted({faces[k]["group"] for k in idx}):
            gm = np.array([faces[k]["group"] == g for k in idx])
            groups[g] = {"faces": int(gm.sum()), "desc_mean": round(float(dist[gm].mean()), 4),
                         "desc_max": round(float(dist[gm].max()), 4), "iou_mean": round(float(iou2[gm].mean()), 4)}
        return {"faces": int(len(idx)), "photos": len({faces[k]["photo"] for k in idx}),
                "iou_stage1_mean": round(float(iou1.mean()), 4), "iou_mean": round(float(iou2.mean()), 4),
                "iou_median": round(float(np.median(iou2)), 4), "iou_min": round(float(iou2.min()), 4),
                "iou_p05": round(float(np.percentile(iou2, 5)), 4),
                "desc_mean": round(float(dist.mean()), 4), "desc_median": round(float(np.median(dist)), 4),
                "desc_p95": round(float(np.percentile(dist, 95)), 4), "desc_max": round(float(dist.max()), 4),
                "desc_over_0.15": int((dist > 0.15).sum()),
                "worst": {"photo": faces[idx[worst]]["photo"], "image": manifest[faces[idx[worst]]["image"]]["file"],
                          "dlib_side_px": int(side[worst]), "iou": round(float(iou2[worst]), 4),
                          "distance": round(float(dist[worst]), 4)},
                "rtv_on_dlib_box": {"desc_mean": round(float(own_dist.mean()), 6),
                                    "desc_max": round(float(own_dist.max()), 6)},
                "groups": groups}

    report = {"images": len(manifest), "photos": len({m["photo"] for m in manifest}), "dlib_faces": dlib_total,
              "matched_faces": len(faces), "centerface_extra_faces": extra,
              "dlib_version": str(ref["dlib_version"]), "dlib_seconds_per_image": float(ref["seconds"]) / len(manifest),
              "rtv_detect_seconds_per_image": detect_s / len(manifest)}
    held_out = []
    for fold in (0, 1):
        c1, c2 = fit_on(folds != fold)
        held_out.append(evaluate(c1, c2, folds == fold))
    report["held_out"] = held_out
    c1, c2 = fit_on(np.ones(len(faces), bool))
    report["fit_all"] = evaluate(c1, c2, np.ones(len(faces), bool))
    if not (np.allclose(c1, frc.STAGE1_COEF, atol=1e-4) and np.allclose(c2, frc.STAGE2_COEF, atol=1e-4)):
        report["shipped"] = evaluate(frc.STAGE1_COEF, frc.STAGE2_COEF, np.ones(len(faces), bool))
    report["stage1_coef"] = np.round(c1, 5).tolist()
    report["stage2_coef"] = np.round(c2, 5).tolist()
    text = json.dumps(report, indent=1)
    Path(args.out).write_text(text)
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.face_box_fit", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare", help="write the photos and their variants as PNG files with a manifest")
    p.add_argument("--out", required=True)
    p.add_argument("--fr-photos", help="face_recognition's repository (examples/, tests/test_images/)")
    p.add_argument("--dlib-photos", help="dlib's repository (examples/faces, examples/johns)")
    p.add_argument("--opencv-doc", help="Debian opencv-doc's usr/share")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_prepare)
    p = sub.add_parser("reference", help="face_recognition's answers (run with its environment's python)")
    p.add_argument("--images", required=True)
    p.add_argument("--cnn", action="store_true", help="the CNN detector's boxes instead (slow on a CPU)")
    p.add_argument("--cnn-max-side", type=int, default=800)
    p.set_defaults(func=cmd_reference)
    p = sub.add_parser("fit", help="fit the mapping and write the figures")
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_fit)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
