"""Aligned face chips with person labels, chip augmentation, a person split and a P x K batch sampler.

The chips are prepared beforehand (faces detected and aligned by the serving code, in the command layer
``export/train_commands.py``) and stored as an ``.npz`` file, read here with ``allow_pickle=False``:

``chips``: uint8 (N, 150, 150, 3) RGB; ``labels``: int64 (N,) index into ``names``; ``names``: str (P,) person
names (folder names); ``sources``: str (N,) where each chip came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch

from models.dlib_resnet import CHIP_SIZE, INPUT_SCALE, MEAN_RGB
from realtime.errors import DataError

CHIP_KEYS = ("chips", "labels", "names", "sources")


@dataclass(frozen=True)
class ChipData:
    """``chips``: uint8 (N, S, S, 3) RGB; ``labels``: int64 (N,); ``names``: str (P,); ``sources``: str (N,)."""

    chips: np.ndarray
    labels: np.ndarray
    names: np.ndarray
    sources: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.chips)
        if self.chips.ndim != 4 or self.chips.shape[3] != 3 or self.chips.dtype != np.uint8:
            raise DataError(f"chips must be uint8 (N, S, S, 3), got {self.chips.dtype} {self.chips.shape}")
        if self.labels.shape != (n,) or self.sources.shape != (n,):
            raise DataError(f"{n} chips but labels {self.labels.shape} and sources {self.sources.shape}")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.names)):
            raise DataError(f"labels must index the {len(self.names)} names, got values "
                            f"{int(self.labels.min())}..{int(self.labels.max())}")

    def subset(self, persons: np.ndarray) -> "ChipData":
        """The chips of the person ids ``persons`` (int (Q,)), relabelled 0..Q-1 in the order given."""
        persons = np.asarray(persons, dtype=np.int64)
        remap = np.full(len(self.names), -1, dtype=np.int64)
        remap[persons] = np.arange(len(persons))
        keep = remap[self.labels] >= 0
        return ChipData(self.chips[keep], remap[self.labels[keep]], self.names[persons], self.sources[keep])

    def counts(self) -> np.ndarray:
        """int64 (P,) chips per person."""
        return np.bincount(self.labels, minlength=len(self.names))


def save_chips(path: Path | str, data: ChipData) -> Path:
    """Write ``data`` as an uncompressed ``.npz`` (plain arrays, no pickles)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, chips=data.chips, labels=data.labels.astype(np.int64), names=data.names.astype(str),
             sources=data.sources.astype(str))
    return path


def load_chips(path: Path | str) -> ChipData:
    """Read a file written by :func:`save_chips`; :class:`DataError` naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"chip file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in CHIP_KEYS if k not in npz.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing}; prepare it with 'rtv train embedder --data DIR'")
            return ChipData(*(npz[k] for k in CHIP_KEYS))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable chip file ({exc})") from exc


def split_persons(counts: np.ndarray, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split person ids into training and validation persons (no person in both).

    ``counts``: int (P,) chips per person. Only persons with at least 2 chips can anchor a triplet or a genuine
    pair; they are shuffled and ``round(val_fraction * usable)`` of them (at least 2 when ``val_fraction > 0``)
    go to validation; at least 2 usable persons must stay for training. Persons with one chip are added to the
    training side (they serve as negatives). Returns int64 ``(train_ids, val_ids)``, sorted.
    """
    counts = np.asarray(counts)
    usable = np.nonzero(counts >= 2)[0]
    single = np.nonzero(counts == 1)[0]
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = 0 if val_fraction == 0 else max(2, int(round(val_fraction * len(usable))))
    if len(usable) - n_val < 2:
        raise DataError(f"{len(usable)} persons have at least 2 face images; training needs 2 and a held-out "
                        f"validation of {n_val} persons needs {n_val} more: add persons or lower the validation "
                        "fraction (0 turns validation off)")
    order = np.random.default_rng(seed).permutation(usable)
    val = np.sort(order[:n_val])
    train = np.sort(np.concatenate([order[n_val:], single]))
    return train.astype(np.int64), val.astype(np.int64)


@dataclass(frozen=True)
class ChipAugment:
    """Random chip changes that keep the identity: horizontal flip, brightness/contrast/saturation jitter, and a
    small shift, rotation and scale (border pixels replicated). Probabilities and ranges are per chip."""

    flip_p: float = 0.5
    brightness: float = 0.2  # additive, fraction of 255
    contrast: float = 0.2  # multiplicative around the mean
    saturation: float = 0.2
    max_shift_px: float = 4.0
    max_rotate_deg: float = 5.0
    max_scale: float = 0.05

    def __call__(self, chip_rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``chip_rgb``: uint8 (S, S, 3) -> uint8 (S, S, 3)."""
        out = chip_rgb
        if rng.random() < self.flip_p:
            out = out[:, ::-1]
        size = out.shape[0]
        angle = rng.uniform(-self.max_rotate_deg, self.max_rotate_deg)
        scale = 1.0 + rng.uniform(-self.max_scale, self.max_scale)
        matrix = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), angle, scale)
        matrix[:, 2] += rng.uniform(-self.max_shift_px, self.max_shift_px, 2)
        out = cv2.warpAffine(np.ascontiguousarray(out), matrix, (size, size), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        x = out.astype(np.float32)
        grey = x.mean(axis=2, keepdims=True)
        x = grey + (x - grey) * (1.0 + rng.uniform(-self.saturation, self.saturation))
        x = x.mean() + (x - x.mean()) * (1.0 + rng.uniform(-self.contrast, self.contrast))
        x = x + 255.0 * rng.uniform(-self.brightness, self.brightness)
        return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def chips_to_input(chips_rgb: np.ndarray) -> torch.Tensor:
    """uint8 (N, S, S, 3) RGB chips -> float32 (N, 3, S, S) network input ``(pixel - MEAN_RGB) / 256``."""
    x = torch.from_numpy(np.ascontiguousarray(chips_rgb)).permute(0, 3, 1, 2).float()
    return (x - torch.tensor(MEAN_RGB).view(1, 3, 1, 1)) / INPUT_SCALE


class FaceChipDataset(torch.utils.data.Dataset):
    """Item ``i`` -> (float32 (3, S, S) network input, int64 label), augmented when ``augment`` is given.

    Augmentation draws from a generator seeded by (``seed``, item index, how often the item was read), so a run
    is reproducible without global random state.
    """

    def __init__(self, data: ChipData, augment: ChipAugment | None = None, seed: int = 0):
        if data.chips.shape[1:3] != (CHIP_SIZE, CHIP_SIZE):
            raise DataError(f"chips must be {CHIP_SIZE}x{CHIP_SIZE}, got {data.chips.shape[1:3]}")
        self.data = data
        self.augment = augment
        self.seed = seed
        self._reads = np.zeros(len(data.chips), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.data.chips)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        chip = self.data.chips[index]
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, int(index), int(self._reads[index])))
            self._reads[index] += 1
            chip = self.augment(chip, rng)
        return chips_to_input(chip[None])[0], int(self.data.labels[index])


class PKSampler(torch.utils.data.Sampler):
    """Batches of ``p`` persons x ``k`` chips each (indices into the data set), ``batches`` per epoch.

    Only persons with at least 2 chips are drawn; a person with fewer than ``k`` chips has some drawn twice (an
    augmented copy still differs). ``labels``: int (N,).
    """

    def __init__(self, labels: np.ndarray, p: int, k: int, batches: int, seed: int = 0):
        labels = np.asarray(labels)
        if p < 2 or k < 2 or batches < 1:
            raise DataError(f"a P x K batch needs p >= 2 persons and k >= 2 images each, and batches >= 1; got "
                            f"p={p}, k={k}, batches={batches}")
        self.by_person = [np.nonzero(labels == c)[0] for c in np.unique(labels)]
        self.by_person = [ix for ix in self.by_person if len(ix) >= 2]
        if len(self.by_person) < 2:
            raise DataError(f"{len(self.by_person)} persons have at least 2 chips; triplets need at least 2")
        self.p = min(p, len(self.by_person))
        self.k = k
        self.batches = batches
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        self.epoch += 1
        for _ in range(self.batches):
            batch: list[int] = []
            for person in rng.choice(len(self.by_person), self.p, replace=False):
                ix = self.by_person[person]
                batch.extend(rng.choice(ix, self.k, replace=len(ix) < self.k).tolist())
            yield batch
