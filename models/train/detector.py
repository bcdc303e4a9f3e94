"""Train the YOLO detector on a YOLO-format data set: anchors by k-means, AdamW + cosine schedule, validation
mAP@0.5 every epoch, state-dict checkpoints and a loss/mAP plot next to them."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.anchors import anchor_fitness, kmeans_anchors, split_anchors
from models.datasets import Augment, YoloDataset, collate, load_data_yaml
from models.evaluate import evaluate_predictions, mean_ap, predict_torch
from models.losses import YoloLoss
from models.yolo import YoloConfig, YoloNet, save_checkpoint
from realtime.errors import ConfigError, DataError

VARIANTS = {"v2": (32,), "v3": (16, 32)}


@dataclass(frozen=True)
class DarknetHeadConfig:
    """What training and evaluation read from ``model.config`` for a darknet network."""

    classes: tuple[str, ...]
    anchors: tuple[tuple[tuple[float, float], ...], ...]
    strides: tuple[int, ...]
    img_size: int
    layout: str = "yolov3_nchw"

    @property
    def num_classes(self) -> int:
        return len(self.classes)


class DarknetDetector(torch.nn.Module):
    """A :class:`models.darknet.DarknetNet` with [yolo] heads, trainable like :class:`YoloNet` (``config``, list
    outputs). ``backbone``: its layer indices that ``freeze_backbone`` freezes."""

    def __init__(self, net, classes, img_size: int):
        super().__init__()
        from models.darknet import backbone_layers

        if any(h.kind != "yolo" or h.scale_x_y != 1.0 for h in net.heads):
            raise ConfigError("only darknet models with plain [yolo] heads (scale_x_y = 1) can be fine-tuned")
        self.net = net
        self.config = DarknetHeadConfig(tuple(classes), tuple(h.anchors_wh for h in net.heads),
                                        tuple(h.stride for h in net.heads), int(img_size))
        self.backbone = backbone_layers(net)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.net(x))

    def freeze_backbone(self, frozen: bool) -> None:
        for i in self.backbone:
            for param in self.net.layers[i].parameters():
                param.requires_grad_(not frozen)
            if frozen:
                self.net.layers[i].eval()  # keep the COCO batch-norm statistics while frozen

    def save(self, path: Path, **extra: Any) -> None:
        from models.darknet import save_darknet_checkpoint

        save_darknet_checkpoint(path, self.net, self.config.classes, img_size=self.config.img_size, **extra)


def darknet_init(path: Path | str, classes: tuple[str, ...], img_size: int) -> DarknetDetector:
    """A darknet checkpoint (``rtv import darknet ... --checkpoint``) adapted to ``classes``: heads re-made for
    them when the counts or names differ, everything else kept (transfer learning)."""
    from models.darknet import load_darknet_checkpoint, with_classes

    net, ckpt_classes, _ = load_darknet_checkpoint(path)
    if tuple(ckpt_classes) != tuple(classes):
        net = with_classes(net, len(classes))
    return DarknetDetector(net, classes, img_size)


def _save(path: Path, model, **extra: Any) -> None:
    if isinstance(model, DarknetDetector):
        model.save(path, **extra)
    else:
        save_checkpoint(path, model, **extra)


def training_box_shapes(dataset: YoloDataset) -> np.ndarray:
    """(N, 2) box widths/heights in network pixels after letterboxing each training image to the input size."""
    import cv2

    shapes = []
    for path, labels in zip(dataset.images, dataset.labels):
        if not len(labels):
            continue
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise DataError(f"{path}: cannot be read as an image")
        h, w = image.shape[:2]
        scale = dataset.img_size / max(w, h)
        shapes.append(np.stack([labels[:, 3] * w * scale, labels[:, 4] * h * scale], axis=1))
    if not shapes:
        raise DataError("the training split has no labelled boxes; anchors cannot be computed")
    return np.concatenate(shapes)


def plot_history(history: list[dict[str, float]], path: Path) -> Path:
    """Loss and validation mAP@0.5 per epoch as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.2))
    epochs = [h["epoch"] for h in history]
    ax = fig.add_subplot(1, 2, 1)
    for key in ("loss", "box", "obj", "noobj", "cls"):
        ax.plot(epochs, [h[key] for h in history], label=key)
    ax.set_xlabel("epoch")
    ax.set_title("training loss")
    ax.legend(fontsize=7)
    ax = fig.add_subplot(1, 2, 2)
    ax.plot(epochs, [h["map50"] for h in history], marker="o")
    ax.set_xlabel("epoch")
    ax.set_title("validation mAP@0.5")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def validate(model: YoloNet, dataset: YoloDataset, limit: int | None = None) -> dict[Any, float]:
    """Per-class AP@0.5 on a (non-augmented) data set, boxes compared in letterboxed network pixels."""
    indices = range(len(dataset) if limit is None else min(limit, len(dataset)))
    frames, truths = [], []
    for i in indices:
        image, boxes = dataset.letterboxed(i)
        frames.append(image)
        truths.append((boxes[:, 1:5], boxes[:, 0].astype(np.int64)))
    preds = predict_torch(model, frames, dataset.img_size)
    return evaluate_predictions(preds, truths, dataset.num_classes)


def train_detector(data_yaml: Path | str, out_dir: Path | str, epochs: int = 30, img_size: int = 320,
                   batch_size: int = 16, lr: float = 2e-3, variant: str = "v3", anchors_per_scale: int = 3,
                   width: int = 16, augment: bool = True, max_steps_per_epoch: int | None = None,
                   val_limit: int | None = None, seed: int = 0, threads: int | None = None,
                   progress: bool = True, init_checkpoint: Path | str | None = None,
                   freeze_epochs: int = 0) -> dict[str, Any]:
    """Train and write ``out_dir/{last,best}.pt``, ``history.json`` and ``training.png``.

    Returns ``{"checkpoint": best.pt, "last": last.pt, "plot": png, "history": [...], "best_map50": float,
    "anchors": [...], "anchor_fitness": float}``. ``max_steps_per_epoch`` caps the batches per epoch (smoke tests);
    ``threads`` sets ``torch.set_num_threads`` for this run. ``init_checkpoint`` starts from an earlier model with the
    same classes (fine-tuning; its anchors are kept), or from a darknet checkpoint (``rtv import darknet ...
    --checkpoint``, e.g. the COCO yolov3-tiny): its heads are re-made for the data set's classes, its anchors kept,
    and its backbone frozen for the first ``freeze_epochs`` epochs, then trained too.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"variant {variant!r} is not one of {sorted(VARIANTS)}")
    if img_size % 32 or img_size <= 0:
        raise ConfigError(f"img_size must be a positive multiple of 32, got {img_size}")
    if epochs < 1 or batch_size < 1:
        raise ConfigError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = load_data_yaml(data_yaml)
    train_set = YoloDataset.from_spec(spec, "train", img_size, Augment() if augment else None, seed)
    val_set = YoloDataset.from_spec(spec, "val", img_size, None, seed)
    strides = VARIANTS[variant]
    shapes = training_box_shapes(train_set)
    from models.darknet import is_darknet_checkpoint

    darknet = init_checkpoint is not None and is_darknet_checkpoint(init_checkpoint)
    if darknet:
        model = darknet_init(init_checkpoint, spec.names, img_size)
        config = model.config
    elif init_checkpoint is not None:
        from models.yolo import load_checkpoint

        model, _ = load_checkpoint(init_checkpoint)
        if model.config.classes != spec.names or model.config.strides != strides:
            raise ConfigError(f"{init_checkpoint}: classes {model.config.classes} / strides {model.config.strides} "
                              f"differ from the data set's {spec.names} / variant {variant}")
        config = model.config
    else:
        flat = kmeans_anchors(shapes, anchors_per_scale * len(strides), seed=seed)
        config = YoloConfig(classes=spec.names, anchors=split_anchors(flat, len(strides)), strides=strides,
                            width=width, img_size=img_size)
        model = YoloNet(config)
    fitness = anchor_fitness(shapes, np.concatenate([np.asarray(a) for a in config.anchors]))
    loss_fn = YoloLoss(config.anchors, config.strides, config.num_classes)
    loader = torch.utils.data.DataLoader(train_set, batch_size=batch_size, shuffle=True, collate_fn=collate,
                                         num_workers=0, drop_last=len(train_set) > batch_size)
    steps_per_epoch = len(loader) if max_steps_per_epoch is None else min(len(loader), max_steps_per_epoch)
    total_steps = max(1, epochs * steps_per_epoch)
    warmup = min(100, total_steps // 10)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim <= 1 else decay).append(param)
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay,
                                                                           "weight_decay": 0.0}], lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: (step + 1) / (warmup + 1) if step < warmup
        else 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup))))
    from tqdm import tqdm

    history: list[dict[str, float]] = []
    best = -1.0
    best_path, last_path = out / "best.pt", out / "last.pt"
    step = 0
    for epoch in range(1, epochs + 1):
        model.train()
        if darknet:
            model.freeze_backbone(epoch <= freeze_epochs)
        sums = {"loss": 0.0, "box": 0.0, "obj": 0.0, "noobj": 0.0, "cls": 0.0}
        seen = 0
        started = time.perf_counter()
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False)
        for images, targets in loader:
            if seen >= steps_per_epoch:
                break
            loss, parts = loss_fn(model(images), targets)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimiser.step()
            schedule.step()
            step += 1
            seen += 1
            sums["loss"] += float(loss.detach())
            for key, value in parts.items():
                sums[key] += value
            bar.set_postfix(loss=f"{sums['loss'] / seen:.3f}")
            bar.update(1)
        bar.close()
        ap = validate(model, val_set, val_limit)
        record = {"epoch": epoch, **{k: v / max(seen, 1) for k, v in sums.items()}, "map50": mean_ap(ap),
                  "frozen_backbone": bool(darknet and epoch <= freeze_epochs),
                  "lr": optimiser.param_groups[0]["lr"], "seconds": time.perf_counter() - started,
                  "ap": {spec.names[c]: v for c, v in ap.items()}}
        history.append(record)
        _save(last_path, model, epoch=epoch, metrics={"map50": record["map50"]}, history=json.dumps(history))
        score = record["map50"] if not math.isnan(record["map50"]) else 0.0
        if score > best:
            best = score
            _save(best_path, model, epoch=epoch, metrics={"map50": record["map50"]}, history=json.dumps(history))
        if progress:
            tqdm.write(f"epoch {epoch}: loss {record['loss']:.3f} val mAP@0.5 {record['map50']:.3f}")
    (out / "history.json").write_text(json.dumps(history, indent=1))
    plot = plot_history(history, out / "training.png")
    return {"checkpoint": best_path, "last": last_path, "plot": plot, "history": history, "best_map50": best,
            "anchors": [list(map(list, a)) for a in config.anchors], "anchor_fitness": fitness}
