"""Anchor-based YOLO heads (v2/v3/v5 style) in numpy: decode raw outputs, NMS, and the detection stage.

No torch here. The pure steps are :func:`decode_yolo` (raw head arrays -> candidate boxes in network pixels) and
:func:`realtime.boxes.batched_nms`; :class:`YoloDetector` adds letterboxing and one ONNX Runtime run, and
:class:`ObjectDetection` is the pipeline stage.

Output layouts (``output_layout`` in the contract, or ``layout`` in config for a model made elsewhere) are
``"<coder>_<tensor>"``:

* tensor ``nchw``: each output is (N, A*(5+C), H, W), channels grouped per anchor; ``nahwc``: (N, A, H, W, 5+C).
  The 5+C fields are ``tx, ty, tw, th, objectness, class_0 .. class_C-1``, all RAW LOGITS (no activation in graph).
* coder ``yolov3`` (our exported models): ``x = (sigmoid(tx) + cell_x) * stride``,
  ``w = anchor_w * exp(min(tw, MAX_LOG_WH))``; class probability ``sigmoid(class)``.
* coder ``yolov2``: the same box maths, class probability ``softmax(classes)``.
* coder ``yolov5``: ``x = (2 * sigmoid(tx) - 0.5 + cell_x) * stride``, ``w = anchor_w * (2 * sigmoid(tw)) ** 2``;
  class probability ``sigmoid(class)``.

Score = sigmoid(objectness) * probability of the best class; one (best) class per anchor box.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from realtime.boxes import batched_nms, nms
from realtime.contract import ModelContract
from realtime.detect.thresholds import score_thresholds
from realtime.errors import ConfigError, ModelError
from realtime.preprocess import letterbox, to_input_nchw
from realtime.types import Detections, FramePacket

CODERS = ("yolov2", "yolov3", "yolov5")
TENSORS = ("nchw", "nahwc")
MAX_LOG_WH = math.log(1000.0 / 16.0)  # exp() clamp for tw/th, as torchvision's box coder


@dataclass(frozen=True)
class YoloHead:
    """What decode needs to know about a YOLO head.

    ``anchors``: per output scale, the anchor (w, h) pairs in network-input pixels; ``strides``: one per scale;
    ``num_classes``: C; ``layout``: see the module docstring.
    """

    anchors: tuple[tuple[tuple[float, float], ...], ...]
    strides: tuple[int, ...]
    num_classes: int
    layout: str = "yolov3_nchw"

    def __post_init__(self) -> None:
        coder, _, tensor = self.layout.partition("_")
        if coder not in CODERS or tensor not in TENSORS:
            raise ModelError(
                f"yolo output layout {self.layout!r} is not '<coder>_<tensor>' with coder in {CODERS} and tensor in "
                f"{TENSORS}; e.g. 'yolov3_nchw'"
            )
        if not self.anchors or len(self.anchors) != len(self.strides):
            raise ModelError(f"yolo head needs one anchor list per stride, got {len(self.anchors)} anchor lists "
                             f"for strides {self.strides}")
        if any(len(a) == 0 for a in self.anchors) or any(s <= 0 for s in self.strides):
            raise ModelError(f"yolo head has an empty anchor list or a stride <= 0: anchors={self.anchors}, "
                             f"strides={self.strides}")
        if self.num_classes < 1:
            raise ModelError(f"yolo head needs num_classes >= 1, got {self.num_classes}")

    @property
    def coder(self) -> str:
        return self.layout.partition("_")[0]

    @property
    def tensor(self) -> str:
        return self.layout.partition("_")[2]

    @classmethod
    def from_contract(cls, contract: ModelContract) -> "YoloHead":
        return cls(anchors=contract.anchors, strides=contract.strides, num_classes=len(contract.classes),
                   layout=contract.output_layout or "yolov3_nchw")

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> "YoloHead":
        """From a config mapping ``{anchors: [[[w, h], ...], ...], strides: [...], classes|num_classes, layout}``."""
        try:
            anchors = tuple(tuple((float(w), float(h)) for w, h in scale) for scale in data["anchors"])
            strides = tuple(int(s) for s in data["strides"])
            num_classes = int(data["num_classes"]) if "num_classes" in data else len(data["classes"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"yolo head config needs anchors (per scale, [w, h] pairs), strides and classes or num_classes; "
                f"got {dict(data)!r} ({type(exc).__name__}: {exc})"
            ) from exc
        return cls(anchors=anchors, strides=strides, num_classes=num_classes,
                   layout=str(data.get("layout", "yolov3_nchw")))


@dataclass(frozen=True)
class ScaleGrid:
    """Per-scale constants for one input size: ``cells_xy``: float32 (H*W, 2) cell corners (x, y) in cells;
    ``anchors_wh``: float32 (A, 2) in network pixels."""

    height: int
    width: int
    stride: int
    cells_xy: np.ndarray
    anchors_wh: np.ndarray


class GridCache:
    """Grids per output size, computed once and reused (one cache per detector, not global)."""

    def __init__(self, head: YoloHead):
        self.head = head
        self._grids: dict[tuple[tuple[int, int], ...], tuple[ScaleGrid, ...]] = {}

    def get(self, output_hws: Sequence[tuple[int, int]]) -> tuple[ScaleGrid, ...]:
        key = tuple((int(h), int(w)) for h, w in output_hws)
        grids = self._grids.get(key)
        if grids is None:
            grids = tuple(
                ScaleGrid(h, w, stride, _cells(h, w), np.asarray(anchors, dtype=np.float32).reshape(-1, 2))
                for (h, w), stride, anchors in zip(key, self.head.strides, self.head.anchors)
            )
            self._grids[key] = grids
        return grids


def _cells(h: int, w: int) -> np.ndarray:
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def _scale_fields(raw: np.ndarray, head: YoloHead, num_anchors: int, image: int) -> np.ndarray:
    """One image's raw output of one scale -> view (A, H*W, 5+C) (nahwc) or (A, 5+C, H*W) (nchw)."""
    fields = 5 + head.num_classes
    if head.tensor == "nchw":
        if raw.ndim != 4 or raw.shape[1] != num_anchors * fields:
            raise ModelError(f"yolo output of shape {raw.shape} does not match layout {head.layout!r} with "
                             f"{num_anchors} anchors and {head.num_classes} classes: expected (N, "
                             f"{num_anchors * fields}, H, W)")
        return raw[image].reshape(num_anchors, fields, -1)
    if raw.ndim != 5 or raw.shape[1] != num_anchors or raw.shape[4] != fields:
        raise ModelError(f"yolo output of shape {raw.shape} does not match layout {head.layout!r}: expected "
                         f"(N, {num_anchors}, H, W, {fields})")
    return raw[image].reshape(num_anchors, -1, fields)


def output_hws(outputs: Sequence[np.ndarray], head: YoloHead) -> list[tuple[int, int]]:
    """(H, W) of each raw output under ``head.layout``."""
    if len(outputs) != len(head.strides):
        raise ModelError(f"got {len(outputs)} yolo outputs but the head has {len(head.strides)} scales")
    # (N, A*(5+C), H, W) and (N, A, H, W, 5+C) both hold H, W on axes 2 and 3.
    if any(np.ndim(o) < 4 for o in outputs):
        raise ModelError(f"yolo outputs must be 4-D or 5-D, got shapes {[np.shape(o) for o in outputs]}")
    return [(int(o.shape[2]), int(o.shape[3])) for o in outputs]


def decode_yolo(outputs: Sequence[np.ndarray], head: YoloHead, score_threshold: float = 0.25,
                max_candidates: int | None = 1000, grids: GridCache | None = None, image: int = 0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw head outputs -> candidate boxes for one image of the batch, before NMS.

    ``outputs``: one float32 array per scale in ``head.layout`` (see module docstring). Returns
    ``boxes_xyxy``: float32 (K, 4) in network-input pixels, ``scores``: float32 (K,) = sigmoid(obj) * p(best class),
    ``class_ids``: int64 (K,). Only boxes with ``score >= score_threshold`` are kept (the
    convention of :mod:`realtime.detect.thresholds`), at most ``max_candidates``
    (the best scores, ties to the lower flat index). Vectorised: cells are filtered on objectness first, then only
    survivors are decoded.
    """
    grids = grids or GridCache(head)
    scale_grids = grids.get(output_hws(outputs, head))
    threshold = np.float32(score_threshold)
    all_boxes, all_scores, all_classes = [], [], []
    for raw, grid in zip(outputs, scale_grids):
        a = len(grid.anchors_wh)
        t = _scale_fields(np.asarray(raw), head, a, image)
        obj_logits = t[:, 4, :] if head.tensor == "nchw" else t[:, :, 4]  # (A, HW)
        obj = _sigmoid(obj_logits.astype(np.float32))
        anchor_idx, cell_idx = np.nonzero(obj >= threshold)  # score <= obj, so nothing else can pass
        if anchor_idx.size == 0:
            continue
        cand = (t[anchor_idx, :, cell_idx] if head.tensor == "nchw" else t[anchor_idx, cell_idx, :]).astype(np.float32)
        cls_logits = cand[:, 5:]
        best = np.argmax(cls_logits, axis=1)
        best_logit = cls_logits[np.arange(len(best)), best]
        if head.coder == "yolov2":
            prob = 1.0 / np.exp(cls_logits - best_logit[:, None]).sum(axis=1)
        else:
            prob = _sigmoid(best_logit)
        score = (obj[anchor_idx, cell_idx] * prob).astype(np.float32)
        ok = score >= threshold
        if not ok.any():
            continue
        cand, score, best, anchor_idx, cell_idx = cand[ok], score[ok], best[ok], anchor_idx[ok], cell_idx[ok]
        cells = grid.cells_xy[cell_idx]
        anchor_wh = grid.anchors_wh[anchor_idx]
        if head.coder == "yolov5":
            xy = (2.0 * _sigmoid(cand[:, 0:2]) - 0.5 + cells) * grid.stride
            wh = (2.0 * _sigmoid(cand[:, 2:4])) ** 2 * anchor_wh
        else:
            xy = (_sigmoid(cand[:, 0:2]) + cells) * grid.stride
            wh = np.exp(np.minimum(cand[:, 2:4], MAX_LOG_WH)) * anchor_wh
        all_boxes.append(np.concatenate([xy - wh / 2, xy + wh / 2], axis=1).astype(np.float32))
        all_scores.append(score)
        all_classes.append(best.astype(np.int64))
    if not all_scores:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    boxes, scores, classes = np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_classes)
    if max_candidates is not None and len(scores) > max_candidates:
        top = np.argsort(-scores, kind="stable")[:max_candidates]
        boxes, scores, classes = boxes[top], scores[top], classes[top]
    return boxes, scores, classes


def select_detections(boxes_xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float,
                      class_aware: bool = True, max_detections: int | None = 100
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NMS (per class or across classes) and the cap after it. Same shapes as :func:`decode_yolo`'s return."""
    if class_aware:
        keep = batched_nms(boxes_xyxy, scores, class_ids, iou_threshold, max_detections)
    else:
        keep = nms(boxes_xyxy, scores, iou_threshold, max_detections)
    return boxes_xyxy[keep], scores[keep], class_ids[keep]


class YoloDetector:
    """Frame -> :class:`Detections` in source pixels with an exported YOLO model (kind ``yolo``).

    ``model``: an :class:`realtime.runtime.OnnxModel` (or anything with ``.contract`` and ``.run``);
    ``input_size``: (w, h) override for a graph with a dynamic spatial size; ``head``: override the decode
    parameters (anchors, strides, classes, layout) for a model made elsewhere; ``class_names`` likewise.
    """

    def __init__(self, model, input_size: tuple[int, int] | None = None, score_threshold: float = 0.25,
                 iou_threshold: float = 0.45, class_aware: bool = True, max_candidates: int = 1000,
                 max_detections: int = 100, head: YoloHead | None = None,
                 class_names: Sequence[str] | None = None, keep_classes: Sequence[str] = (),
                 class_score_thresholds: Mapping[str, float] | Sequence[tuple[str, float]] = (),
                 low_score_threshold: float | None = None):
        contract: ModelContract = model.contract
        if contract.kind != "yolo":
            raise ModelError(f"{contract.name}: is a {contract.kind!r} model, the detector needs a 'yolo' model")
        if not 0.0 <= iou_threshold <= 1.0:
            raise ConfigError(f"iou_threshold must be in [0, 1], got {iou_threshold!r}")
        if max_candidates < 1 or max_detections < 1:
            raise ConfigError(f"max_candidates and max_detections must be >= 1, got {max_candidates}, "
                              f"{max_detections}")
        self.model = model
        self.spec = contract.input
        self.head = head or YoloHead.from_contract(contract)
        self.class_names = tuple(class_names) if class_names is not None else contract.classes
        if len(self.class_names) != self.head.num_classes:
            raise ModelError(f"{contract.name}: {len(self.class_names)} class names for a head with "
                             f"{self.head.num_classes} classes")
        self.input_size = self._input_size(input_size)
        self.thresholds = score_thresholds(self.class_names, score_threshold, class_score_thresholds,
                                           low_score_threshold, keep_classes)
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.class_aware = bool(class_aware)
        self.max_candidates = int(max_candidates)
        self.max_detections = int(max_detections)
        self.grids = GridCache(self.head)

    def _input_size(self, override: tuple[int, int] | None) -> tuple[int, int]:
        if override is None:
            return self.spec.working_size_wh()
        w, h = (int(v) for v in override)
        if self.spec.size_wh is not None and (w, h) != tuple(self.spec.size_wh):
            raise ConfigError(f"input_size {w}x{h} differs from the model's fixed input {self.spec.size_wh[0]}x"
                              f"{self.spec.size_wh[1]}; leave input_size unset or export with a dynamic size")
        m = max(self.spec.size_multiple, max(self.head.strides))
        if w <= 0 or h <= 0 or w % m or h % m:
            raise ConfigError(f"input_size {w}x{h} must be positive multiples of {m} for this model")
        return w, h

    def detect(self, frame_bgr: np.ndarray | None) -> Detections:
        """``frame_bgr``: uint8 (H, W, 3). Returns detections in source pixels; an empty frame gives none."""
        if frame_bgr is None or frame_bgr.size == 0 or frame_bgr.ndim != 3:
            return Detections(class_names=self.class_names)
        image, lb = letterbox(frame_bgr, self.input_size, pad_value=self.spec.pad_value)
        outputs = self.model.run(to_input_nchw([image], self.spec))
        boxes, scores, classes = decode_yolo(outputs, self.head, self.thresholds.floor, self.max_candidates,
                                             self.grids)
        ok = self.thresholds.candidates(scores, classes)
        boxes, scores, classes = boxes[ok], scores[ok], classes[ok]
        boxes, scores, classes = select_detections(boxes, scores, classes, self.iou_threshold, self.class_aware,
                                                   self.max_detections)
        h, w = frame_bgr.shape[:2]
        return Detections(boxes_xyxy=lb.to_source_xyxy(boxes, (w, h)), scores=scores.astype(np.float32),
                          class_ids=classes.astype(np.int64), class_names=self.class_names)

    def close(self) -> None:
        close = getattr(self.model, "close", None)
        if close is not None:
            close()


class ObjectDetection:
    """Pipeline stage ``detect``: fills ``packet.detections`` from the original frame.

    ``every``: run the detector on one frame in ``every`` (counted over the frames this stage sees) and carry the
    last boxes on the frames between; a frame of another size is always detected.
    """

    name = "detect"
    fail_soft = False

    def __init__(self, detector: YoloDetector, every: int = 1):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"detector.every={every!r}: must be an integer >= 1")
        self.detector = detector
        self.every = every
        self._seen = 0
        self._last: tuple[tuple[int, ...], Detections] | None = None

    @property
    def pure(self) -> bool:
        """Reads only the original frame and keeps no state (so frames may run out of order): when ``every`` is 1."""
        return self.every == 1

    def __call__(self, packet: FramePacket) -> FramePacket:
        shape = packet.frame_bgr.shape
        if self._last is None or self._last[0] != shape or self._seen % self.every == 0:
            self._last = (shape, self.detector.detect(packet.frame_bgr))
        self._seen += 1
        return dataclasses.replace(packet, detections=self._last[1])

    def reset(self) -> None:
        """A new video: detect on its first frame (no boxes carried over)."""
        self._seen = 0
        self._last = None

    def close(self) -> None:
        self.detector.close()
