"""Fine-tune dlib's face ResNet with the triplet loss on aligned chips of a folder-per-person data set.

Starts from the released dlib weights (or an earlier fine-tuning checkpoint), freezes the trunk except the last
``train_blocks`` residual blocks and the final ``fc``, trains with P x K batches and in-batch triplet mining
(:mod:`models.triplet`), and measures verification on held-out persons after every epoch (and once before
training, epoch 0): TAR at FAR 1e-1 / 1e-2 / 1e-3 where the number of impostor pairs supports it, and the
best-accuracy threshold. The checkpoint keeps the best epoch (epoch 0 included: if fine-tuning does not help, the
result is the starting model); ``<out>.last.pt``, ``<out>.history.json`` and a ``<out>.png`` plot of the loss and
TAR curves sit next to it. Checkpoints hold state dicts and plain values only (``torch.load(weights_only=True)``).

Validation statistics come from :mod:`realtime.face.verification` (pure numpy, no serving code).
"""

from __future__ import annotations

import json
import math
import pickle
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from models.dlib_resnet import DlibResNet, load_dlib_weights
from models.face_dataset import ChipAugment, ChipData, FaceChipDataset, PKSampler, chips_to_input, split_persons
from models.triplet import DEFAULT_ALPHA, MINING, batch_triplet_loss
from realtime.errors import ConfigError, ModelError
from realtime.face.verification import pair_distances, verification_report

CHECKPOINT_FORMAT = "rtv.face_embedder.v1"
FARS = (1e-1, 1e-2, 1e-3)
DEFAULT_TRAIN_BLOCKS = 2


def load_base_model(base: Path | str) -> tuple[DlibResNet, str]:
    """The model to start from: dlib's ``.dat`` (released weights) or a checkpoint of :func:`save_checkpoint`.

    Returns ``(model, description)``.
    """
    base = Path(base)
    if not base.is_file():
        raise ModelError(f"base weights not found: {base}")
    if base.suffix == ".dat":
        from models.importers.dlib_dat import DlibFormatError

        model = DlibResNet()
        try:
            load_dlib_weights(model, base)
        except DlibFormatError as exc:
            raise ModelError(f"cannot read dlib weights {base}: {exc}") from exc
        return model, f"dlib weights {base.name}"
    model, data = load_checkpoint(base)
    return model, f"checkpoint {base.name} (from {data.get('base', '?')})"


def save_checkpoint(path: Path | str, model: DlibResNet, **extra: Any) -> None:
    """State dict plus plain values (epoch, metrics, config, history as JSON text)."""
    torch.save({"format": CHECKPOINT_FORMAT, "model": model.state_dict(), **extra}, path)


def load_checkpoint(path: Path | str) -> tuple[DlibResNet, dict[str, Any]]:
    """Rebuild the network from a checkpoint of :func:`save_checkpoint` (``weights_only=True``); eval mode."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        # torch reports a non-zip file as UnpicklingError, a damaged zip as RuntimeError
        raise ModelError(f"{path}: not a readable PyTorch checkpoint ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path}: not a face embedder checkpoint (no format {CHECKPOINT_FORMAT!r}); make one "
                         "with 'rtv train embedder'")
    model = DlibResNet()
    try:
        model.load_state_dict(data["model"])
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit DlibResNet ({exc})") from exc
    return model.eval(), data


def freeze_trunk(model: DlibResNet, train_blocks: int) -> list[torch.nn.Parameter]:
    """Train only the last ``train_blocks`` residual blocks and ``fc`` (all layers when ``train_blocks < 0`` or at
    least the number of blocks); return the trainable parameters."""
    n = len(model.blocks)
    first = 0 if train_blocks < 0 or train_blocks >= n else n - train_blocks
    for param in model.parameters():
        param.requires_grad_(False)
    modules = list(model.blocks[first:]) + [model.fc]
    if first == 0:
        modules += [model.conv1, model.affine1]
    trainable = [p for m in modules for p in m.parameters()]
    for param in trainable:
        param.requires_grad_(True)
    return trainable


@torch.no_grad()
def embed_chips(model: DlibResNet, chips_rgb: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """uint8 (N, 150, 150, 3) RGB chips -> float32 (N, 128) embeddings (eval mode, no augmentation)."""
    model.eval()
    out = [model(chips_to_input(chips_rgb[i:i + batch_size])).numpy() for i in range(0, len(chips_rgb), batch_size)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 128), np.float32)


def verification_figures(vectors: np.ndarray, labels: np.ndarray, fars: tuple[float, ...] = FARS
                         ) -> dict[str, Any]:
    """Genuine/impostor pair counts, TAR at each FAR (``None`` when fewer than ``1 / far`` impostor pairs make that
    FAR unmeasurable), the best-accuracy threshold and accuracy, and mean pair distances."""
    report = verification_report(*pair_distances(vectors, labels), fars)
    rows = {f"{row['far']:g}": row for row in report["at_far"]}
    return {"genuine_pairs": report["genuine_pairs"], "impostor_pairs": report["impostor_pairs"],
            "tar": {k: row.get("tar") for k, row in rows.items()},
            "threshold_at_far": {k: row.get("threshold") for k, row in rows.items()},
            "best_threshold": report["best_threshold"], "best_accuracy": report["best_accuracy"],
            "mean_genuine": float("nan") if report["genuine_mean"] is None else report["genuine_mean"],
            "mean_impostor": float("nan") if report["impostor_mean"] is None else report["impostor_mean"]}


def selection_score(figures: dict[str, Any]) -> tuple[str, float]:
    """What picks the best epoch: TAR at the smallest measurable FAR, else the best pair accuracy."""
    measurable = [(float(k), v) for k, v in figures["tar"].items() if v is not None]
    if measurable:
        far, tar = min(measurable)
        return f"TAR@FAR={far:g}", float(tar)
    return "best accuracy", float(figures["best_accuracy"])


def plot_history(history: list[dict[str, Any]], path: Path) -> Path:
    """Training loss and validation TAR per epoch as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.2))
    ax = fig.add_subplot(1, 3, 1)
    trained = [h for h in history if h["epoch"] > 0]
    ax.plot([h["epoch"] for h in trained], [h["loss"] for h in trained], marker="o", label="triplet loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("triplet loss")
    ax.set_title("training")
    twin = ax.twinx()
    twin.plot([h["epoch"] for h in trained], [h["active"] for h in trained], "C1.--", label="active triplets")
    twin.set_ylabel("share of triplets with loss > 0")
    twin.set_ylim(0, 1.02)
    ax = fig.add_subplot(1, 3, 3)
    val = [h for h in history if h.get("val")]
    for key, label in (("mean_genuine", "genuine pairs"), ("mean_impostor", "impostor pairs")):
        ax.plot([h["epoch"] for h in val], [h["val"][key] for h in val], marker="o", label=label)
    ax.set_xlabel("epoch (0 = before fine-tuning)")
    ax.set_title("validation: mean distance")
    ax.legend(fontsize=7)
    ax = fig.add_subplot(1, 3, 2)
    keys = list(val[0]["val"]["tar"]) if val else []
    for key in keys:
        points = [(h["epoch"], h["val"]["tar"][key]) for h in val if h["val"]["tar"][key] is not None]
        if points:
            ax.plot(*zip(*points), marker="o", label=f"TAR@FAR={key}")
    if val:
        ax.plot([h["epoch"] for h in val], [h["val"]["best_accuracy"] for h in val], "k--", label="best pair acc.")
    ax.set_xlabel("epoch (0 = before fine-tuning)")
    ax.set_title("validation (held-out persons)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def sibling(path: Path, suffix: str) -> Path:
    """``out.pt`` -> ``out<suffix>`` in the same folder (e.g. ``.last.pt``, ``.png``)."""
    return path.with_name(path.stem + suffix)


def train_embedder(data: ChipData, out_path: Path | str, base: Path | str, *, epochs: int = 10,
                   alpha: float = DEFAULT_ALPHA, mining: str = "semihard", p: int = 8, k: int = 4,
                   steps_per_epoch: int | None = None, lr: float = 1e-4, weight_decay: float = 1e-4,
                   train_blocks: int = DEFAULT_TRAIN_BLOCKS, val_fraction: float = 0.25, augment: bool = True,
                   seed: int = 0, threads: int | None = None, progress: bool = True,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Fine-tune and write the checkpoint ``out_path`` (best epoch) plus its ``.last.pt``, ``.history.json`` and
    ``.png`` siblings.

    ``data``: prepared chips; ``base``: dlib ``.dat`` or an earlier checkpoint. Persons are split by
    :func:`split_persons` (``val_fraction`` 0: no validation, the last epoch is kept). ``steps_per_epoch``
    defaults to enough P x K batches to show every training chip about once. ``threads`` sets
    ``torch.set_num_threads``. Returns ``{"checkpoint", "last", "plot", "history", "best_epoch", "selection",
    "persons": {"train": [...], "val": [...]}}``.
    """
    if mining not in MINING:
        raise ConfigError(f"mining must be one of {MINING}, got {mining!r}")
    if epochs < 1 or p < 2 or k < 2 or lr <= 0 or alpha < 0:
        raise ConfigError(f"need epochs >= 1, p >= 2, k >= 2, lr > 0, alpha >= 0; got epochs={epochs}, p={p}, "
                          f"k={k}, lr={lr}, alpha={alpha}")
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    say = log or (lambda _msg: None)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    train_ids, val_ids = split_persons(data.counts(), val_fraction, seed)
    train_data, val_data = data.subset(train_ids), data.subset(val_ids) if len(val_ids) else None
    model, base_description = load_base_model(base)
    trainable = freeze_trunk(model, train_blocks)
    n_trainable = sum(prm.numel() for prm in trainable)
    dataset = FaceChipDataset(train_data, ChipAugment() if augment else None, seed)
    steps = steps_per_epoch or max(1, math.ceil(len(dataset) / (p * k)))
    sampler = PKSampler(train_data.labels, p, k, steps, seed)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=0)
    optimiser = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs * steps, eta_min=lr * 0.05)
    config = {"alpha": alpha, "mining": mining, "p": sampler.p, "k": k, "steps_per_epoch": steps, "lr": lr,
              "weight_decay": weight_decay, "train_blocks": train_blocks, "trainable_parameters": n_trainable,
              "val_fraction": val_fraction, "augment": augment, "seed": seed, "epochs": epochs}
    say(f"{len(train_data.chips)} chips of {len(train_ids)} persons for training, "
        f"{0 if val_data is None else len(val_data.chips)} chips of {len(val_ids)} held-out persons for "
        f"validation; {n_trainable} trainable parameters; starting from {base_description}")

    from tqdm import tqdm

    def validate() -> dict[str, Any] | None:
        return None if val_data is None else verification_figures(embed_chips(model, val_data.chips),
                                                                  val_data.labels)

    best_path, last_path = out, sibling(out, ".last.pt")
    history: list[dict[str, Any]] = [{"epoch": 0, "val": validate()}]
    best_score, best_epoch, selection = -1.0, -1, "last epoch (no validation)"

    def keep(epoch: int, path: Path) -> None:
        save_checkpoint(path, model, epoch=epoch, base=base_description, config=config,
                        metrics=json.dumps(history[-1]), history=json.dumps(history),
                        persons=json.dumps({"train": train_data.names.tolist(),
                                            "val": [] if val_data is None else val_data.names.tolist()}))

    def consider(epoch: int) -> None:
        nonlocal best_score, best_epoch, selection
        figures = history[-1]["val"]
        if figures is None:
            best_epoch = epoch
            keep(epoch, best_path)
            return
        selection, score = selection_score(figures)
        if score > best_score:
            best_score, best_epoch = score, epoch
            keep(epoch, best_path)

    if val_data is not None:
        say(f"epoch 0 (before fine-tuning): {_format_val(history[0]['val'])}")
        consider(0)
    for epoch in range(1, epochs + 1):
        model.train()
        started = time.perf_counter()
        sums = {"loss": 0.0, "active": 0.0, "triplets": 0}
        seen = 0
        bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False)
        for inputs, labels in loader:
            result = batch_triplet_loss(model(inputs), labels, alpha, mining)
            optimiser.zero_grad(set_to_none=True)
            result.loss.backward()
            optimiser.step()
            schedule.step()
            seen += 1
            sums["loss"] += float(result.loss.detach())
            sums["active"] += 0.0 if math.isnan(result.active) else result.active
            sums["triplets"] += len(result.losses)
            bar.set_postfix(loss=f"{sums['loss'] / seen:.4f}", active=f"{sums['active'] / seen:.2f}")
            bar.update(1)
        bar.close()
        record = {"epoch": epoch, "loss": sums["loss"] / max(seen, 1), "active": sums["active"] / max(seen, 1),
                  "triplets": sums["triplets"], "lr": optimiser.param_groups[0]["lr"],
                  "seconds": round(time.perf_counter() - started, 2), "val": validate()}
        history.append(record)
        keep(epoch, last_path)
        consider(epoch)
        say(f"epoch {epoch}: loss {record['loss']:.4f} (active triplets {record['active']:.2f})"
            + (f"; {_format_val(record['val'])}" if record["val"] else ""))
    sibling(out, ".history.json").write_text(json.dumps({"config": config, "history": history}, indent=1))
    plot = plot_history(history, sibling(out, ".png"))
    return {"checkpoint": best_path, "last": last_path, "plot": plot, "history": history, "best_epoch": best_epoch,
            "selection": selection, "config": config,
            "persons": {"train": train_data.names.tolist(),
                        "val": [] if val_data is None else val_data.names.tolist()}}


def _format_val(figures: dict[str, Any]) -> str:
    tars = ", ".join(f"TAR@FAR={k} {v:.3f}" if v is not None else f"TAR@FAR={k} n/a"
                     for k, v in figures["tar"].items())
    return (f"{tars}; best threshold {figures['best_threshold']:.3f} (pair accuracy {figures['best_accuracy']:.3f}); "
            f"{figures['genuine_pairs']} genuine / {figures['impostor_pairs']} impostor pairs")

