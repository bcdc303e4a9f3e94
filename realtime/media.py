"""What rtv takes for a photo or a video file, and how it reads a photo: the one definition every command, source,
data-set reader and recipe uses. Needs only OpenCV and numpy; never torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from realtime.errors import SourceError

# Suffixes compared lower-case, with the dot.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".3gp",
                  ".wmv", ".flv")


def is_image(path: Path | str) -> bool:
    """Whether ``path`` names a photo (by its suffix; the file is not opened)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_video(path: Path | str) -> bool:
    """Whether ``path`` names a video file (by its suffix; the file is not opened)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def image_files(folder: Path | str, recursive: bool = False) -> list[Path]:
    """The photos of ``folder`` (and of its sub-folders when ``recursive``), sorted by path."""
    folder = Path(folder)
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if is_image(p) and p.is_file())


def read_image(path: Path | str) -> np.ndarray:
    """A photo as uint8 (H, W, 3) BGR at its own size, turned upright by its EXIF orientation (OpenCV's
    ``IMREAD_COLOR`` applies it). :class:`SourceError` when the file is missing or not a readable image."""
    import cv2

    from realtime.io.image_header import check_image_file

    path = Path(path)
    check_image_file(path)  # missing, a folder, a device, or too many pixels: refused before decoding
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise SourceError(f"{path}: not a readable image")
    return image


def sample_video_frames(path: Path | str, every: int, limit: int) -> list[np.ndarray]:
    """Every ``every``-th frame of the video at ``path`` (uint8 (H, W, 3) BGR, OpenCV's decoder), at most
    ``limit`` of them; empty when nothing can be read (the caller says what that means)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames, index = [], 0
    try:
        while len(frames) < limit:
            ok, frame = capture.read()
            if not ok:
                break
            if index % every == 0:
                frames.append(frame)
            index += 1
    finally:
        capture.release()
    return frames
