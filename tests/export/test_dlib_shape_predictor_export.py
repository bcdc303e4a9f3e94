"""Conversion of dlib's shape predictor to the shipped .npz: reproducible bytes, manifest entry, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from export.dlib_shape_predictor import convert_shape_predictor, write_npz
from realtime.errors import ExportError
from realtime.face.landmarks import load_shape_predictor

REFERENCE = Path(__file__).resolve().parents[2] / "tests" / "data" / "reference" / "dlib_shape5_reference.npz"


def test_bad_dat_is_an_export_error_and_writes_nothing(tmp_path):
    bad = tmp_path / "sp.dat"
    bad.write_bytes(b"\x01\x02\x03")  # version 2 in dlib's integer encoding: not a version-1 predictor
    out = tmp_path / "zoo" / "dlib_shape5.npz"
    with pytest.raises(ExportError, match="version"):
        convert_shape_predictor(bad, out)
    assert not out.exists() and not list((tmp_path / "zoo").glob("*.npz"))


def test_write_npz_is_reproducible_and_loads_without_pickle(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.int32).reshape(2, 3), "format": np.int64(1)}
    write_npz(tmp_path / "one.npz", arrays)
    write_npz(tmp_path / "two.npz", dict(reversed(list(arrays.items()))))
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    with np.load(tmp_path / "one.npz", allow_pickle=False) as data:
        np.testing.assert_array_equal(data["a"], arrays["a"])
        assert data["format"].shape == ()


@pytest.mark.slow
def test_released_model_converts_with_dlib_parity_and_a_manifest_entry(tmp_path):
    from models.sources import DLIB_SHAPE5, locate

    try:
        dat = locate(DLIB_SHAPE5, download=False)
    except ExportError as exc:
        pytest.skip(f"shape_predictor_5_face_landmarks.dat not available locally: {exc}")
    out = tmp_path / "dlib_shape5.npz"
    entry = convert_shape_predictor(dat, out, REFERENCE if REFERENCE.is_file() else None)
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text())
    assert manifest["dlib_shape5.npz"]["sha256"] == entry["sha256"] and entry["licence"] == "CC0-1.0"
    assert "not a network" in entry["note"]
    if REFERENCE.is_file():
        assert entry["parity"]["vs_dlib_20.0.1"]["dlib_boxes_exact"] == 68
    assert load_shape_predictor(out).num_cascades == 15
