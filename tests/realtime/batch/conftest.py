"""Batch fixtures: a folder of tiny generated clips (distinct bytes), a truncated one, and a small config."""

from __future__ import annotations

from pathlib import Path

import pytest

SIZE_WH = (64, 48)
# detector only (the shipped 2.6 MB model), faces off: the batch machinery is under test, not the models
FAST_SETTINGS = ("faces.enabled=false", "detector.input_size=[64, 64]")


@pytest.fixture
def fast_settings() -> tuple[str, ...]:
    return FAST_SETTINGS


@pytest.fixture
def fast_config():
    from realtime.config import load_config

    return load_config(None, list(FAST_SETTINGS))


@pytest.fixture
def tiny_clip(video_factory):
    """``tiny_clip(path, frames)``: a 64x48 H.264 clip; ``truncated=True`` keeps the first 60% of its bytes."""

    def make(path: Path, frames: int, truncated: bool = False) -> Path:
        if not truncated:
            return video_factory(path, frames, SIZE_WH)
        full = video_factory(path.with_name("full_" + path.name), frames, SIZE_WH)
        data = full.read_bytes()
        full.unlink()
        path.write_bytes(data[: int(len(data) * 0.6)])
        return path

    return make


@pytest.fixture
def clip_dir(tmp_path: Path, tiny_clip) -> Path:
    """in/a.mp4 (8 frames), in/b.mp4 (10), in/sub/c.mp4 (12), in/broken.mp4 (truncated 40-frame clip)."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    tiny_clip(folder / "a.mp4", 8)
    tiny_clip(folder / "b.mp4", 10)
    tiny_clip(folder / "sub" / "c.mp4", 12)
    tiny_clip(folder / "broken.mp4", 40, truncated=True)
    return folder
