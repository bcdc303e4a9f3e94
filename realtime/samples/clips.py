"""Built-in clips made from public-domain photos shipped in scikit-image: no webcam and no network needed.

The demo clip pans and zooms: the astronaut (one face), the astronaut and the cameraman side by side (two faces),
then a pan over the coffee cup, the motorcycle and the cat (objects the COCO detector finds: cup, motorbike; no
person). The bench clip holds one 640x480 scene for its whole length: three faces (astronaut, cameraman, the
astronaut mirrored) above three objects (coffee cup, cat, rocket), drifting and zooming slightly so every frame
differs, the load ``rtv bench pipeline`` measures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from realtime.io.sinks import Mp4Writer

DEMO_SIZE_WH = (640, 480)
DEMO_FPS = 30.0


def _photos() -> dict[str, np.ndarray]:
    from skimage import data

    def bgr(rgb: np.ndarray) -> np.ndarray:
        if rgb.ndim == 2:
            rgb = np.stack([rgb] * 3, axis=-1)
        return np.ascontiguousarray(rgb[..., ::-1])

    return {"astronaut": bgr(data.astronaut()), "camera": bgr(data.camera()), "coffee": bgr(data.coffee()),
            "chelsea": bgr(data.chelsea()), "motorcycle": bgr(data.stereo_motorcycle()[0]),
            "rocket": bgr(data.rocket())}


def _view(photo_bgr: np.ndarray, center_xy: tuple[float, float], zoom: float, size_wh: tuple[int, int]
          ) -> np.ndarray:
    """A ``size_wh`` view of ``photo_bgr`` centred at ``center_xy`` (photo pixels), ``zoom`` output px per photo px."""
    w, h = size_wh
    cx, cy = center_xy
    m = np.float32([[zoom, 0, w / 2 - zoom * cx], [0, zoom, h / 2 - zoom * cy]])
    return cv2.warpAffine(photo_bgr, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(114, 114, 114))


def demo_frames(seconds: float = 4.0, fps: float = DEMO_FPS, size_wh: tuple[int, int] = DEMO_SIZE_WH
                ) -> Iterator[np.ndarray]:
    """Yield uint8 (H, W, 3) BGR frames: 40% astronaut pan/zoom, 30% two faces, 30% objects (cup, motorbike, cat)."""
    photos = _photos()
    w, h = size_wh
    total = max(1, int(round(seconds * fps)))
    n1, n2 = int(total * 0.4), int(total * 0.3)
    astro = photos["astronaut"]
    for i in range(n1):
        a = i / max(1, n1 - 1)
        zoom = 0.95 + 0.5 * a
        yield _view(astro, (250 + 20 * a, 210 - 40 * a), zoom * h / astro.shape[0], size_wh)
    pair = np.concatenate([cv2.resize(astro, (384, 384)), cv2.resize(photos["camera"], (384, 384))], axis=1)
    for i in range(n2):
        a = i / max(1, n2 - 1)
        yield _view(pair, (384 + 40 * np.sin(2 * np.pi * a), 170), (w / pair.shape[1]) * (1.0 + 0.15 * a),
                    size_wh)
    scene = np.concatenate([cv2.resize(photos[n], (480, 320)) for n in ("coffee", "motorcycle", "chelsea")], axis=1)
    n3 = total - n1 - n2
    for i in range(n3):
        a = i / max(1, n3 - 1)
        yield _view(scene, (240 + 960 * a, 160), h / scene.shape[0], size_wh)


def bench_scene(size_wh: tuple[int, int] = DEMO_SIZE_WH) -> np.ndarray:
    """The bench scene at twice ``size_wh``: uint8 (2H, 2W, 3) BGR, three faces in the top half (head-and-shoulder
    crops, each face about a fifth of the frame wide) and three objects in the bottom half."""
    photos = _photos()
    w, h = size_wh[0] * 2, size_wh[1] * 2
    tile_w, tile_h = w // 3, h // 2
    astro_crop = photos["astronaut"][0:330, 60:400]
    camera_crop = photos["camera"][40:380, 90:390]
    tops = [astro_crop, camera_crop, np.ascontiguousarray(astro_crop[:, ::-1])]
    bottoms = [photos["coffee"][20:400, 60:560], photos["chelsea"], photos["rocket"][:, 100:560]]
    scene = np.full((h, w, 3), 114, np.uint8)
    for row, crops in enumerate((tops, bottoms)):
        for k, crop in enumerate(crops):
            scale = min(tile_w / crop.shape[1], tile_h / crop.shape[0]) * 0.96
            tile = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            y = row * tile_h + (tile_h - tile.shape[0]) // 2
            x = k * tile_w + (tile_w - tile.shape[1]) // 2
            scene[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    return scene


def bench_frames(seconds: float = 6.0, fps: float = DEMO_FPS, size_wh: tuple[int, int] = DEMO_SIZE_WH
                 ) -> Iterator[np.ndarray]:
    """Yield uint8 (H, W, 3) BGR frames of :func:`bench_scene`, drifting by up to 3% and zooming by up to 4%."""
    scene = bench_scene(size_wh)
    w, h = size_wh
    total = max(1, int(round(seconds * fps)))
    for i in range(total):
        a = 2 * np.pi * i / max(1, total)
        zoom = 0.5 * (1.0 + 0.04 * (0.5 - 0.5 * np.cos(a)))
        center = (scene.shape[1] / 2 + 0.03 * w * np.sin(a), scene.shape[0] / 2 + 0.02 * h * np.sin(2 * a))
        yield _view(scene, center, zoom, size_wh)


def write_demo_clip(path: Path | str, seconds: float = 4.0, fps: float = DEMO_FPS,
                    size_wh: tuple[int, int] = DEMO_SIZE_WH, frames=demo_frames) -> Path:
    """Write the demo clip (or ``frames(seconds, fps, size_wh)``) as H.264 MP4 at ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with Mp4Writer(path, fps=fps, crf=18) as writer:
        for frame in frames(seconds, fps, size_wh):
            writer.write(frame)
    return path


def cached_demo_clip(cache_dir: Path | None = None) -> Path:
    """The demo clip, built once into ``cache_dir`` (default ``~/.cache/rtv``) and reused."""
    folder = cache_dir or Path.home() / ".cache" / "rtv"
    path = folder / "demo_clip_640x480_v2.mp4"
    if not path.is_file():
        write_demo_clip(path)
    return path


def cached_bench_clip(cache_dir: Path | None = None, seconds: float = 6.0) -> Path:
    """The bench clip (:func:`bench_frames`, 640x480 at 30 FPS), built once into ``cache_dir`` and reused."""
    folder = cache_dir or Path.home() / ".cache" / "rtv"
    path = folder / f"bench_clip_640x480_{seconds:g}s.mp4"
    if not path.is_file():
        write_demo_clip(path, seconds=seconds, frames=bench_frames)
    return path


def enroll_demo_faces(config, gallery_path: Path) -> list[str]:
    """Make a fresh demo gallery at ``gallery_path`` with the astronaut and the cameraman, enrolled from their
    (unmoved) scikit-image photos, so the demo shows names. Returns the names enrolled."""
    import dataclasses

    from realtime.face.enroll import collect_samples
    from realtime.gallery.store import Gallery
    from realtime.zoo import open_face_detector, open_face_embedder

    gallery_path = Path(gallery_path)
    for suffix in ("", "-wal", "-shm"):
        Path(str(gallery_path) + suffix).unlink(missing_ok=True)
    photos = _photos()
    detector = open_face_detector(dataclasses.replace(config.faces, detect_width=512), config.runtime)
    embedder = open_face_embedder(config.faces, config.runtime)
    names = []
    try:
        contract = embedder.model.contract
        with Gallery.open(gallery_path, model_sha256=embedder.sha256, model_name=contract.name,
                          embedding_size=contract.embedding_size, create=True) as gallery:
            for name in ("astronaut", "camera"):
                samples, _refused = collect_samples([(f"scikit-image data.{name}()", photos[name])], detector,
                                                    embedder, config.faces.min_face_px, config.faces.min_sharpness)
                if samples:
                    person = "cameraman" if name == "camera" else name
                    gallery.enroll(person, samples[0].vector[None, :], sources=[samples[0].source],
                                   qualities=[samples[0].sharpness])
                    names.append(person)
    finally:
        detector.close()
        embedder.close()
    return names
