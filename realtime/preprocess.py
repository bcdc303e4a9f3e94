"""Frame -> network input, per the model contract. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from realtime.contract import InputSpec


@dataclass(frozen=True)
class Letterbox:
    """How source pixels map to network-input pixels: ``net = src * scale + (pad_x, pad_y)``."""

    scale: float
    pad_x: float
    pad_y: float

    def to_source_xyxy(self, boxes_xyxy: np.ndarray, source_wh: tuple[int, int]) -> np.ndarray:
        """``boxes_xyxy``: float32 (N, 4) in network pixels -> (N, 4) in source pixels, clipped to the frame."""
        out = np.empty_like(boxes_xyxy, dtype=np.float32)
        out[:, [0, 2]] = (boxes_xyxy[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (boxes_xyxy[:, [1, 3]] - self.pad_y) / self.scale
        w, h = source_wh
        np.clip(out[:, 0::2], 0, w, out=out[:, 0::2])  # slices are views; out=out[:, [0, 2]] would clip a copy
        np.clip(out[:, 1::2], 0, h, out=out[:, 1::2])
        return out

    def to_source_points(self, points_xy: np.ndarray) -> np.ndarray:
        """``points_xy``: float32 (..., 2) in network pixels -> same shape in source pixels (not clipped)."""
        out = np.empty_like(points_xy, dtype=np.float32)
        out[..., 0] = (points_xy[..., 0] - self.pad_x) / self.scale
        out[..., 1] = (points_xy[..., 1] - self.pad_y) / self.scale
        return out


def letterbox(frame_bgr: np.ndarray, size_wh: tuple[int, int], pad_value: int = 114, center: bool = True
              ) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping aspect ratio and pad to ``size_wh``.

    ``frame_bgr``: uint8 (H, W, 3). Returns the padded uint8 (size_h, size_w, 3) image and the mapping.
    ``center=False`` pads only right and bottom.
    """
    h, w = frame_bgr.shape[:2]
    out_w, out_h = size_wh
    scale = min(out_w / w, out_h / h)
    new_w, new_h = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    pad_x = (out_w - new_w) / 2 if center else 0.0
    pad_y = (out_h - new_h) / 2 if center else 0.0
    left, top = int(round(pad_x - 0.1)), int(round(pad_y - 0.1))
    resized = frame_bgr if (new_w, new_h) == (w, h) else cv2.resize(frame_bgr, (new_w, new_h),
                                                                      interpolation=cv2.INTER_LINEAR)
    canvas = np.full((out_h, out_w, 3), pad_value, dtype=np.uint8)
    canvas[top:top + new_h, left:left + new_w] = resized
    return canvas, Letterbox(scale=new_w / w if w else scale, pad_x=float(left), pad_y=float(top))


def to_input_nchw(images_bgr: list[np.ndarray] | np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 (H, W, 3) BGR images of one size -> float32 (N, 3, H, W) normalised as the contract says."""
    batch = np.asarray(images_bgr if isinstance(images_bgr, np.ndarray) and images_bgr.ndim == 4
                       else np.stack(images_bgr))
    if spec.color == "rgb":
        batch = batch[..., ::-1]
    x = batch.astype(np.float32)
    if spec.scale != 1.0:
        x *= np.float32(spec.scale)
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    if mean.any():
        x -= mean
    if (std != 1).any():
        x /= std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
