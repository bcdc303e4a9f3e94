"""Uploaded images, checked before they are decoded: size in bytes, type sniffed from the first bytes (never the
file name or the client's content type), pixel count read from the header (so a decompression bomb - a small file
that claims a huge image - is refused without decoding it), then decoded by OpenCV into BGR.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

MAX_UPLOAD_BYTES = 20 * 2**20
MAX_PIXELS = 40_000_000
MAX_SIDE = 16384

# magic bytes -> type name
_SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
)


class UploadError(Exception):
    """An upload that is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = MAX_UPLOAD_BYTES
    max_pixels: int = MAX_PIXELS


def sniff_type(data: bytes) -> str | None:
    """"jpeg", "png", "bmp" or "webp" from the first bytes, else None."""
    for magic, name in _SIGNATURES:
        if data.startswith(magic):
            return name
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def header_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` as the file's header claims, without decoding the pixels (Pillow reads the header
    lazily)."""
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(io.BytesIO(data)) as im:
                return int(im.size[0]), int(im.size[1])
        except Image.DecompressionBombError:
            raise UploadError(413, "the image header claims far more pixels than the file could hold (a "
                                   "decompression bomb); refused without decoding") from None
        except Exception as exc:  # Pillow raises several classes for a damaged header
            raise UploadError(400, f"the image header cannot be read ({type(exc).__name__})") from None


def decode_image(data: bytes, what: str = "image", limits: UploadLimits = UploadLimits()) -> np.ndarray:
    """uint8 (H, W, 3) BGR pixels of an uploaded image, or :class:`UploadError` (400 empty or unreadable, 413 too
    many bytes or pixels, 415 not an image type the service reads)."""
    import cv2

    if not data:
        raise UploadError(400, f"{what}: no valid image file found (empty upload)")
    if len(data) > limits.max_bytes:
        raise UploadError(413, f"{what}: {len(data)} bytes is more than the limit of {limits.max_bytes}")
    kind = sniff_type(data)
    if kind is None:
        raise UploadError(415, f"{what}: not a JPEG, PNG, BMP or WebP image")
    width, height = header_size(data)
    if width <= 0 or height <= 0:
        raise UploadError(400, f"{what}: the image has no pixels")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > limits.max_pixels:
        raise UploadError(413, f"{what}: {width}x{height} pixels is more than the limit of {limits.max_pixels} "
                               f"pixels (or {MAX_SIDE} a side)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape[0] != height or image.shape[1] != width:
        raise UploadError(400, f"{what}: the {kind} image cannot be decoded (damaged or truncated)")
    return np.ascontiguousarray(image)
