"""YOLO loss (v2/v3 style): target assignment, box, objectness and class terms.

Each ground-truth box goes to the cell holding its centre, at the scale and anchor whose shape has the highest IoU
with it (over all anchors of all scales). Assigned anchors get box, objectness (target 1) and class terms. All
other anchors get only the objectness term (target 0), except those whose predicted box already overlaps some
ground truth of the same image with IoU > ``ignore_threshold``: they are not punished as background.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from realtime.detect.yolo import MAX_LOG_WH


@dataclass(frozen=True)
class Assignment:
    """Positives of one scale: image, anchor, cell row/column and the matching ground-truth row, int64 (P,)."""

    image: torch.Tensor
    anchor: torch.Tensor
    gy: torch.Tensor
    gx: torch.Tensor
    target: torch.Tensor


def _shape_iou(wh_a: torch.Tensor, wh_b: torch.Tensor) -> torch.Tensor:
    """(N, 2), (K, 2) -> (N, K) IoU of corner-aligned boxes."""
    inter = torch.minimum(wh_a[:, None, 0], wh_b[None, :, 0]) * torch.minimum(wh_a[:, None, 1], wh_b[None, :, 1])
    union = (wh_a[:, 0] * wh_a[:, 1])[:, None] + (wh_b[:, 0] * wh_b[:, 1])[None, :] - inter
    return inter / union.clamp_min(1e-9)


def assign_targets(targets: torch.Tensor, anchors: list[torch.Tensor], strides: tuple[int, ...],
                   grid_hws: list[tuple[int, int]]) -> list[Assignment]:
    """Assign each ground truth to one (scale, anchor, cell).

    ``targets``: float (M, 6) rows ``image, class, cx, cy, w, h`` in network pixels; ``anchors``: per scale a
    float (A, 2) tensor in network pixels; ``grid_hws``: (H, W) per scale. When two ground truths land on the same
    slot, the later row wins (it overwrites the same target slot).
    """
    all_anchors = torch.cat(anchors, dim=0)
    per_scale = [len(a) for a in anchors]
    best = (_shape_iou(targets[:, 4:6], all_anchors).argmax(dim=1) if len(targets)
            else torch.zeros(0, dtype=torch.long))
    out = []
    start = 0
    for s, (count, stride, (h, w)) in enumerate(zip(per_scale, strides, grid_hws)):
        rows = torch.nonzero((best >= start) & (best < start + count)).flatten()
        t = targets[rows]
        gx = (t[:, 2] / stride).floor().long().clamp(0, w - 1)
        gy = (t[:, 3] / stride).floor().long().clamp(0, h - 1)
        out.append(Assignment(image=t[:, 0].long(), anchor=best[rows] - start, gy=gy, gx=gx, target=rows))
        start += count
    return out


def _xyxy_from_cxcywh(b: torch.Tensor) -> torch.Tensor:
    return torch.cat([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], dim=-1)


def _iou_xyxy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched IoU: (N, P, 4), (N, M, 4) -> (N, P, M)."""
    lt = torch.maximum(a[:, :, None, :2], b[:, None, :, :2])
    rb = torch.minimum(a[:, :, None, 2:], b[:, None, :, 2:])
    wh = (rb - lt).clamp_min(0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = ((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]))[:, :, None]
    area_b = ((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]))[:, None, :]
    return inter / (area_a + area_b - inter).clamp_min(1e-9)


class YoloLoss(torch.nn.Module):
    """Sum of box, objectness and class terms, divided by the batch size.

    Box term: squared error of ``sigmoid(tx), sigmoid(ty)`` against the centre offset in the cell and of
    ``tw, th`` against ``log(w / anchor_w)``, weighted by ``2 - w*h / image area`` (small boxes count more).
    Objectness and class terms: binary cross-entropy on logits. ``noobj_weight`` scales the background term.
    """

    def __init__(self, anchors, strides: tuple[int, ...], num_classes: int, ignore_threshold: float = 0.5,
                 box_weight: float = 2.0, obj_weight: float = 1.0, noobj_weight: float = 1.0,
                 cls_weight: float = 1.0):
        super().__init__()
        self.anchors = [torch.as_tensor(a, dtype=torch.float32).reshape(-1, 2) for a in anchors]
        self.strides = tuple(int(s) for s in strides)
        self.num_classes = num_classes
        self.ignore_threshold = ignore_threshold
        self.weights = (box_weight, obj_weight, noobj_weight, cls_weight)

    def forward(self, outputs: list[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """``outputs``: raw (N, A*(5+C), H, W) per stride; ``targets``: (M, 6) ``image, class, cx, cy, w, h`` in
        network pixels. Returns the total loss and its parts as floats."""
        n = outputs[0].shape[0]
        fields = 5 + self.num_classes
        preds = []
        for out, anchors in zip(outputs, self.anchors):
            _, _, h, w = out.shape
            preds.append(out.view(n, len(anchors), fields, h, w).permute(0, 1, 3, 4, 2))  # (N, A, H, W, F)
        grid_hws = [(p.shape[2], p.shape[3]) for p in preds]
        assignments = assign_targets(targets, self.anchors, self.strides, grid_hws)
        gt_xyxy, gt_valid = self._padded_gt(targets, n, outputs[0].device)
        box_w, obj_w, noobj_w, cls_w = self.weights
        box_loss = obj_loss = noobj_loss = cls_loss = outputs[0].new_zeros(())
        img_area = float(grid_hws[0][0] * self.strides[0] * grid_hws[0][1] * self.strides[0])
        for p, anchors, stride, asg in zip(preds, self.anchors, self.strides, assignments):
            anchors = anchors.to(p.device)
            _, a, h, w, _ = p.shape
            obj_target = torch.zeros(p.shape[:4], device=p.device)
            noobj_mask = torch.ones(p.shape[:4], dtype=torch.bool, device=p.device)
            with torch.no_grad():  # predictions that already overlap a ground truth well are not background
                if gt_valid.any():
                    boxes = self._decode(p.detach(), anchors, stride).reshape(n, -1, 4)
                    iou = _iou_xyxy(boxes, gt_xyxy).masked_fill(~gt_valid[:, None, :], 0.0)
                    noobj_mask &= ~(iou.max(dim=2).values > self.ignore_threshold).view(n, a, h, w)
            if len(asg.target):
                t = targets[asg.target]
                sel = p[asg.image, asg.anchor, asg.gy, asg.gx]  # (P, F)
                obj_target[asg.image, asg.anchor, asg.gy, asg.gx] = 1.0
                noobj_mask[asg.image, asg.anchor, asg.gy, asg.gx] = False
                offset = t[:, 2:4] / stride - torch.stack([asg.gx, asg.gy], dim=1).float()
                log_wh = torch.log(t[:, 4:6] / anchors[asg.anchor]).clamp(-6, 6)
                scale = 2.0 - (t[:, 4] * t[:, 5]) / img_area
                err = ((torch.sigmoid(sel[:, 0:2]) - offset) ** 2).sum(1) + ((sel[:, 2:4] - log_wh) ** 2).sum(1)
                box_loss = box_loss + (scale * err).sum()
                obj_loss = obj_loss + F.binary_cross_entropy_with_logits(
                    sel[:, 4], torch.ones_like(sel[:, 4]), reduction="sum")
                cls_target = F.one_hot(t[:, 1].long(), self.num_classes).float()
                cls_loss = cls_loss + F.binary_cross_entropy_with_logits(sel[:, 5:], cls_target, reduction="sum")
            noobj_loss = noobj_loss + F.binary_cross_entropy_with_logits(
                p[..., 4][noobj_mask], obj_target[noobj_mask], reduction="sum")
        total = (box_w * box_loss + obj_w * obj_loss + noobj_w * noobj_loss + cls_w * cls_loss) / n
        parts = {"box": float(box_loss.detach()) / n, "obj": float(obj_loss.detach()) / n,
                 "noobj": float(noobj_loss.detach()) / n,
                 "cls": float(cls_loss.detach()) / n}
        return total, parts

    @staticmethod
    def _decode(p: torch.Tensor, anchors: torch.Tensor, stride: int) -> torch.Tensor:
        """(N, A, H, W, F) raw -> (N, A, H, W, 4) xyxy network pixels (same maths as realtime.detect.yolo, yolov3 coder)."""
        _, a, h, w, _ = p.shape
        gy, gx = torch.meshgrid(torch.arange(h, device=p.device), torch.arange(w, device=p.device), indexing="ij")
        xy = (torch.sigmoid(p[..., 0:2]) + torch.stack([gx, gy], dim=-1)) * stride
        wh = torch.exp(p[..., 2:4].clamp(max=MAX_LOG_WH)) * anchors.view(1, a, 1, 1, 2)
        return _xyxy_from_cxcywh(torch.cat([xy, wh], dim=-1))

    @staticmethod
    def _padded_gt(targets: torch.Tensor, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Ground truths per image padded to (N, Mmax, 4) xyxy, with a (N, Mmax) validity mask."""
        counts = torch.bincount(targets[:, 0].long(), minlength=n) if len(targets) else torch.zeros(n, dtype=torch.long)
        m = max(int(counts.max()) if n else 0, 1)
        boxes = torch.zeros(n, m, 4, device=device)
        valid = torch.zeros(n, m, dtype=torch.bool, device=device)
        if len(targets):
            img = targets[:, 0].long()
            order = torch.argsort(img, stable=True)
            img = img[order]
            starts = torch.cumsum(counts, 0) - counts
            slot = torch.arange(len(img), device=device) - starts[img]
            boxes[img, slot] = _xyxy_from_cxcywh(targets[order, 2:6])
            valid[img, slot] = True
        return boxes, valid
