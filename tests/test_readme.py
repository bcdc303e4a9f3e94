"""The README's promises: its Python example runs as printed (on photos and a video made here) and does what it
says; its first lines are the two commands a newcomer needs; it stays a short front door."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _python_example() -> str:
    section = README.split("## From your own program", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_is_a_short_front_door_with_the_two_commands_first():
    lines = README.splitlines()
    assert len(lines) <= 200, len(lines)
    blocks = re.findall(r"```bash\n(.*?)```", "\n".join(lines[:10]), re.S)
    assert 'pip install -e ".[cpu]" && rtv demo' in blocks[0]
    assert "python -m pytest" in blocks[1]
    for link in re.findall(r"\]\((docs/[^)#]+)", README):
        assert (REPO / link).is_file(), link


def test_readme_python_example_runs_as_printed(tmp_path, monkeypatch):
    from skimage import data

    from tests.conftest import write_video

    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    camera = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)
    cv2.imwrite(str(tmp_path / "photo.jpg"), astronaut)
    cv2.imwrite(str(tmp_path / "alice1.jpg"), astronaut)
    cv2.imwrite(str(tmp_path / "alice2.jpg"), cv2.flip(astronaut, 1))
    group = np.zeros((512, 1024, 3), np.uint8)
    group[:, :512], group[:, 512:] = astronaut, camera
    cv2.imwrite(str(tmp_path / "group.jpg"), group)
    write_video(tmp_path / "street.mp4", 12, (320, 240))
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_python_example(), "README.md", "exec"), {})  # noqa: S102 - the README's own example
    assert (tmp_path / "people.sqlite").is_file()
    assert "alice" in out.getvalue(), out.getvalue()
