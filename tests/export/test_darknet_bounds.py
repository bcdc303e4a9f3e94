"""Bounded darknet readers: a hostile cfg is refused from its declared sizes before anything is allocated (exit 4,
in under a second, under 200 MB), devices/FIFOs/oversized files are refused before reading, the weights file's
size is checked against the cfg before its body is read, NaN parity fails, a failed --overwrite import leaves the
old file, bad --img-size is a usage error (exit 2), and class names must be printable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from realtime.cli.main import main

pytest.importorskip("torch")

HOSTILE = {
    "conv size": ("size=3", "size=40001"),
    "filters": ("filters=16", "filters=1000000000"),
    "filters 10**30": ("filters=16", "filters=" + "1" + "0" * 30),
    "maxpool size": ("[maxpool]\nsize=2", "[maxpool]\nsize=30001"),
    "upsample stride": ("[upsample]\nstride=2", "[upsample]\nstride=100000"),
}


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, err


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_cfgs_are_refused_with_exit_4(darknet_files, darknet_cfg_texts, tmp_path, capsys, case):
    cfg, weights = darknet_files("yolov3-tiny")
    old, new = HOSTILE[case]
    text = darknet_cfg_texts["yolov3-tiny"]
    assert old in text, case
    cfg.write_text(text.replace(old, new, 1))
    code, err = _cli(capsys, "import", "darknet", cfg, weights, "--out", tmp_path / "o.onnx")
    line = _one_line(err)
    assert code == 4, err
    assert "budget" in line or "empty" in line or "fit" in line or "larger than" in line, line


def test_a_cfg_over_the_budget_is_refused_fast_and_small(tmp_path, darknet_cfg_texts):
    cfg = tmp_path / "big.cfg"
    cfg.write_text(darknet_cfg_texts["yolov3-tiny"].replace("filters=16", "filters=1000000000", 1))
    script = textwrap.dedent(f"""
        import json, resource, time
        import models.darknet as d
        from realtime.errors import ModelError
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        try:
            d.read_cfg({str(cfg)!r}, 416)
            refused = False
        except ModelError:
            refused = True
        print(json.dumps({{"refused": refused, "s": time.perf_counter() - start,
                          "mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["refused"] and got["s"] < 1.0 and got["mb"] < 200, got


def test_huge_img_size_is_refused_by_the_budget_and_bad_ones_are_usage_errors(darknet_files, tmp_path, capsys):
    cfg, weights = darknet_files("yolov3-tiny")
    for size in (0, -32, 33):
        code, err = _cli(capsys, "import", "darknet", cfg, weights, "--out", tmp_path / "o.onnx", "--img-size", size)
        assert code == 2 and "--img-size" in _one_line(err), err
    code, err = _cli(capsys, "import", "darknet", cfg, weights, "--out", tmp_path / "o.onnx", "--img-size", 100000)
    assert code == 2, err


@pytest.mark.parametrize("which", ["cfg", "weights", "names"])
@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_devices_and_fifos_are_refused_without_reading(darknet_files, tmp_path, capsys, which, special):
    cfg, weights = darknet_files("yolov3-tiny")
    names = tmp_path / "x.names"
    names.write_text("a\nb\nc\n")
    path = special
    if special == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
    args = {"cfg": cfg, "weights": weights, "names": names, which: path}
    code, err = _cli(capsys, "import", "darknet", args["cfg"], args["weights"], "--names", args["names"],
                     "--out", tmp_path / "o.onnx")
    assert code == 4 and "not a regular file" in _one_line(err), err


def test_a_huge_sparse_weights_file_is_refused_from_its_size(darknet_files, tmp_path, capsys):
    cfg, weights = darknet_files("yolov3-tiny")
    with open(weights, "r+b") as fh:
        fh.truncate(10 * 2**30)  # 10 GB, sparse: reading it whole would take minutes and all the memory
    code, err = _cli(capsys, "import", "darknet", cfg, weights, "--out", tmp_path / "o.onnx")
    assert code == 4 and "float32 weights after the header" in _one_line(err), err


def test_class_names_must_be_printable(darknet_files, tmp_path, capsys):
    cfg, weights = darknet_files("yolov3-tiny")
    names = tmp_path / "x.names"
    names.write_text("person\n\x1b[31mred\nbike\n")
    code, err = _cli(capsys, "import", "darknet", cfg, weights, "--names", names, "--out", tmp_path / "o.onnx")
    assert code == 4 and "class name 2" in _one_line(err), err
    names.write_text("person\nca\u202er\nbike\n")
    code, err = _cli(capsys, "import", "darknet", cfg, weights, "--names", names, "--out", tmp_path / "o.onnx")
    assert code == 4 and "\x1b" not in err and "\u202e" not in err, err


def test_nan_parity_fails_and_a_failed_overwrite_keeps_the_old_file(darknet_files, darknet_cfg_texts, tmp_path,
                                                                    capsys):
    cfg, weights = darknet_files("yolov3-tiny")
    out = tmp_path / "o.onnx"
    out.write_bytes(b"my earlier model")
    raw = bytearray(weights.read_bytes())
    header = 20
    body = np.full((len(raw) - header) // 4, 3e38, "<f4")
    weights.write_bytes(bytes(raw[:header]) + body.tobytes())
    code, err = _cli(capsys, "import", "darknet", cfg, weights, "--out", out, "--overwrite")
    assert code != 0 and "NaN or infinite" in err, err
    assert out.read_bytes() == b"my earlier model"
    assert not list(tmp_path.glob("*.partial*"))


@pytest.mark.parametrize("what", ["junk", "missing"])
def test_export_detector_of_a_bad_checkpoint_is_one_line(tmp_path, capsys, what):
    ckpt = tmp_path / "x.pt"
    if what == "junk":
        ckpt.write_bytes(b"not a checkpoint at all")
    code, err = _cli(capsys, "export", "detector", ckpt, "--out", tmp_path / "o.onnx")
    assert code in (4, 9) and _one_line(err).startswith("rtv: error"), err
