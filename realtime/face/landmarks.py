"""dlib's 5-point face landmarks: its shape predictor (an ensemble of regression trees) run in vectorised numpy.

The trees come from ``realtime/zoo/dlib_shape5.npz``, converted from dlib's released
``shape_predictor_5_face_landmarks.dat`` by ``rtv export faces --only landmarks`` (``export/dlib_shape_predictor.py``;
it is not a network: no ONNX, no PyTorch twin). Written from dlib's ``shape_predictor::operator()`` as its header describes it, reproducing its
arithmetic so that the same image and box give the same integer points:

* the box is dlib's inclusive rectangle (left, top, right, bottom); the shape lives in the box-normalised frame
  (top-left corner at (0, 0), bottom-right corner at (1, 1));
* each cascade maps its feature pixels from the initial shape to the current one with the least-squares
  similarity (rotation and scale only; computed in double, used in float32), adds the anchor landmark (float32),
  maps into the image (double), rounds to the nearest pixel (``floor(v + 0.5)``) and reads its grey level,
  ``(R + G + B) // 3`` (symmetric in the channels, so BGR frames give the same values), 0 outside the image;
* each tree compares two feature pixels against its threshold per level (left child when ``a - b > thresh``) and
  its leaf's shape increment is added to the current shape in tree order (float32, sequential);
* the final shape is mapped into the image and rounded like the feature pixels.

Landmark order (dlib's 5-point model): see :data:`DLIB5_ORDER`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from realtime.errors import ModelError

NPZ_FORMAT = 1
# dlib's 5 points, in the order its model returns them (x, y in image pixels).
DLIB5_ORDER = ("eye on image right, outer corner", "eye on image right, inner corner",
               "eye on image left, outer corner", "eye on image left, inner corner", "base of the nose")
_KEYS = ("format", "initial_shape", "split_idx", "split_thresh", "leaf_values", "anchor_idx", "deltas")


def similarity_matrices(from_xy: np.ndarray, to_xy: np.ndarray) -> np.ndarray:
    """The 2x2 (rotation times scale) part of the least-squares similarity from ``from_xy`` to each ``to_xy``.

    ``from_xy``: float (K, 2); ``to_xy``: float (N, K, 2). Returns float64 (N, 2, 2). Closed form of Umeyama's
    solution (the rotation that maximises trace(R^T cov), never a reflection; scale = that trace over the source
    variance), which equals what dlib's ``find_similarity_transform`` computes by SVD.
    """
    src = np.asarray(from_xy, dtype=np.float64)
    dst = np.asarray(to_xy, dtype=np.float64)
    src_c = src - src.mean(axis=0)
    dst_c = dst - dst.mean(axis=1, keepdims=True)
    var = float((src_c ** 2).sum() / len(src))
    n = len(src)
    a = (dst_c[..., 0] * src_c[:, 0]).sum(axis=1) / n  # cov[0, 0]
    b = (dst_c[..., 0] * src_c[:, 1]).sum(axis=1) / n  # cov[0, 1]
    c = (dst_c[..., 1] * src_c[:, 0]).sum(axis=1) / n  # cov[1, 0]
    d = (dst_c[..., 1] * src_c[:, 1]).sum(axis=1) / n  # cov[1, 1]
    p, q = (a + d), (c - b)
    if var > 0:
        p, q = p / var, q / var
    else:
        p, q = np.ones_like(p), np.zeros_like(q)
    out = np.empty((len(dst), 2, 2), dtype=np.float64)
    out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = p, -q, q, p
    return out


def _round_half_up(values: np.ndarray) -> np.ndarray:
    """dlib's float -> integer point conversion: ``floor(v + 0.5)``. float64 -> int64."""
    return np.floor(values + 0.5).astype(np.int64)


class ShapePredictor:
    """dlib's shape predictor (5 points for ``dlib_shape5.npz``), batched over faces.

    ``arrays``: the converted predictor (see :func:`load_shape_predictor`). ``predict`` is pure numpy and
    thread-safe (no state changes after construction).
    """

    def __init__(self, arrays: dict[str, np.ndarray], source: str = "shape predictor"):
        self.source = source
        self.initial_shape = np.ascontiguousarray(arrays["initial_shape"], dtype=np.float32)  # (K, 2)
        idx = np.asarray(arrays["split_idx"], dtype=np.int64)  # (C, T, S, 2)
        self.split_thresh = np.ascontiguousarray(arrays["split_thresh"], dtype=np.float32)  # (C, T, S)
        self.leaf_values = np.ascontiguousarray(arrays["leaf_values"], dtype=np.float32)  # (C, T, L, K, 2)
        self.anchor_idx = np.asarray(arrays["anchor_idx"], dtype=np.int64)  # (C, P)
        self.deltas = np.ascontiguousarray(arrays["deltas"], dtype=np.float32)  # (C, P, 2)
        c, t, s, _ = idx.shape
        self.num_cascades, self.num_trees, self.num_splits = c, t, s
        self.depth = int(round(np.log2(s + 1)))
        self.idx1, self.idx2 = idx[..., 0], idx[..., 1]
        k = len(self.initial_shape)
        self.num_landmarks = k
        # Flat per-cascade tables for np.take: splits (C, T * S), leaves (C, T * L, K * 2).
        self._idx1_flat = self.idx1.reshape(c, t * s)
        self._idx2_flat = self.idx2.reshape(c, t * s)
        self._thresh_flat = self.split_thresh.reshape(c, t * s)
        self._leaves_flat = self.leaf_values.reshape(c, t * (s + 1), k * 2)
        self._split_base = (np.arange(t, dtype=np.int64) * s)[None, :]
        self._leaf_base = (np.arange(t, dtype=np.int64) * (s + 1))[:, None] - s
        init = self.initial_shape.astype(np.float64)
        self._init_centred = init - init.mean(axis=0)
        self._init_var = float((self._init_centred ** 2).sum() / k)

    def _tforms(self, current: np.ndarray) -> np.ndarray:
        """float32 (N, 2, 2): the similarity part from the initial shape to each current shape (see
        :func:`similarity_matrices`)."""
        if self._init_var <= 0:
            return np.broadcast_to(np.eye(2, dtype=np.float32), (len(current), 2, 2))
        dst = current.astype(np.float64)
        dst -= dst.mean(axis=1, keepdims=True)
        src = self._init_centred
        n = len(src)
        p = ((dst[..., 0] * src[:, 0]).sum(axis=1) + (dst[..., 1] * src[:, 1]).sum(axis=1)) / n / self._init_var
        q = ((dst[..., 1] * src[:, 0]).sum(axis=1) - (dst[..., 0] * src[:, 1]).sum(axis=1)) / n / self._init_var
        return np.stack([np.stack([p, -q], axis=1), np.stack([q, p], axis=1)], axis=1).astype(np.float32)

    def predict_shapes(self, image: np.ndarray, boxes_ltrb: np.ndarray) -> np.ndarray:
        """The final shapes in the box-normalised frame. ``image``: uint8 (H, W, 3); ``boxes_ltrb``: (N, 4)
        integers, dlib's inclusive rectangle. Returns float32 (N, K, 2)."""
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image must be uint8 (H, W, 3), got {img.dtype} {img.shape}")
        boxes = np.asarray(boxes_ltrb)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes_ltrb must have shape (N, 4), got {boxes.shape}")
        boxes = boxes.astype(np.int64)
        n, k = len(boxes), self.num_landmarks
        current = np.broadcast_to(self.initial_shape, (n, k, 2)).copy()
        if n == 0:
            return current
        h, w = img.shape[:2]
        pixels = np.ascontiguousarray(img).reshape(-1, 3)
        left, top = boxes[:, 0:1].astype(np.float64), boxes[:, 1:2].astype(np.float64)
        width = (boxes[:, 2:3] - boxes[:, 0:1]).astype(np.float64)
        height = (boxes[:, 3:4] - boxes[:, 1:2]).astype(np.float64)
        split_base = (np.arange(n, dtype=np.int64) * self.num_trees * self.num_splits)[:, None] + self._split_base
        for c in range(self.num_cascades):
            m = self._tforms(current)  # (N, 2, 2) float32
            dx, dy = self.deltas[c, :, 0], self.deltas[c, :, 1]  # (P,)
            anchor_x = np.take(current[..., 0], self.anchor_idx[c], axis=1)  # (N, P)
            anchor_y = np.take(current[..., 1], self.anchor_idx[c], axis=1)
            # float32, in dlib's order: (m00*dx + m01*dy) + anchor_x
            px = (m[:, 0:1, 0] * dx + m[:, 0:1, 1] * dy) + anchor_x
            py = (m[:, 1:2, 0] * dx + m[:, 1:2, 1] * dy) + anchor_y
            ix = _round_half_up(width * px.astype(np.float64) + left)
            iy = _round_half_up(height * py.astype(np.float64) + top)
            inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
            rgb = np.take(pixels, np.where(inside, iy * w + ix, 0), axis=0).astype(np.int16)  # (N, P, 3)
            grey = (rgb[..., 0] + rgb[..., 1] + rgb[..., 2]) // 3
            grey[~inside] = 0
            grey = grey.astype(np.float32)
            # Every split's test at once (N, T * S), then each tree's path through them: left child 2i + 1 when
            # pixel[idx1] - pixel[idx2] > thresh, else 2i + 2.
            go_left = (np.take(grey, self._idx1_flat[c], axis=1) - np.take(grey, self._idx2_flat[c], axis=1)
                       > self._thresh_flat[c]).reshape(-1)
            node = np.zeros((n, self.num_trees), dtype=np.int64)
            for _ in range(self.depth):
                node = 2 * node + 2 - np.take(go_left, split_base + node)
            leaves = np.take(self._leaves_flat[c], node.T + self._leaf_base, axis=0)  # (T, N, K*2)
            stacked = np.concatenate([current.reshape(1, n * k * 2), leaves.reshape(self.num_trees, -1)])
            # A reduction over the outer axis adds row after row: the same float32 sums as dlib's
            # shape += leaf, tree after tree (the plain-loop test checks this bit for bit).
            current = np.add.reduce(stacked, axis=0, dtype=np.float32).reshape(n, k, 2)
        return current

    def predict(self, image: np.ndarray, boxes_ltrb: np.ndarray) -> np.ndarray:
        """dlib's integer landmarks. ``image``: uint8 (H, W, 3) (RGB or BGR); ``boxes_ltrb``: (N, 4) integers,
        dlib's inclusive rectangle. Returns int64 (N, K, 2), x then y, image pixels."""
        shapes = self.predict_shapes(image, boxes_ltrb).astype(np.float64)
        boxes = np.asarray(boxes_ltrb).astype(np.int64).reshape(-1, 4)
        out = np.empty(shapes.shape, dtype=np.int64)
        out[..., 0] = _round_half_up((boxes[:, 2:3] - boxes[:, 0:1]) * shapes[..., 0] + boxes[:, 0:1])
        out[..., 1] = _round_half_up((boxes[:, 3:4] - boxes[:, 1:2]) * shapes[..., 1] + boxes[:, 1:2])
        return out


def load_shape_predictor(path: Path | str) -> ShapePredictor:
    """Open a converted shape predictor ``.npz`` (``np.load(allow_pickle=False)``) and check its arrays.

    Raises :class:`ModelError` when the file is missing, unreadable, of another format version, or its arrays
    disagree in shape or index range.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in _KEYS if k not in data.files]
            if missing:
                raise ModelError(f"{path}: not a converted shape predictor (missing {', '.join(missing)}); "
                                 "re-create it with 'rtv export faces --only landmarks'")
            arrays = {k: data[k] for k in _KEYS}
    except ModelError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelError(f"cannot read shape predictor {path}: {exc}") from exc
    version = arrays["format"]
    if version.size != 1 or not np.issubdtype(version.dtype, np.integer) or int(version.reshape(-1)[0]) != NPZ_FORMAT:
        raise ModelError(f"{path}: shape predictor format {version.reshape(-1)[:1].tolist()}, this rtv reads "
                         f"{NPZ_FORMAT}; re-create it with 'rtv export faces --only landmarks'")
    _check(arrays, str(path))
    return ShapePredictor(arrays, str(path))


def _check(arrays: dict[str, np.ndarray], source: str) -> None:
    init, idx, thresh = arrays["initial_shape"], arrays["split_idx"], arrays["split_thresh"]
    leaves, anchor, deltas = arrays["leaf_values"], arrays["anchor_idx"], arrays["deltas"]
    ok = init.ndim == 2 and init.shape[1] == 2 and idx.ndim == 4 and idx.shape[3] == 2
    if ok:
        k = init.shape[0]
        c, t, s, _ = idx.shape
        p = anchor.shape[-1] if anchor.ndim == 2 else -1
        ok = (thresh.shape == (c, t, s) and leaves.shape == (c, t, s + 1, k, 2) and anchor.shape == (c, p)
              and deltas.shape == (c, p, 2) and s >= 1 and (s + 1) & s == 0)
        ok = ok and idx.min(initial=0) >= 0 and idx.max(initial=0) < p
        ok = ok and anchor.min(initial=0) >= 0 and anchor.max(initial=0) < k
    if not ok:
        raise ModelError(f"{source}: the shape predictor's arrays disagree in shape or index range "
                         f"(initial_shape {init.shape}, split_idx {idx.shape}, leaf_values {leaves.shape}, "
                         f"anchor_idx {anchor.shape}, deltas {deltas.shape}); re-create the file")
