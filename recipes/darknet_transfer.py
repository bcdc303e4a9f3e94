"""Transfer learning, as the seed teaches it: darknet's COCO yolov3-tiny fine-tuned for faces against the same
network trained from scratch, same data, same steps, held-out AP@0.5 side by side.

Data: the face data set that ``recipes.default_detector.build_dataset`` builds (teacher-labelled photos and
composites). Both runs use ``models.train.detector.train_detector``; the COCO run starts from
``rtv import darknet ... --checkpoint`` (heads re-made for one class, darknet's anchors) with the backbone frozen
for the first ``freeze_epochs`` epochs; the scratch run starts from PyTorch's default initialisation of the same
cfg. ``python -m recipes.darknet_transfer --data DATA.yaml --work-dir W`` prints and writes ``W/transfer.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Sequence


def run_transfer(data_yaml: Path | str, work_dir: Path | str, epochs: int = 3, freeze_epochs: int = 1,
                 steps_per_epoch: int = 30, batch_size: int = 8, img_size: int = 256, lr: float = 1e-3,
                 threads: int = 1, splits: Sequence[str] = ("test", "test_composite", "test_lfw"), seed: int = 0
                 ) -> dict[str, Any]:
    """Train both runs and evaluate their best checkpoints on ``splits``; returns the table as a dict."""
    import torch

    from models.darknet import read_cfg, save_darknet_checkpoint, with_classes
    from models.datasets import load_data_yaml
    from models.evaluate import evaluate_detector
    from models.importers.darknet_weights import load_darknet
    from models.sources import YOLOV3_TINY_CFG, YOLOV3_TINY_WEIGHTS, locate
    from models.train.detector import darknet_init, train_detector

    torch.manual_seed(seed)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    names = load_data_yaml(data_yaml).names
    cfg, weights = locate(YOLOV3_TINY_CFG), locate(YOLOV3_TINY_WEIGHTS)
    coco, _ = load_darknet(cfg, weights)
    save_darknet_checkpoint(work / "coco_init.pt", coco, [f"coco{i}" for i in range(80)])
    save_darknet_checkpoint(work / "scratch_init.pt", with_classes(read_cfg(cfg), len(names)), names)
    result: dict[str, Any] = {"data": str(data_yaml), "epochs": epochs, "freeze_epochs": freeze_epochs,
                              "steps_per_epoch": steps_per_epoch, "batch_size": batch_size, "img_size": img_size,
                              "lr": lr, "threads": threads, "runs": {}}
    for run, init, freeze in (("coco_finetune", work / "coco_init.pt", freeze_epochs),
                              ("scratch", work / "scratch_init.pt", 0)):
        started = time.perf_counter()
        done = work / run / "history.json"
        if done.is_file() and (work / run / "best.pt").is_file():  # trained by an earlier call: evaluate only
            history = json.loads(done.read_text())
            trained = {"checkpoint": work / run / "best.pt", "history": history,
                       "best_map50": max(h["map50"] for h in history)}
        else:
            trained = train_detector(data_yaml, work / run, epochs=epochs, img_size=img_size,
                                     batch_size=batch_size, lr=lr, max_steps_per_epoch=steps_per_epoch,
                                     threads=threads, seed=seed, progress=False, init_checkpoint=init,
                                     freeze_epochs=freeze)
        model = darknet_init(trained["checkpoint"], names, img_size).eval()
        held_out = {split: evaluate_detector(model, *_split_source(Path(data_yaml), split)) for split in splits}
        result["runs"][run] = {"val_map50_per_epoch": [h["map50"] for h in trained["history"]],
                               "frozen_per_epoch": [h.get("frozen_backbone") for h in trained["history"]],
                               "best_val_map50": trained["best_map50"],
                               "heldout": {s: {"map50": r["map50"], "images": r["images"], "boxes": r["boxes"]}
                                           for s, r in held_out.items()},
                               "seconds": round(time.perf_counter() - started, 1)}
    (work / "transfer.json").write_text(json.dumps(result, indent=1))
    return result


def _split_source(data_yaml: Path, split: str) -> tuple[Path, str]:
    """A split named in the data YAML, else the labelled folder ``images/<split>`` beside it (the recipe writes
    its extra held-out sets, test_composite and test_lfw, as folders)."""
    from models.datasets import load_data_yaml

    if split in load_data_yaml(data_yaml).splits:
        return data_yaml, split
    return data_yaml.parent / "images" / split, split


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.darknet_transfer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="data YAML (e.g. from recipes.default_detector)")
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--freeze-epochs", type=int, default=1)
    parser.add_argument("--steps-per-epoch", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--img-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    result = run_transfer(args.data, args.work_dir, args.epochs, args.freeze_epochs, args.steps_per_epoch,
                          args.batch_size, args.img_size, threads=args.threads)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
