"""Every Python example of docs/api.md and docs/stills.md runs, in a folder with the files the pages name."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.config import ZOO_DIR

REPO = Path(__file__).resolve().parents[2]
PAGES = ("docs/api.md", "docs/stills.md")
pytestmark = pytest.mark.skipif(
    not all((ZOO_DIR / n).is_file() for n in ("yolov3_tiny_coco_int8.onnx", "centerface.onnx",
                                              "dlib_resnet128.onnx", "dlib_shape5.npz")),
    reason="shipped models absent")


def examples(page: str) -> list[str]:
    text = (REPO / page).read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, video_factory_module):
    data = pytest.importorskip("skimage.data")
    root = tmp_path_factory.mktemp("docs")
    (root / "photos").mkdir()
    astronaut = np.ascontiguousarray(data.astronaut()[..., ::-1])
    cv2.imwrite(str(root / "photos" / "astronaut.png"), astronaut)
    cv2.imwrite(str(root / "photos" / "motorcycle.jpg"), data.stereo_motorcycle()[0][..., ::-1])
    cv2.imwrite(str(root / "eileen.png"), np.ascontiguousarray(astronaut[:, ::-1]))
    cv2.imwrite(str(root / "group.png"), np.hstack([astronaut[:, :256], astronaut]))
    video_factory_module(root / "street.mp4", 6)
    return root


@pytest.fixture(scope="module")
def video_factory_module():
    from tests.conftest import write_video

    return write_video


CASES = [(page, i) for page in PAGES for i in range(len(examples(page)))]


def test_every_page_has_examples():
    assert all(examples(page) for page in PAGES)


@pytest.mark.parametrize("page, number", CASES, ids=[f"{p.split('/')[-1]}-{i}" for p, i in CASES])
def test_page_example_runs(page, number, folder, monkeypatch, capsys):
    monkeypatch.chdir(folder)
    block = examples(page)[number]
    exec(compile(block, f"{page} example {number}", "exec"), {"__name__": "__docs__"})  # noqa: S102 - our docs
    out = capsys.readouterr().out
    expected = {"vision.config.detector.score_threshold": "0.4", "motorcycle.jpg": "motorbike",
                "max_frames=3": "[0, 1, 2]", "gallery.names()": "eileen", "answer.same_person": "True"}
    for needle, printed in expected.items():
        if needle in block and page == "docs/api.md":
            assert printed in out, f"{page} example {number} printed {out!r}"
    if "astronaut_annotated.png" in block:
        assert (folder / "astronaut_annotated.png").is_file()
