"""Reader of dlib's serialised shape_predictor: a synthetic file written in dlib's encoding, bad files, the release."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from models.importers.dlib_dat import DlibFormatError
from models.importers.dlib_shape_predictor import read_shape_predictor


def enc_int(value: int) -> bytes:
    """dlib's integer encoding: control byte (bit 7 negative, low bits byte count), little-endian magnitude."""
    magnitude = abs(int(value))
    raw = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(raw) | (0x80 if value < 0 else 0)]) + raw


def enc_float(value: float) -> bytes:
    """dlib's float encoding: integer mantissa, integer exponent (value = mantissa * 2**exponent)."""
    frac, exp = math.frexp(float(value))
    return enc_int(int(frac * (1 << 24))) + enc_int(exp - 24)


def enc_column(values) -> bytes:
    values = list(values)
    return enc_int(-len(values)) + enc_int(-1) + b"".join(enc_float(v) for v in values)


def make_dat(rng: np.random.Generator, cascades=2, trees=3, depth=2, pixels=6, landmarks=5, version=1) -> tuple:
    """A random but well-formed predictor file; returns (bytes, the arrays that went in)."""
    splits, leaves = 2 ** depth - 1, 2 ** depth
    init = rng.uniform(0, 1, (landmarks, 2)).astype(np.float32)
    idx = rng.integers(0, pixels, (cascades, trees, splits, 2))
    thresh = rng.integers(-100, 100, (cascades, trees, splits)).astype(np.float32)
    leaf = (rng.integers(-64, 64, (cascades, trees, leaves, landmarks, 2)) / 1024).astype(np.float32)
    anchor = rng.integers(0, landmarks, (cascades, pixels))
    deltas = (rng.integers(-64, 64, (cascades, pixels, 2)) / 256).astype(np.float32)
    out = [enc_int(version), enc_column(init.reshape(-1)), enc_int(cascades)]
    for c in range(cascades):
        out.append(enc_int(trees))
        for t in range(trees):
            out.append(enc_int(splits))
            for s in range(splits):
                out += [enc_int(idx[c, t, s, 0]), enc_int(idx[c, t, s, 1]), enc_float(thresh[c, t, s])]
            out.append(enc_int(leaves))
            out += [enc_column(leaf[c, t, j].reshape(-1)) for j in range(leaves)]
    out.append(enc_int(cascades))
    for c in range(cascades):
        out.append(enc_int(pixels))
        out += [enc_int(a) for a in anchor[c]]
    out.append(enc_int(cascades))
    for c in range(cascades):
        out.append(enc_int(pixels))
        out += [enc_float(d) for d in deltas[c].reshape(-1)]
    return b"".join(out), dict(initial_shape=init, split_idx=idx, split_thresh=thresh, leaf_values=leaf,
                               anchor_idx=anchor, deltas=deltas)


@pytest.fixture
def synthetic_dat(tmp_path):
    data, arrays = make_dat(np.random.default_rng(3))
    path = tmp_path / "sp.dat"
    path.write_bytes(data)
    return path, data, arrays


def test_reads_every_array_of_a_synthetic_file(synthetic_dat):
    path, _, expected = synthetic_dat
    got = read_shape_predictor(path)
    for name, value in expected.items():
        np.testing.assert_array_equal(getattr(got, name), value, err_msg=name)
    assert got.split_idx.dtype == np.int32 and got.leaf_values.dtype == np.float32
    assert got.num_landmarks == 5


@pytest.mark.parametrize("cut", [1, 7, 100, -1])
def test_truncated_file_names_the_offset(synthetic_dat, tmp_path, cut):
    _, data, _ = synthetic_dat
    bad = tmp_path / "cut.dat"
    bad.write_bytes(data[:cut] if cut > 0 else data[:cut])
    with pytest.raises(DlibFormatError, match="truncated|ends while"):
        read_shape_predictor(bad)


def test_wrong_version_is_refused(tmp_path):
    data, _ = make_dat(np.random.default_rng(1), version=2)
    path = tmp_path / "v2.dat"
    path.write_bytes(data)
    with pytest.raises(DlibFormatError, match="version is 2, expected 1"):
        read_shape_predictor(path)


def test_trailing_bytes_and_missing_file_are_refused(synthetic_dat, tmp_path):
    _, data, _ = synthetic_dat
    path = tmp_path / "long.dat"
    path.write_bytes(data + b"\x01\x00")
    with pytest.raises(DlibFormatError, match="bytes left"):
        read_shape_predictor(path)
    with pytest.raises(DlibFormatError, match="cannot read"):
        read_shape_predictor(tmp_path / "absent.dat")


def test_a_dlib_network_file_is_not_a_shape_predictor(tmp_path):
    # dlib DNN files start with the loss layer's version (1) and then a string: not a column matrix.
    path = tmp_path / "net.dat"
    path.write_bytes(enc_int(1) + enc_int(13) + b"loss_metric_2" + b"\x00" * 16)
    with pytest.raises(DlibFormatError):
        read_shape_predictor(path)


@pytest.mark.slow
def test_the_released_5_point_model():
    from models.sources import DLIB_SHAPE5, locate
    from realtime.errors import ExportError

    try:
        path = locate(DLIB_SHAPE5, download=False)
    except ExportError as exc:
        pytest.skip(f"shape_predictor_5_face_landmarks.dat not available locally: {exc}")
    sp = read_shape_predictor(Path(path))
    assert sp.split_idx.shape == (15, 500, 15, 2) and sp.leaf_values.shape == (15, 500, 16, 5, 2)
    assert sp.deltas.shape == (15, 800, 2)
