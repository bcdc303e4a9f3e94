"""Image sizes are read from the header before decoding: a decompression bomb (a small PNG declaring 30000x30000)
is refused in one line with exit 3 by annotate, identify and enroll; a folder or a text file is named as such."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from realtime.cli.main import main
from realtime.errors import SourceError
from realtime.io.image_header import MAX_IMAGE_PIXELS, check_image_file, header_size


def _bomb(path, w=30000, h=30000):
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    path.write_bytes(data + b"\0" * 1000)
    return path


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".tif"])
def test_header_size_matches_opencv(tmp_path, ext):
    image = np.random.default_rng(0).integers(0, 255, (37, 53, 3), np.uint8)
    path = tmp_path / f"x{ext}"
    cv2.imwrite(str(path), image)
    assert header_size(path.read_bytes()[:65536]) == (53, 37)


def test_a_bomb_is_refused_before_decoding(tmp_path):
    with pytest.raises(SourceError, match="megapixels"):
        check_image_file(_bomb(tmp_path / "bomb.png"))
    assert 30000 * 30000 > MAX_IMAGE_PIXELS


@pytest.mark.parametrize("argv", [["identify", "{p}"], ["annotate", "{p}", "--jsonl", "{d}/o.jsonl"],
                                  ["enroll", "x", "{p}", "--set", "faces.gallery={d}/g.sqlite"]])
def test_cli_refuses_a_bomb_in_one_line(tmp_path, capsys, argv):
    bomb = _bomb(tmp_path / "bomb.png")
    code = main([a.format(p=bomb, d=tmp_path) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 3 and "megapixels" in err and "Traceback" not in err, err
    assert sum(line.startswith(("rtv: error", "rtv: stopped", "rtv: failed")) for line in lines) == 1, err


def test_a_folder_and_a_text_file_are_named(tmp_path):
    with pytest.raises(SourceError, match="is a folder"):
        check_image_file(tmp_path)
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    from realtime.io.capture import read_image

    with pytest.raises(SourceError, match="not a readable image"):
        read_image(text)
