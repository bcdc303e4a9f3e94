"""dlib's face chips: ``get_face_chip_details`` from its 5 landmarks and ``extract_image_chip``'s sampling.

Written from dlib's ``image_transforms/interpolation.h`` and ``image_pyramid.h`` as they describe the geometry
(no dlib code is used), so that rtv's chips are the ones dlib's face descriptor was trained on:

* the chip is placed by the least-squares similarity from dlib's 5-point chip template (padded by ``padding`` on
  each side, scaled to ``size``) onto the landmarks; it becomes a rectangle in the image (centre, side
  ``size * scale``) and an angle;
* when that rectangle, halved, still holds more pixels than the chip, the image (cropped to the rotated rectangle
  plus a margin) is first shrunk by dlib's ``pyramid_down<2>`` (5-tap [1 4 6 4 1] filter, integer arithmetic,
  every other row and column) as many times as needed;
* each chip pixel maps to the (pyramid level's) image by the affine map of three chip corners, and is read by
  bilinear interpolation, truncated to uint8, black where the 2x2 neighbourhood leaves the image.

Every step works on each channel alone, so BGR frames give BGR chips of the same values. Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from realtime.face.landmarks import similarity_matrices

# dlib's 5-point chip template (get_face_chip_details), in its landmark order, as fractions of an unpadded chip.
DLIB5_TEMPLATE = np.array([[0.8595674595992, 0.2134981538014],
                           [0.6460604764104, 0.2289674387677],
                           [0.1205750620789, 0.2137274526848],
                           [0.3340850613712, 0.2290642403242],
                           [0.4901123135679, 0.6277975316475]], dtype=np.float64)
CHIP_SIZE = 150
CHIP_PADDING = 0.25


def dlib5_chip_template(size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """Where dlib's chips put the 5 dlib landmarks: float64 (5, 2), chip pixels."""
    return (padding + DLIB5_TEMPLATE) / (2 * padding + 1) * size


@dataclass(frozen=True)
class ChipDetails:
    """dlib's ``chip_details``: ``rect_ltrb`` (a dlib drectangle: inclusive, float64), ``angle`` (radians),
    ``rows`` and ``cols`` of the chip."""

    rect_ltrb: tuple[float, float, float, float]
    angle: float
    rows: int
    cols: int


def _lround(v: float) -> int:
    """C's lround: halves away from zero."""
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity src -> dst: (2x2 matrix, translation), float64."""
    m = similarity_matrices(src, dst[None])[0]
    t = dst.mean(axis=0) - m @ src.mean(axis=0)
    return m, t


def face_chip_details(points5: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> ChipDetails:
    """dlib's ``get_face_chip_details`` for one face. ``points5``: (5, 2) dlib 5-point landmarks (x, y), image
    pixels (dlib uses its integer points). Returns the chip's place in the image."""
    points = np.asarray(points5, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"points5 must have shape (5, 2), got {points.shape}")
    m, t = _similarity(dlib5_chip_template(size, padding), points)
    px, py = m[0, 0], m[1, 0]  # the image of (1, 0)
    angle = math.atan2(py, px)
    scale = math.hypot(px, py)
    centre = m @ np.array([size / 2.0, size / 2.0]) + t
    w, h = size * scale - 1, size * scale - 1  # dlib's centered_drect(p, width, height)
    rect = (centre[0] - w / 2, centre[1] - h / 2, centre[0] + w / 2, centre[1] + h / 2)
    return ChipDetails(tuple(float(v) for v in rect), float(angle), int(size), int(size))


def _area(rect) -> float:
    l, t, r, b = rect
    return 0.0 if (t > b or l > r) else (r - l + 1) * (b - t + 1)


def _rect_down(rect):
    """pyramid_down<2>::rect_down: both corners mapped by p / 2 - (1.25, 0.75)."""
    l, t, r, b = rect
    x1, y1, x2, y2 = l / 2.0 - 1.25, t / 2.0 - 0.75, r / 2.0 - 1.25, b / 2.0 - 0.75
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def _rotate(centre, p, angle: float):
    c, s = math.cos(angle), math.sin(angle)
    x, y = p[0] - centre[0], p[1] - centre[1]
    return (c * x - s * y + centre[0], s * x + c * y + centre[1])


def _corners(rect, angle: float):
    l, t, r, b = rect
    centre = ((l + r) / 2.0, (t + b) / 2.0)
    return [_rotate(centre, p, angle) for p in ((l, t), (r, t), (l, b), (r, b))]  # tl, tr, bl, br


def pyramid_down2(image: np.ndarray) -> np.ndarray:
    """dlib's ``pyramid_down<2>`` of a uint8 (H, W, C) image -> uint8 ((H-3)//2, (W-3)//2, C); empty when H or
    W <= 8. Output pixel (i, j) is the [1 4 6 4 1] x [1 4 6 4 1] / 256 sum (integer division) over input rows
    2i..2i+4 and columns 2j..2j+4."""
    h, w = image.shape[:2]
    if h <= 8 or w <= 8:
        return np.zeros((0, 0) + image.shape[2:], dtype=np.uint8)
    x = image.astype(np.int32)
    oc = (w - 3) // 2
    cols = 2 * np.arange(oc)
    temp = x[:, cols] + 4 * x[:, cols + 1] + 6 * x[:, cols + 2] + 4 * x[:, cols + 3] + x[:, cols + 4]
    orows = (h - 3) // 2
    rows = 2 * np.arange(orows)
    out = (temp[rows] + 4 * temp[rows + 1] + 6 * temp[rows + 2] + 4 * temp[rows + 3] + temp[rows + 4]) // 256
    return out.astype(np.uint8)


def _bilinear(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """dlib's interpolate_bilinear at float64 points (same shape) -> uint8 (..., C), 0 outside."""
    h, w = image.shape[:2]
    left = np.floor(xs).astype(np.int64)
    top = np.floor(ys).astype(np.int64)
    inside = ((left >= 0) & (top >= 0) & (left + 1 < w) & (top + 1 < h)).reshape(-1)
    index = np.where(inside, (top * w + left).reshape(-1), 0)
    planes = np.ascontiguousarray(np.moveaxis(image, 2, 0)).reshape(image.shape[2], h * w)  # (C, H*W)
    lr = (xs - left).reshape(-1)
    tb = (ys - top).reshape(-1)
    tl, tr, bl, br = (np.take(planes, index + d, axis=1).astype(np.float64) for d in (0, 1, w, w + 1))
    # dlib's expression, (1 - tb) * ((1 - lr) * tl + lr * tr) + tb * ((1 - lr) * bl + lr * br), in place.
    value = (1 - lr) * tl
    value += lr * tr
    bottom = (1 - lr) * bl
    bottom += lr * br
    value *= 1 - tb
    bottom *= tb
    value += bottom
    out = value.astype(np.uint8)  # truncation, as dlib's vector_to_pixel
    out[:, ~inside] = 0
    return np.moveaxis(out, 0, -1).reshape(xs.shape + (image.shape[2],))


def extract_image_chip(image: np.ndarray, details: ChipDetails) -> np.ndarray:
    """dlib's ``extract_image_chip`` with bilinear interpolation (and its image pyramid for large faces).

    ``image``: uint8 (H, W, C). Returns uint8 (rows, cols, C)."""
    img = np.asarray(image)
    if img.ndim != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, C), got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    rows, cols = details.rows, details.cols
    rect, angle = details.rect_ltrb, details.angle
    size = rows * cols
    if angle == 0 and rows == _area((0, rect[1], 0, rect[3])) and cols == _area((rect[0], 0, rect[2], 0)):
        # No rotation or scaling: dlib copies the (rounded) rectangle.
        l, t, r, b = (_lround(v) for v in rect)
        out = np.zeros((b - t + 1, r - l + 1, img.shape[2]), dtype=np.uint8)
        y0, y1, x0, x1 = max(t, 0), min(b, h - 1), max(l, 0), min(r, w - 1)
        if y0 <= y1 and x0 <= x1:
            out[y0 - t:y1 - t + 1, x0 - l:x1 - l + 1] = img[y0:y1 + 1, x0:x1 + 1]
        return out
    # Pyramid depth, and the image region the pyramid needs (the rotated rectangle plus a margin).
    depth, grow = 0, 2.0
    down = _rect_down(rect)
    while _area(down) > size:
        down = _rect_down(down)
        depth += 1
        grow = grow * 2 + 2
    corners = _corners(rect, angle)
    xs = [p[0] for p in corners]
    ys = [p[1] for p in corners]
    grown = (min(xs) - grow, min(ys) - grow, max(xs) + grow, max(ys) + grow)
    clipped = (max(grown[0], 0), max(grown[1], 0), min(grown[2], w - 1), min(grown[3], h - 1))
    bl, bt, br, bb = (_lround(v) for v in clipped)
    crop = img[bt:bb + 1, bl:br + 1] if (bl <= br and bt <= bb) else img[:0, :0]
    # Which level, and the rectangle in that level's pixels.
    level = -1
    local = (rect[0] - bl, rect[1] - bt, rect[2] - bl, rect[3] - bt)
    while _area(_rect_down(local)) > size:
        level += 1
        local = _rect_down(local)
    source = crop
    for _ in range(level + 1):
        source = pyramid_down2(source)
    tl, tr, bl_, _ = _corners(local, angle)
    # Affine map of chip corners (0, 0), (cols-1, 0), (0, rows-1) onto tl, tr, bl.
    ax = ((tr[0] - tl[0]) / (cols - 1), (tr[1] - tl[1]) / (cols - 1)) if cols > 1 else (0.0, 0.0)
    ay = ((bl_[0] - tl[0]) / (rows - 1), (bl_[1] - tl[1]) / (rows - 1)) if rows > 1 else (0.0, 0.0)
    c = np.arange(cols, dtype=np.float64)[None, :]
    r = np.arange(rows, dtype=np.float64)[:, None]
    src_x = ax[0] * c + ay[0] * r + tl[0]
    src_y = ax[1] * c + ay[1] * r + tl[1]
    if source.size == 0:
        return np.zeros((rows, cols, img.shape[2]), dtype=np.uint8)
    return _bilinear(source, src_x, src_y)


def dlib_face_chips(image: np.ndarray, points5: np.ndarray, size: int = CHIP_SIZE,
                    padding: float = CHIP_PADDING) -> np.ndarray:
    """One chip per face, as ``dlib.get_face_chip(image, shape, size, padding)`` cuts it.

    ``image``: uint8 (H, W, 3), any channel order (the chips keep it); ``points5``: (N, 5, 2) dlib 5-point
    landmarks. Returns uint8 (N, size, size, 3)."""
    points = np.asarray(points5)
    if points.ndim != 3 or points.shape[1:] != (5, 2):
        raise ValueError(f"points5 must have shape (N, 5, 2), got {points.shape}")
    chips = np.zeros((len(points), size, size, np.asarray(image).shape[2]), dtype=np.uint8)
    for i, face in enumerate(points):
        chips[i] = extract_image_chip(image, face_chip_details(face, size, padding))
    return chips
