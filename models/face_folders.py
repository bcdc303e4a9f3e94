"""Face data sets as folders of person folders: chips, smoke data, ROC plots and report lines for ``rtv train embedder``
and ``rtv eval faces``.

A face data set is a folder with one sub-folder of images per person (the folder name is the person). Faces are
found and aligned by the serving code (CenterFace + the 5-point similarity alignment), exactly as ``rtv enroll`` and
the pipeline do, so training and evaluation see the chips the runtime will see. Importing this module is cheap and
never imports torch; ``train`` and ``export`` import it when they run (``eval faces`` never does).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from realtime.errors import DataError

FARS = (1e-1, 1e-2, 1e-3)
STILL_DETECT_WIDTH = 640


@dataclass(frozen=True)
class FolderFaces:
    """One aligned chip per usable image of a folder-per-person data set.

    ``chips_bgr``: uint8 (N, S, S, 3); ``labels``: int64 (N,) index into ``names`` (str (P,), every person folder,
    also those whose images all failed); ``sources``: str (N,) image paths; ``skipped``: (image, reason) for images
    without a usable face; ``several``: images that showed more than one face (the largest was kept).
    """

    chips_bgr: np.ndarray
    labels: np.ndarray
    names: np.ndarray
    sources: np.ndarray
    skipped: tuple[tuple[str, str], ...]
    several: tuple[str, ...]


def person_images(data_dir: Path | str) -> list[tuple[str, list[Path]]]:
    """``[(person, [image paths])]`` of a folder-per-person data set, sorted by name; :class:`DataError` when the
    folder is missing or has no person folder with images."""
    from realtime.media import IMAGE_SUFFIXES

    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root} (expected one sub-folder of images per person)")
    persons = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            persons.append((folder.name, images))
    if not persons:
        raise DataError(f"{root}: no person folders with images ({', '.join(IMAGE_SUFFIXES)}); expected "
                        f"{root}/<person>/<image>")
    return persons


def collect_faces(data_dir: Path | str, detector, template5: np.ndarray, chip_size: int = 150,
                  progress: bool = True, embedder=None) -> FolderFaces:
    """Detect the faces of every image with ``detector`` (a :class:`realtime.face.detector.FaceDetector`), keep
    the largest per image, and align it onto ``template5`` (float (5, 2), 150x150 chip pixels), or, when
    ``embedder`` is given, cut the chips the embedder expects (``embedder.align``: dlib's geometry for the released
    network)."""
    from tqdm import tqdm

    from realtime.face.align import align_faces
    from realtime.errors import SourceError
    from realtime.media import read_image

    persons = person_images(data_dir)
    chips, labels, sources, skipped, several = [], [], [], [], []
    total = sum(len(images) for _, images in persons)
    with tqdm(total=total, desc="faces", unit="img", disable=not progress, file=sys.stderr) as bar:
        for label, (_name, images) in enumerate(persons):
            for path in images:
                bar.update(1)
                try:
                    image = read_image(path)
                except SourceError:
                    skipped.append((str(path), "not a readable image"))
                    continue
                faces = detector.detect(image)
                if len(faces) == 0:
                    skipped.append((str(path), "no face found"))
                    continue
                boxes = faces.boxes_xyxy
                largest = int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
                if len(faces) > 1:
                    several.append(str(path))
                one = slice(largest, largest + 1)
                if embedder is not None:
                    chips.append(embedder.align(image, faces.boxes_xyxy[one], faces.landmarks5[one])[0][0])
                else:
                    chips.append(align_faces(image, faces.landmarks5[one], template5, chip_size)[0])
                labels.append(label)
                sources.append(str(path))
    return FolderFaces(np.stack(chips) if chips else np.zeros((0, chip_size, chip_size, 3), np.uint8),
                       np.asarray(labels, dtype=np.int64), np.asarray([n for n, _ in persons]),
                       np.asarray(sources, dtype=str), tuple(skipped), tuple(several))


def write_smoke_persons(root: Path | str, photos_per_person: int = 6, lfw_persons: int = 8,
                        lfw_photos: int = 4, seed: int = 0) -> Path:
    """Write a tiny folder-per-person data set for smoke tests (NOT training data) and return ``root``.

    Two real persons from scikit-image's public-domain photos (``astronaut``, ``cameraman``), each as
    ``photos_per_person`` randomly rotated, scaled, shifted, mirrored, re-lit and slightly blurred copies, plus
    ``lfw_persons`` pseudo-persons: faces ``0..`` of scikit-image's ``lfw_subset`` (25x25 grey crops from LFW,
    upscaled to 120x120 on a grey canvas), each as ``lfw_photos`` augmented copies of its one photo. Every person
    therefore has a single source photo: good enough to run the code end to end, not to measure a model.
    """
    import cv2
    import skimage.data

    rng = np.random.default_rng(seed)
    root = Path(root)

    def jitter(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-12, 12), rng.uniform(0.85, 1.15))
        matrix[:, 2] += rng.uniform(-0.05, 0.05, 2) * (w, h)
        out = cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)
        if rng.random() < 0.5:
            out = out[:, ::-1]
        out = np.clip(out.astype(np.float32) * rng.uniform(0.7, 1.2) + rng.uniform(-25, 25), 0, 255)
        sigma = rng.uniform(0, 1.0)
        return cv2.GaussianBlur(out.astype(np.uint8), (0, 0), sigma) if sigma > 0.3 else out.astype(np.uint8)

    def write(person: str, photo_bgr: np.ndarray, count: int) -> None:
        folder = root / person
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            cv2.imwrite(str(folder / f"{person}_{i:02d}.png"), jitter(photo_bgr))

    write("astronaut", cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR), photos_per_person)
    write("cameraman", cv2.cvtColor(skimage.data.camera(), cv2.COLOR_GRAY2BGR), photos_per_person)
    faces = skimage.data.lfw_subset()[:100]  # the first 100 are faces
    for i in range(min(lfw_persons, len(faces))):
        face = cv2.resize((faces[i] * 255).astype(np.uint8), (120, 120), interpolation=cv2.INTER_CUBIC)
        canvas = np.full((240, 240), 128, np.uint8)
        canvas[60:180, 60:180] = face
        write(f"lfw{i:03d}", cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR), lfw_photos)
    return root


def describe_collection(faces: FolderFaces) -> str:
    counts = np.bincount(faces.labels, minlength=len(faces.names))
    text = (f"{len(faces.labels)} faces of {int((counts > 0).sum())} persons ({int((counts >= 2).sum())} with 2 or "
            f"more); {len(faces.skipped)} images skipped")
    if faces.several:
        text += f"; {len(faces.several)} images with several faces (the largest was used)"
    return text


def open_detector(config, detect_width: int = STILL_DETECT_WIDTH):
    from realtime.zoo import open_face_detector

    return open_face_detector(dataclasses.replace(config.faces, detect_width=detect_width), config.runtime)


# ---------------------------------------------------------------- eval faces


def plot_roc(genuine: np.ndarray, impostor: np.ndarray, report: dict[str, Any], path: Path | str,
             title: str = "") -> Path:
    """ROC (TAR against FAR, log FAR axis) as a PNG (matplotlib, Agg). FAR 0 is drawn at half of the smallest
    measurable FAR (``0.5 / impostor pairs``), and the axis says so."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from realtime.face.verification import roc_curve

    roc = roc_curve(genuine, impostor)
    floor = 0.5 / max(1, len(impostor))
    fig = Figure(figsize=(5, 4))
    ax = fig.add_subplot(1, 1, 1)
    ax.step(np.maximum(roc.far, floor), roc.tar, where="post", label="ROC")
    for row in report["at_far"]:
        if row["supported"]:
            ax.plot(max(row["far_measured"], floor), row["tar"], "o",
                    label=f"FAR<={row['far']:g}: TAR {row['tar']:.3f} (t={row['threshold']:.3f})")
    ax.set_xscale("log")
    ax.set_xlim(floor * 0.8, 1.05)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"FAR (log; FAR 0 drawn at {floor:.1e})")
    ax.set_ylabel("TAR")
    ax.set_title(title or f"{report['genuine_pairs']} genuine / {report['impostor_pairs']} impostor pairs",
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")  # atomic: a failed save never leaves half a PNG
    try:
        fig.savefig(partial, dpi=100, format=path.suffix.lstrip(".").lower() or "png")
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def format_report(report: dict[str, Any]) -> Iterator[str]:
    yield (f"pairs: {report['genuine_pairs']} genuine, {report['impostor_pairs']} impostor "
           f"(mean distance {_fmt(report['genuine_mean'])} genuine, {_fmt(report['impostor_mean'])} impostor)")
    for row in report["at_far"]:
        if row["supported"]:
            yield (f"TAR @ FAR {row['far']:g}: {row['tar']:.4f} (threshold {row['threshold']:.4f}, measured FAR "
                   f"{row['far_measured']:.2g})")
        else:
            yield f"TAR @ FAR {row['far']:g}: not measurable ({row['reason']})"
    yield (f"best-accuracy threshold: {_fmt(report['best_threshold'])} (pair accuracy "
           f"{_fmt(report['best_accuracy'])})")


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"




# ---------------------------------------------------------------- train embedder


def prepare_chips(config, data_dir: Path | str, detect_width: int = STILL_DETECT_WIDTH, progress: bool = True):
    """Aligned RGB chips of a folder-per-person data set as :class:`models.face_dataset.ChipData` (needs torch),
    aligned with the template the exported embedder carries (:data:`realtime.face.align.TEMPLATE5_150`)."""
    from models.face_dataset import ChipData
    from realtime.face.align import TEMPLATE5_150

    detector = open_detector(config, detect_width)
    try:
        found = collect_faces(data_dir, detector, TEMPLATE5_150, 150, progress=progress)
    finally:
        detector.close()
    print(describe_collection(found), file=sys.stderr)
    for source, reason in found.skipped:
        print(f"skipped {source}: {reason}", file=sys.stderr)
    return ChipData(np.ascontiguousarray(found.chips_bgr[..., ::-1]), found.labels, found.names, found.sources)




# ---------------------------------------------------------------- export embedder
