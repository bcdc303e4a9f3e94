"""Detector commands: ``rtv train detector``, ``rtv eval detector``, ``rtv export detector``, ``rtv export check``,
``rtv bench detector`` and ``rtv label``. Importing this module never imports torch; handlers do, when they run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from export.commands import require_torch


def cmd_train_detector(args: argparse.Namespace) -> int:
    require_torch()
    from models.train.detector import train_detector

    result = train_detector(args.data, args.out, epochs=args.epochs, img_size=args.img_size,
                            batch_size=args.batch_size, lr=args.lr, variant=args.variant, width=args.width,
                            augment=not args.no_augment, threads=args.threads, seed=args.seed,
                            init_checkpoint=args.init)
    print(f"best validation mAP@0.5 {result['best_map50']:.3f}; checkpoint {result['checkpoint']}; "
          f"curves {result['plot']}")
    return 0


def _detector_for(model_path: str, config):
    """A served YoloDetector for an .onnx file (thresholds from config) or the checkpoint path for a .pt file."""
    if Path(model_path).suffix == ".onnx":
        from realtime.build import runtime_options
        from realtime.runtime import OnnxModel
        from realtime.yolo import YoloDetector

        det = config.detector
        return YoloDetector(OnnxModel(model_path, runtime_options(config.runtime), expected_kind="yolo"),
                            input_size=det.input_size, score_threshold=0.001, iou_threshold=det.iou_threshold,
                            class_aware=det.class_aware, max_candidates=det.max_candidates,
                            max_detections=det.max_detections)
    require_torch()
    return model_path


def cmd_eval_detector(args: argparse.Namespace) -> int:
    from models.evaluate import evaluate_detector
    from realtime.cli import load_from_args

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


def cmd_export_detector(args: argparse.Namespace) -> int:
    require_torch()
    from export.yolo_export import export_detector

    report = export_detector(args.checkpoint, args.out, img_size=args.img_size, dynamic_spatial=not args.static)
    print(report["report_text"])
    print(f"wrote {report['path']} (sha256 {report['sha256'][:12]}…)")
    return 0


def cmd_export_check(args: argparse.Namespace) -> int:
    require_torch()
    if args.checkpoint is None:  # a darknet import (or its INT8 variant): checked against the darknet weights
        from export.darknet import check_imported

        print(check_imported(args.onnx, args.cfg, args.weights))
        return 0
    from export.yolo_export import check_detector

    report = check_detector(args.onnx, args.checkpoint)
    print(report.format())
    return 0


def cmd_bench_detector(args: argparse.Namespace) -> int:
    from realtime.bench_detector import bench_detector, bench_nms, format_bench_table
    from realtime.build import model_path
    from realtime.cli import load_from_args
    from realtime.demo_clip import cached_demo_clip
    from realtime.metrics import write_json

    config = load_from_args(args)
    onnx_path = Path(args.model) if args.model else model_path(config.detector.model, "detector")
    runners = {}
    if args.checkpoint:
        require_torch()
        from export.yolo_export import torch_runner

        runners["pytorch"] = lambda: torch_runner(args.checkpoint, args.threads)
    result = bench_detector(onnx_path, sizes=args.sizes, source=args.clip or cached_demo_clip(),
                            frames=args.frames, threads=args.threads, providers=config.runtime.providers,
                            extra_runners=runners)
    result["nms_1000"] = bench_nms()
    print(format_bench_table(result))
    print("NMS on 1000 candidates (ms): " + json.dumps(result["nms_1000"]))
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from models.datasets import label_with_face_teacher

    if args.teacher != "face":
        from realtime.errors import ConfigError

        raise ConfigError(f"--teacher {args.teacher!r}: only 'face' (the shipped CenterFace detector) is available")
    result = label_with_face_teacher(args.source, args.out, every=args.every, score_threshold=args.score_threshold,
                                     val_fraction=args.val_fraction)
    print(json.dumps(result, indent=2, default=str))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from realtime.cli import command_group

    train = command_group(sub, "train")
    p = train.add_parser("detector", help="train the YOLO grid/anchor detector on a YOLO-format data set",
                         description="Data: a YAML naming train/val image folders and class names; labels in the "
                                     "usual labels/ folders (one 'class cx cy w h' line per box, normalised). "
                                     "Anchors by k-means (IoU distance); augmentation (flip, scale/translate, colour, "
                                     "mosaic); validation mAP@0.5 every epoch; state-dict checkpoints best.pt and "
                                     "last.pt, history.json and a loss/mAP plot (training.png) in --out.")
    p.add_argument("--data", required=True, help="data YAML")
    p.add_argument("--out", required=True, help="output folder for checkpoints and curves")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--img-size", type=int, default=320)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--variant", choices=("v2", "v3"), default="v3", help="v2: one scale; v3: strides 16 and 32")
    p.add_argument("--width", type=int, default=16, help="base channel width (network size)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", help="start from this checkpoint (fine-tune)")
    p.set_defaults(func=cmd_train_detector)

    evaluate = command_group(sub, "eval")
    p = evaluate.add_parser("detector", help="AP@0.5 per class and mAP of a detector (.pt or .onnx)",
                            description="On a data YAML (its --split) or a labelled image folder.")
    p.add_argument("model", help="checkpoint (.pt) or exported model (.onnx)")
    p.add_argument("--data", required=True, help="data YAML or labelled image folder")
    p.add_argument("--split", default="val", help="split of the data YAML (default val)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval_detector)

    export = command_group(sub, "export")
    p = export.add_parser("detector", help="a detector checkpoint -> ONNX (opset 17, contract, parity check)")
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True, help="model.onnx")
    p.add_argument("--img-size", type=int, help="default input size recorded in the contract")
    p.add_argument("--static", action="store_true", help="fixed spatial size instead of dynamic")
    p.set_defaults(func=cmd_export_detector)
    p = export.add_parser("check", help="parity of an exported detector with its checkpoint or darknet weights",
                          description="ONNX Runtime vs PyTorch on several inputs of two sizes: raw outputs (max "
                                      "abs/rel error) and, after decode + NMS, matched boxes (IoU) and score "
                                      "differences; also which graph nodes run on which execution provider. "
                                      "Exits non-zero beyond tolerance.")
    p.add_argument("onnx")
    p.add_argument("checkpoint", nargs="?", help="the .pt it was exported from; omit for a darknet import (its "
                                                 "INT8 variant too: then also INT8-vs-float AP@0.5)")
    p.add_argument("--cfg", help="darknet .cfg of an import (default: the registry's, when the hashes match)")
    p.add_argument("--weights", help="darknet .weights of an import")
    p.set_defaults(func=cmd_export_check)

    bench = command_group(sub, "bench")
    p = bench.add_parser("detector", help="preprocess / inference / decode+NMS ms at several sizes; ORT vs PyTorch",
                         description="On the demo clip (or --clip). With --checkpoint, PyTorch eager on the same "
                                     "model in the same run. Also times NMS on 1000 candidates.")
    p.add_argument("--model", help="detector .onnx (default: detector.model, else the shipped default)")
    p.add_argument("--checkpoint", help="the model's checkpoint, to time PyTorch eager too (needs torch)")
    p.add_argument("--sizes", type=int, nargs="+", default=[320, 416])
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clip", help="video instead of the demo clip")
    p.add_argument("--json", metavar="FILE")
    p.set_defaults(func=cmd_bench_detector)

    p = sub.add_parser("label", help="write a YOLO-format data set from a video or image folder, labelled by a "
                                     "teacher model",
                       description="Pseudo-labels: the shipped face detector labels every --every-th frame; frames "
                                   "without faces stay as negatives; whole blocks of consecutive frames go to val.")
    p.add_argument("source", help="video file or image folder")
    p.add_argument("--out", required=True, help="output data set folder (data.yaml inside)")
    p.add_argument("--teacher", default="face", help="teacher model (only 'face')")
    p.add_argument("--every", type=int, default=5, help="label every N-th frame (default 5)")
    p.add_argument("--score-threshold", type=float, default=0.6)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.set_defaults(func=cmd_label)
