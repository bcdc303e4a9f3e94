"""Door-mode fixtures: a scripted scene video (scikit-image photos), a gallery with the astronaut enrolled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SIZE_WH = (480, 360)
FPS = 10.0
BLANK = 8  # frames with nobody: longer than the tracker's max_missed (5), so the next face is a new track

# (what, frames): the enrolled astronaut for too few frames, then long enough (GRANT), the unenrolled cameraman
# (DENY unknown), the astronaut again inside the person cooldown (no second GRANT).
SCRIPT = (("astronaut", 3), ("blank", BLANK), ("astronaut", 12), ("blank", BLANK), ("cameraman", 12),
          ("blank", BLANK), ("astronaut", 12))


def _photos() -> dict[str, np.ndarray]:
    data = pytest.importorskip("skimage.data")
    astro = np.ascontiguousarray(data.astronaut()[..., ::-1])
    camera = np.ascontiguousarray(np.stack([data.camera()] * 3, axis=-1))
    return {"astronaut": astro, "cameraman": camera}


def _view(photo: np.ndarray, center_xy: tuple[float, float], zoom: float) -> np.ndarray:
    import cv2

    w, h = SIZE_WH
    m = np.float32([[zoom, 0, w / 2 - zoom * center_xy[0]], [0, zoom, h / 2 - zoom * center_xy[1]]])
    return cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(114, 114, 114))


CENTERS = {"astronaut": (250.0, 190.0), "cameraman": (260.0, 150.0)}


def scene_frames(script=SCRIPT):
    """Yield ``(what, frame_bgr)``: each person drifts a few pixels per frame so no two frames are identical."""
    photos = _photos()
    for what, n in script:
        for k in range(n):
            if what == "blank":
                yield what, np.full((SIZE_WH[1], SIZE_WH[0], 3), 114, np.uint8)
            else:
                cx, cy = CENTERS[what]
                yield what, _view(photos[what], (cx + 1.5 * k, cy + 0.5 * k), 0.9 + 0.01 * k)


@pytest.fixture(scope="session")
def scene_video(tmp_path_factory) -> tuple[Path, list[str]]:
    """The scripted scene as an H.264 MP4 (written through ``realtime.io.sinks.Mp4Writer``) and what each frame shows."""
    from realtime.io.sinks import Mp4Writer

    path = tmp_path_factory.mktemp("door") / "scene.mp4"
    labels = []
    with Mp4Writer(path, fps=FPS, crf=18, preset="ultrafast") as writer:
        for what, frame in scene_frames():
            writer.write(frame)
            labels.append(what)
    return path, labels


@pytest.fixture(scope="session")
def astronaut_gallery(tmp_path_factory) -> Path:
    """A gallery with the astronaut enrolled from the unmoved photo (the cameraman is not enrolled)."""
    import dataclasses

    from realtime.config import Config
    from realtime.face.enroll import collect_samples
    from realtime.gallery.store import Gallery
    from realtime.zoo import open_face_detector, open_face_embedder

    path = tmp_path_factory.mktemp("gallery") / "gallery.sqlite"
    config = Config()
    detector = open_face_detector(dataclasses.replace(config.faces, detect_width=512), config.runtime)
    embedder = open_face_embedder(config.faces, config.runtime)
    try:
        samples, refused = collect_samples([("astronaut", _photos()["astronaut"])], detector, embedder, 40, 25.0)
        assert samples, refused
        contract = embedder.model.contract
        with Gallery.open(path, model_sha256=embedder.sha256, model_name=contract.name,
                          embedding_size=contract.embedding_size, create=True) as gallery:
            gallery.enroll("astronaut", samples[0].vector[None, :])
    finally:
        detector.close()
        embedder.close()
    return path
