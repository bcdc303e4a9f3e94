"""Detection data in the common YOLO text format, augmentation, and a synthetic data set generator.

A data YAML names the image folders and classes::

    path: .            # root, relative to this file (optional)
    train: images/train
    val: images/val
    names: [person, face]   # or {0: person, 1: face}

Each image ``.../images/<split>/x.jpg`` has a label file ``.../labels/<split>/x.txt`` (the last ``images`` folder
in the path swapped for ``labels``) with one ``class cx cy w h`` line per box, normalised to [0, 1]. A missing label
file means "no objects". Images are fed to the network letterboxed, RGB, scaled to [0, 1] (the contract's
normalisation), and targets are ``class, cx, cy, w, h`` in network pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import yaml

from realtime.errors import DataError
from realtime.media import IMAGE_SUFFIXES

PAD_VALUE = 114


@dataclass(frozen=True)
class DataSpec:
    """A parsed data YAML: absolute folders per split and the class names."""

    yaml_path: Path | None
    splits: dict[str, Path]
    names: tuple[str, ...]

    def folder(self, split: str) -> Path:
        if split not in self.splits:
            raise DataError(f"{self.yaml_path}: has no {split!r} split (has {sorted(self.splits)})")
        return self.splits[split]


def load_data_yaml(path: Path | str) -> DataSpec:
    """Parse and check a data YAML; :class:`DataError` names the file, key and folder that is wrong."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data YAML not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: must be a mapping with train, val and names")
    root = path.parent / str(data.get("path", "."))
    names = data.get("names")
    if isinstance(names, dict):
        try:
            names = [names[k] for k in sorted(names, key=int)]
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}: 'names' keys must be class indices 0..C-1") from exc
    if not isinstance(names, list) or not names:
        raise DataError(f"{path}: 'names' must be a non-empty list of class names")
    if "nc" in data and int(data["nc"]) != len(names):
        raise DataError(f"{path}: nc={data['nc']} but {len(names)} names are given")
    splits = {}
    for key in ("train", "val", "test"):
        if key not in data:
            if key in ("train", "val"):
                raise DataError(f"{path}: missing key {key!r} (a folder of images)")
            continue
        folder = (root / str(data[key])).resolve()
        if not folder.is_dir():
            raise DataError(f"{path}: {key} folder {folder} does not exist; fix '{key}:' or 'path:' in the YAML")
        splits[key] = folder
    return DataSpec(yaml_path=path, splits=splits, names=tuple(str(n) for n in names))


def list_images(folder: Path | str) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted. :class:`DataError` when the folder is missing or empty."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return images


def label_path(image_path: Path | str) -> Path:
    """``.../images/a/b.jpg`` -> ``.../labels/a/b.txt`` (last ``images`` part); else ``b.txt`` beside the image."""
    p = Path(image_path)
    parts = list(p.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return p.with_suffix(".txt")


def read_labels(path: Path | str, num_classes: int) -> np.ndarray:
    """Read one YOLO label file -> float32 (M, 5) rows ``class, cx, cy, w, h`` (normalised).

    A missing file gives (0, 5). A malformed line raises :class:`DataError` naming the file and the line number.
    """
    path = Path(path)
    if not path.is_file():
        return np.zeros((0, 5), np.float32)
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        fields = text.split()
        where = f"{path}:{lineno}"
        if len(fields) != 5:
            raise DataError(f"{where}: expected 'class cx cy w h' (5 fields), got {len(fields)}: {text!r}")
        try:
            cls = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError as exc:
            raise DataError(f"{where}: not numbers: {text!r}") from exc
        if not 0 <= cls < num_classes:
            raise DataError(f"{where}: class {cls} is outside 0..{num_classes - 1}")
        values = (cx, cy, w, h)
        if not all(math.isfinite(v) for v in values) or not (0 <= cx <= 1 and 0 <= cy <= 1 and 0 < w <= 1
                                                                 and 0 < h <= 1):
            raise DataError(f"{where}: box {values} must be normalised: 0 <= cx, cy <= 1 and 0 < w, h <= 1")
        rows.append((cls, cx, cy, w, h))
    return np.asarray(rows, np.float32).reshape(-1, 5)


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: cannot be read as an image")
    return image


# --- geometry -------------------------------------------------------------------------------------------------


def labels_to_xyxy(labels: np.ndarray, w: int, h: int) -> np.ndarray:
    """Normalised ``class, cx, cy, w, h`` (M, 5) -> ``class, x1, y1, x2, y2`` (M, 5) in pixels of a w x h image."""
    out = labels.copy()
    out[:, 1] = (labels[:, 1] - labels[:, 3] / 2) * w
    out[:, 2] = (labels[:, 2] - labels[:, 4] / 2) * h
    out[:, 3] = (labels[:, 1] + labels[:, 3] / 2) * w
    out[:, 4] = (labels[:, 2] + labels[:, 4] / 2) * h
    return out


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """``class, x1, y1, x2, y2`` (M, 5) -> ``class, cx, cy, w, h`` (M, 5), same units."""
    out = boxes.copy()
    out[:, 1] = (boxes[:, 1] + boxes[:, 3]) / 2
    out[:, 2] = (boxes[:, 2] + boxes[:, 4]) / 2
    out[:, 3] = boxes[:, 3] - boxes[:, 1]
    out[:, 4] = boxes[:, 4] - boxes[:, 2]
    return out


def warp(image: np.ndarray, boxes: np.ndarray, matrix: np.ndarray, size: int, min_visible: float = 0.3
         ) -> tuple[np.ndarray, np.ndarray]:
    """Apply a 2x3 affine (scale + translation only) to an image and ``class, x1, y1, x2, y2`` boxes.

    Boxes are clipped to the ``size`` x ``size`` output; those keeping less than ``min_visible`` of their area or
    narrower than 2 px are dropped.
    """
    out = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(PAD_VALUE,) * 3)
    if len(boxes) == 0:
        return out, boxes
    b = boxes.copy()
    b[:, [1, 3]] = boxes[:, [1, 3]] * matrix[0, 0] + matrix[0, 2]
    b[:, [2, 4]] = boxes[:, [2, 4]] * matrix[1, 1] + matrix[1, 2]
    area = (b[:, 3] - b[:, 1]) * (b[:, 4] - b[:, 2])
    b[:, 1:5] = np.clip(b[:, 1:5], 0, size)
    kept_area = (b[:, 3] - b[:, 1]) * (b[:, 4] - b[:, 2])
    ok = (b[:, 3] - b[:, 1] >= 2) & (b[:, 4] - b[:, 2] >= 2) & (kept_area >= min_visible * np.maximum(area, 1e-9))
    return out, b[ok]


def letterbox_matrix(w: int, h: int, size: int) -> np.ndarray:
    scale = size / max(w, h)
    return np.array([[scale, 0, (size - w * scale) / 2], [0, scale, (size - h * scale) / 2]], np.float32)


def colour_jitter(image_bgr: np.ndarray, rng: np.random.Generator, hue: float = 0.015, sat: float = 0.6,
                  val: float = 0.4) -> np.ndarray:
    """Random HSV gains; uint8 (H, W, 3) BGR in and out."""
    gains = 1 + rng.uniform(-1, 1, 3) * np.array([hue, sat, val])
    hsv = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] * gains[0]) % 180
    hsv[..., 1:] = np.clip(hsv[..., 1:] * gains[1:], 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)


@dataclass(frozen=True)
class Augment:
    """Augmentation settings. ``scale``: zoom range +-; ``translate``: fraction of the image; ``mosaic``: chance."""

    flip: float = 0.5
    scale: float = 0.4
    translate: float = 0.15
    mosaic: float = 0.5
    hue: float = 0.015
    sat: float = 0.6
    val: float = 0.4


class YoloDataset:
    """Images and labels of one split as network inputs.

    ``dataset[i]`` -> (float32 (3, S, S) RGB in [0, 1], float32 (M, 5) ``class, cx, cy, w, h`` network pixels).
    With ``augment`` set: mosaic of four images, random scale/translate, horizontal flip, colour jitter.
    A plain indexable (works as a torch ``Dataset``); :func:`collate` builds batches.
    """

    def __init__(self, images: Sequence[Path], num_classes: int, img_size: int = 320, augment: Augment | None = None,
                 seed: int = 0):
        if not images:
            raise DataError("a data set needs at least one image")
        self.images = list(images)
        self.num_classes = num_classes
        self.img_size = int(img_size)
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        self.labels = [read_labels(label_path(p), num_classes) for p in self.images]

    @classmethod
    def from_spec(cls, spec: DataSpec, split: str, img_size: int = 320, augment: Augment | None = None,
                  seed: int = 0) -> "YoloDataset":
        return cls(list_images(spec.folder(split)), len(spec.names), img_size, augment, seed)

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Original image (uint8 BGR) and its boxes ``class, x1, y1, x2, y2`` in its pixels."""
        image = read_image(self.images[index])
        h, w = image.shape[:2]
        return image, labels_to_xyxy(self.labels[index], w, h)

    def letterboxed(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, boxes = self.load(index)
        h, w = image.shape[:2]
        return warp(image, boxes, letterbox_matrix(w, h, self.img_size), self.img_size, min_visible=0.0)

    def _mosaic(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.img_size
        canvas = np.full((2 * s, 2 * s, 3), PAD_VALUE, np.uint8)
        all_boxes = []
        picks = [index] + list(self.rng.integers(0, len(self), 3))
        for k, i in enumerate(picks):
            image, boxes = self.letterboxed(int(i))
            ox, oy = (k % 2) * s, (k // 2) * s
            canvas[oy:oy + s, ox:ox + s] = image
            if len(boxes):
                boxes = boxes.copy()
                boxes[:, [1, 3]] += ox
                boxes[:, [2, 4]] += oy
                all_boxes.append(boxes)
        boxes = np.concatenate(all_boxes) if all_boxes else np.zeros((0, 5), np.float32)
        # Zoom out around a random centre: the 2S canvas becomes S at scale ~0.5 (0.35..0.75).
        zoom = self.rng.uniform(0.35, 0.75)
        cx, cy = self.rng.uniform(0.5 * s, 1.5 * s, 2)
        matrix = np.array([[zoom, 0, s / 2 - cx * zoom], [0, zoom, s / 2 - cy * zoom]], np.float32)
        return warp(canvas, boxes, matrix, s)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.img_size
        aug = self.augment
        if aug is None:
            image, boxes = self.letterboxed(index)
        else:
            if self.rng.random() < aug.mosaic:
                image, boxes = self._mosaic(index)
            else:
                image, boxes = self.load(index)
                h, w = image.shape[:2]
                zoom = s / max(w, h) * self.rng.uniform(1 - aug.scale, 1 + aug.scale)
                tx = (s - w * zoom) / 2 + self.rng.uniform(-aug.translate, aug.translate) * s
                ty = (s - h * zoom) / 2 + self.rng.uniform(-aug.translate, aug.translate) * s
                image, boxes = warp(image, boxes, np.array([[zoom, 0, tx], [0, zoom, ty]], np.float32), s)
            if self.rng.random() < aug.flip:
                image = np.ascontiguousarray(image[:, ::-1])
                if len(boxes):
                    boxes = boxes.copy()
                    boxes[:, [1, 3]] = s - boxes[:, [3, 1]]
            image = colour_jitter(image, self.rng, aug.hue, aug.sat, aug.val)
        x = np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)
        return x, xyxy_to_cxcywh(boxes).astype(np.float32)


def collate(batch: Sequence[tuple[np.ndarray, np.ndarray]]):
    """-> (float32 tensor (B, 3, S, S), float32 tensor (M, 6) ``image, class, cx, cy, w, h``)."""
    import torch

    images = torch.from_numpy(np.stack([b[0] for b in batch]))
    rows = [np.concatenate([np.full((len(t), 1), i, np.float32), t], axis=1) for i, (_, t) in enumerate(batch)]
    targets = torch.from_numpy(np.concatenate(rows) if rows else np.zeros((0, 6), np.float32))
    return images, targets


# --- synthetic data -------------------------------------------------------------------------------------------

SYNTHETIC_CLASSES = ("red", "green", "blue")
_SYNTHETIC_BGR = {"red": (40, 40, 230), "green": (40, 200, 40), "blue": (230, 60, 30)}


def make_synthetic_dataset(out_dir: Path | str, num_train: int = 64, num_val: int = 16, size: tuple[int, int] = (320,
                           240), max_objects: int = 3, seed: int = 0) -> Path:
    """Write a YOLO-format data set of coloured rectangles (class = colour) on noise; return its data YAML path.

    Layout: ``images/{train,val}/*.png``, ``labels/{train,val}/*.txt``, ``data.yaml``. Deterministic per seed.
    """
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    w, h = size
    for split, count in (("train", num_train), ("val", num_val)):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image = rng.integers(0, 110, (h, w, 3), dtype=np.uint8)
            image = cv2.GaussianBlur(image, (5, 5), 0)
            lines = []
            for _ in range(int(rng.integers(1, max_objects + 1))):
                cls = int(rng.integers(len(SYNTHETIC_CLASSES)))
                bw, bh = rng.uniform(0.1, 0.45) * w, rng.uniform(0.1, 0.45) * h
                x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
                colour = np.clip(np.array(_SYNTHETIC_BGR[SYNTHETIC_CLASSES[cls]]) + rng.integers(-25, 25, 3), 0, 255)
                cv2.rectangle(image, (int(x1), int(y1)), (int(x1 + bw) - 1, int(y1 + bh) - 1),
                              tuple(int(c) for c in colour), thickness=-1)
                x1i, y1i, x2i, y2i = int(x1), int(y1), int(x1 + bw), int(y1 + bh)
                lines.append(f"{cls} {(x1i + x2i) / 2 / w:.6f} {(y1i + y2i) / 2 / h:.6f} {(x2i - x1i) / w:.6f} "
                             f"{(y2i - y1i) / h:.6f}")
            cv2.imwrite(str(out / "images" / split / f"{i:05d}.png"), image)
            (out / "labels" / split / f"{i:05d}.txt").write_text("\n".join(lines) + "\n")
    yaml_path = out / "data.yaml"
    yaml_path.write_text(yaml.safe_dump({"path": ".", "train": "images/train", "val": "images/val",
                                         "names": list(SYNTHETIC_CLASSES)}, sort_keys=False))
    return yaml_path


# --- pseudo-labels from a teacher -----------------------------------------------------------------------------


def _iter_source(source: Path, every: int):
    """(name, BGR frame) from an image folder (every image) or a video file (every ``every``-th frame)."""
    if source.is_dir():
        for path in list_images(source):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                yield path.stem, image
        return
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise DataError(f"cannot open {source} as a video or image folder")
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % every == 0:
                yield f"{source.stem}_{index:06d}", frame
            index += 1
    finally:
        capture.release()


def label_with_face_teacher(source: Path | str, out_dir: Path | str, teacher=None, every: int = 5,
                            score_threshold: float = 0.6, min_size: float = 8.0, val_fraction: float = 0.1,
                            block: int = 20, class_name: str = "face") -> dict:
    """Write a YOLO-format data set (one class, ``face``) from a video or image folder, labelled by a teacher.

    ``teacher``: anything with ``detect(frame_bgr)`` returning boxes_xyxy/scores in source pixels (default: the
    packaged CenterFace model through ``realtime.face.detector.FaceDetector``). Boxes scoring below
    ``score_threshold`` or smaller than ``min_size`` px are dropped; frames with no face are kept as negatives.
    Consecutive items are grouped in blocks of ``block`` and whole blocks go to ``val`` (about ``val_fraction``
    of them), so near-duplicate video frames do not leak between splits. Returns counts and the data YAML path.
    """
    source, out = Path(source), Path(out_dir)
    if not source.exists():
        raise DataError(f"label source not found: {source}")
    if not 0.0 <= val_fraction < 1.0 or every < 1 or block < 1:
        raise DataError(f"need 0 <= val_fraction < 1, every >= 1 and block >= 1; got {val_fraction}, {every}, {block}")
    owned = teacher is None
    if owned:
        from realtime.face.detector import FaceDetector
        from realtime.runtime import RuntimeOptions
        from realtime.zoo import open_model

        teacher = FaceDetector(open_model("face_detector", RuntimeOptions()), score_threshold=score_threshold)
    period = max(1, round(1 / val_fraction)) if val_fraction > 0 else 0
    counts = {"train": 0, "val": 0, "boxes": 0}
    try:
        for split in ("train", "val"):
            (out / "images" / split).mkdir(parents=True, exist_ok=True)
            (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i, (name, frame) in enumerate(_iter_source(source, every)):
            split = "val" if period and (i // block) % period == period - 1 else "train"
            result = teacher.detect(frame)
            h, w = frame.shape[:2]
            lines = []
            for (x1, y1, x2, y2), score in zip(np.asarray(result.boxes_xyxy), np.asarray(result.scores)):
                x1, x2 = np.clip([x1, x2], 0, w)
                y1, y2 = np.clip([y1, y2], 0, h)
                if score < score_threshold or x2 - x1 < min_size or y2 - y1 < min_size:
                    continue
                lines.append(f"0 {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} "
                             f"{(y2 - y1) / h:.6f}")
            cv2.imwrite(str(out / "images" / split / f"{name}.jpg"), frame)
            (out / "labels" / split / f"{name}.txt").write_text("".join(line + "\n" for line in lines))
            counts[split] += 1
            counts["boxes"] += len(lines)
    finally:
        if owned:
            teacher.close()
    yaml_path = out / "data.yaml"
    yaml_path.write_text(yaml.safe_dump({"path": ".", "train": "images/train", "val": "images/val",
                                         "names": [class_name]}, sort_keys=False))
    return {"data_yaml": yaml_path, **counts}
