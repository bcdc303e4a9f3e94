"""One definition of image and video suffixes, and the one still-image reader."""

import ast
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.errors import SourceError
from realtime.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, image_files, is_image, is_video, read_image

ROOT = Path(__file__).resolve().parents[2]


def test_suffixes_are_lower_case_dotted_and_disjoint():
    for suffix in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
        assert suffix.startswith(".") and suffix == suffix.lower()
    assert not set(IMAGE_SUFFIXES) & set(VIDEO_SUFFIXES)
    assert is_image("a/B.JPG") and is_video("clip.MKV") and not is_image("clip.mp4")


def test_image_files_sorted_and_recursive_only_when_asked(tmp_path):
    for name in ("b.png", "a.jpg", "notes.txt", "sub/c.webp"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in image_files(tmp_path)] == ["a.jpg", "b.png"]
    assert [p.name for p in image_files(tmp_path, recursive=True)] == ["a.jpg", "b.png", "c.webp"]


def test_read_image_reads_pixels_and_names_a_damaged_or_missing_file(tmp_path):
    image = np.zeros((6, 8, 3), np.uint8)
    image[..., 2] = 200  # red in BGR
    cv2.imwrite(str(tmp_path / "red.png"), image)
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    got = read_image(tmp_path / "red.png")
    assert got.shape == (6, 8, 3) and got.dtype == np.uint8 and np.array_equal(got, image)
    with pytest.raises(SourceError, match="bad.jpg: not a readable image"):
        read_image(tmp_path / "bad.jpg")
    with pytest.raises(SourceError, match="image not found"):
        read_image(tmp_path / "absent.png")


def test_no_other_module_defines_its_own_suffix_list():
    """realtime.media is the one place: a module that assigns IMAGE_SUFFIXES or VIDEO_SUFFIXES itself is caught."""
    owners = []
    for package in ("realtime", "export", "models", "recipes"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                targets = node.targets if isinstance(node, ast.Assign) else \
                    [node.target] if isinstance(node, ast.AnnAssign) else []
                for target in targets:
                    if isinstance(target, ast.Name) and target.id in ("IMAGE_SUFFIXES", "VIDEO_SUFFIXES"):
                        owners.append(str(path.relative_to(ROOT)))
    assert sorted(set(owners)) == ["realtime/media.py"]
