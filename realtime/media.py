"""What rtv takes for an image or a video file, and how it reads a still image: the one definition every command,
data-set reader and recipe uses. Needs only OpenCV and numpy; never torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Suffixes compared lower-case, with the dot.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".3gp",
                  ".wmv", ".flv")


def is_image_file(path: Path | str) -> bool:
    """True when ``path``'s suffix is one of :data:`IMAGE_SUFFIXES` (the file itself is not opened)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_video_file(path: Path | str) -> bool:
    """True when ``path``'s suffix is one of :data:`VIDEO_SUFFIXES` (the file itself is not opened)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def image_files(folder: Path | str, recursive: bool = False) -> list[Path]:
    """The image files of ``folder`` (and its sub-folders when ``recursive``), sorted by path."""
    folder = Path(folder)
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if is_image_file(p) and p.is_file())


def read_image_bgr(path: Path | str) -> np.ndarray | None:
    """A still image as uint8 (H, W, 3) BGR, the way the runtime reads image sources; ``None`` when the file
    cannot be read or decoded as an image."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        return None
    return image
