"""The size an image file declares, read from its header before it is decoded (a decompression-bomb limit).

A 0.9 MB PNG can declare 30000x30000 pixels, which decodes to 2.7 GB of BGR. :func:`check_image_file` reads at
most a few kB of the header (PNG, JPEG, GIF, BMP, WebP, TIFF) and refuses an image of more than
:data:`MAX_IMAGE_PIXELS` pixels, a folder, or something that is not a regular file, before OpenCV sees it.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

from realtime.errors import SourceError

MAX_IMAGE_PIXELS = 100_000_000  # 100 megapixels: 300 MB as BGR; larger photos are refused before decoding
_HEADER_BYTES = 64 * 1024       # JPEG's size marker may follow EXIF data; 64 kB covers the usual case


def check_image_file(path: Path | str, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int] | None:
    """(width, height) from the header of the image at ``path`` (None when the format is not one this reads);
    :class:`SourceError` for a missing path, a folder, a device or FIFO, or more than ``max_pixels`` pixels."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SourceError(f"image not found: {path}") from None
    except OSError as exc:
        raise SourceError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise SourceError(f"{path} is a folder, not an image; give an image file")
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(f"{path} is not a regular file (a device or pipe); give an image file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEADER_BYTES)
    except OSError as exc:
        raise SourceError(f"cannot read image {path}: {exc.strerror or exc}") from None
    size = header_size(head)
    if size is not None and size[0] * size[1] > max_pixels:
        raise SourceError(f"{path}: {size[0]}x{size[1]} pixels is more than the {max_pixels / 1e6:g} megapixels "
                          "rtv decodes (it would need "
                          f"{size[0] * size[1] * 3 / 2**30:.1f} GiB); scale it down first")
    return size


def header_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) declared by the first bytes of an image file, or None when unknown."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        return struct.unpack(">II", head[16:24])
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return struct.unpack("<HH", head[6:10])
    if head[:2] == b"BM" and len(head) >= 26:
        width, height = struct.unpack("<ii", head[18:26])
        return abs(width), abs(height)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp(head)
    if head[:2] == b"\xff\xd8":
        return _jpeg(head)
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff(head)
    return None


def _jpeg(head: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", head[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", head[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None


def _webp(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    if chunk == b"VP8 " and len(head) >= 30:
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _tiff(head: bytes) -> tuple[int, int] | None:
    order = "<" if head[:2] == b"II" else ">"
    offset = struct.unpack(order + "I", head[4:8])[0]
    if offset + 2 > len(head):
        return None
    count = struct.unpack(order + "H", head[offset:offset + 2])[0]
    found: dict[int, int] = {}
    for k in range(count):
        entry = offset + 2 + 12 * k
        if entry + 12 > len(head):
            break
        tag, kind = struct.unpack(order + "HH", head[entry:entry + 4])
        if tag in (256, 257):
            value = (struct.unpack(order + "H", head[entry + 8:entry + 10])[0] if kind == 3
                     else struct.unpack(order + "I", head[entry + 8:entry + 12])[0])
            found[tag] = value
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None
