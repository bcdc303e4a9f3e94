"""Face alignment: a similarity transform from 5 landmarks onto a chip template, and the warped chips.

Landmark order everywhere: eye on image left, eye on image right, nose tip, mouth corner on image left, mouth
corner on image right (as in :class:`realtime.types.FaceDetections`). Pure numpy/OpenCV; never torch.
"""

from __future__ import annotations

import cv2
import numpy as np

from realtime.face.chip import dlib_face_chips

CHIP_SIZE = 150
# Where CenterFace's 5 landmarks fall in dlib's chips (get_face_chip(size=150, padding=0.25) cut from dlib's own
# 5 points), in chip pixels: the mean over the 9 real faces of tests/data/reference/dlib_shape5_reference.npz
# (dlib 20.0.1 on scikit-image's astronaut and camera photos and variants), each face averaged with its mirror
# image so the template is left-right symmetric. Measured by `rtv eval faces --dlib-reference --fit`.
# It serves the "template5" alignment (CenterFace points warped onto it: a fine-tuned embedder's chips, or
# faces.alignment=template5); the released dlib embedder's chips come from dlib's own points and geometry
# (alignment "dlib5", see DlibAligner). Earlier versions used a template measured on six chips of one smiling
# person (mouth corners at y = 93, here 102.6); re-aligned chips moved descriptors 0.22 from dlib's on average,
# this one 0.21, dlib's geometry 0.06 (figures from `rtv eval faces --dlib-reference`).
TEMPLATE5_150 = np.array(
    [[48.78, 47.64],
     [100.22, 47.64],
     [74.5, 78.39],
     [53.05, 102.56],
     [95.95, 102.56]],
    dtype=np.float32,
)


def similarity_transform(src_xy: np.ndarray, dst_xy: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) mapping ``src_xy`` to ``dst_xy``.

    Umeyama's closed form. ``src_xy``, ``dst_xy``: float (K, 2), K >= 2, x then y. Returns float64 (2, 3) ``M``
    with ``dst ~= M[:, :2] @ src + M[:, 2]``. When the source points all coincide there is no unique answer;
    the result is then the translation that maps their mean onto the mean of ``dst_xy``.
    """
    src = np.asarray(src_xy, dtype=np.float64)
    dst = np.asarray(dst_xy, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"similarity_transform needs two (K, 2) point arrays with K >= 2, got {src.shape} and "
                         f"{dst.shape}")
    mean_src, mean_dst = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - mean_src, dst - mean_dst
    var_src = float((src_c ** 2).sum(axis=1).mean())
    out = np.zeros((2, 3), dtype=np.float64)
    if var_src <= 1e-12:
        out[:, :2] = np.eye(2)
        out[:, 2] = mean_dst - mean_src
        return out
    cov = dst_c.T @ src_c / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    scale = float((sigma * sign).sum() / var_src)
    out[:, :2] = scale * rotation
    out[:, 2] = mean_dst - scale * rotation @ mean_src
    return out


def align_faces(frame_bgr: np.ndarray, landmarks5: np.ndarray, template5: np.ndarray = TEMPLATE5_150,
                size: int = CHIP_SIZE) -> np.ndarray:
    """Cut one aligned chip per face.

    ``frame_bgr``: uint8 (H, W, 3). ``landmarks5``: float32 (N, 5, 2), source pixels. ``template5``: float (5, 2),
    landmark positions in a 150x150 chip (scaled by ``size / 150`` for other sizes). Returns uint8
    (N, size, size, 3) BGR chips, bilinear, black outside the frame.
    """
    points = np.asarray(landmarks5, dtype=np.float64)
    if points.ndim != 3 or points.shape[1:] != (5, 2):
        raise ValueError(f"landmarks5 must have shape (N, 5, 2), got {points.shape}")
    target = np.asarray(template5, dtype=np.float64) * (size / CHIP_SIZE)
    if target.shape != (5, 2):
        raise ValueError(f"template5 must have shape (5, 2), got {target.shape}")
    chips = np.zeros((len(points), size, size, 3), dtype=np.uint8)
    for i, face in enumerate(points):
        matrix = similarity_transform(face, target)
        chips[i] = cv2.warpAffine(frame_bgr, matrix, (size, size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return chips


# --- dlib's geometry: a dlib-like box, dlib's 5 points, dlib's chips -------------------------------------------------

# CenterFace box -> the box dlib's HOG face detector would give (the boxes dlib's shape predictor was trained on):
# a square of side DLIB_BOX_SIDE * CenterFace width, centred DLIB_BOX_SHIFT * CenterFace height below the
# CenterFace centre (no sideways shift: the mapping is mirror-symmetric). Then one refinement: the square whose
# centre is DLIB_REFINE_SHIFT spreads below the centroid of the 5 dlib points and whose side is DLIB_REFINE_SIDE
# spreads (spread = RMS distance of the points from their centroid). Fitted by least squares on the 9 real faces of
# tests/data/reference/dlib_shape5_reference.npz (dlib 20.0.1's HOG boxes); refit with
# `rtv eval faces --dlib-reference --fit`.
DLIB_BOX_SHIFT = 0.0328
DLIB_BOX_SIDE = 0.9972
DLIB_REFINE_SHIFT = 0.578
DLIB_REFINE_SIDE = 3.944


def _square_ltrb(cx: np.ndarray, cy: np.ndarray, side: np.ndarray) -> np.ndarray:
    half = side / 2
    return np.stack([np.round(cx - half), np.round(cy - half), np.round(cx + half), np.round(cy + half)],
                    axis=1).astype(np.int64)


def dlib_boxes_from_centerface(boxes_xyxy: np.ndarray, shift: float = DLIB_BOX_SHIFT,
                               side: float = DLIB_BOX_SIDE) -> np.ndarray:
    """CenterFace boxes, float (N, 4) xyxy source pixels -> dlib-like boxes, int64 (N, 4) dlib ltrb (inclusive)."""
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    return _square_ltrb((b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2 + shift * h, side * w)


def dlib_boxes_from_points(points5: np.ndarray, shift: float = DLIB_REFINE_SHIFT,
                           side: float = DLIB_REFINE_SIDE) -> np.ndarray:
    """dlib 5-point landmarks, (N, 5, 2) -> dlib-like boxes, int64 (N, 4) dlib ltrb."""
    p = np.asarray(points5, dtype=np.float64).reshape(-1, 5, 2)
    centre = p.mean(axis=1)
    spread = np.sqrt(((p - centre[:, None]) ** 2).sum(axis=2).mean(axis=1))
    return _square_ltrb(centre[:, 0], centre[:, 1] + shift * spread, side * spread)


class DlibAligner:
    """Face boxes -> dlib's 5 landmarks -> dlib's chips (``get_face_chip(size, padding)``).

    ``predictor``: a :class:`realtime.face.landmarks.ShapePredictor` (5 points). ``refine``: re-run the predictor
    once on the box implied by its first points (closer to the box dlib's detector gives). Thread-safe.
    """

    def __init__(self, predictor, size: int = CHIP_SIZE, padding: float = 0.25, refine: bool = True):
        if predictor.num_landmarks != 5:
            raise ValueError(f"DlibAligner needs a 5-point shape predictor, got {predictor.num_landmarks} points")
        self.predictor = predictor
        self.size = int(size)
        self.padding = float(padding)
        self.refine = bool(refine)

    def landmarks(self, frame: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        """``frame``: uint8 (H, W, 3); ``boxes_xyxy``: float (N, 4) CenterFace boxes. Returns int64 (N, 5, 2)."""
        points = self.predictor.predict(frame, dlib_boxes_from_centerface(boxes_xyxy))
        if self.refine and len(points):
            points = self.predictor.predict(frame, dlib_boxes_from_points(points))
        return points

    def chips(self, frame: np.ndarray, points5: np.ndarray) -> np.ndarray:
        """dlib's chips from dlib 5-point landmarks: uint8 (N, size, size, 3), the frame's channel order."""
        return dlib_face_chips(frame, points5, self.size, self.padding)

    def __call__(self, frame: np.ndarray, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(chips, landmarks_dlib5)``: uint8 (N, size, size, 3) and int64 (N, 5, 2)."""
        points = self.landmarks(frame, boxes_xyxy)
        return self.chips(frame, points), points
