"""The background face cohort that ships as ``realtime/zoo/face_cohort.npz``, and the video measurement of what it
(and the per-track identity vote) does to false accepts and flicker.

``build``: faces from the tutorial and example photos of Debian's ``opencv-doc`` (``apt-get download``; Apache-2.0
/ BSD-3-Clause), in an allow-list of photos checked by eye to show real faces (not eigenface visualisations,
heat maps or frames of the test video); CenterFace finds them (score >= 0.7, at least 50 px tall), the shipped
``dlib_resnet128.onnx`` embeds them with the shipped chip template. Held out *by person* from the measurement: a
face within 0.5 of any face of the measurement material (the people of the test clips) is dropped, and so is a
face within :data:`realtime.face.cohort.SAME_PERSON_DISTANCE` of one already kept (one face per person).

``measure``: two clips, each with one person enrolled and other faces, run through face detection and recognition
under five settings ("before": the last embedding decides, as rtv did before identities per track; then the same
with re-embedding on an abrupt appearance change; vote; cohort; vote + cohort, the default): per track, the
identity changes (flicker, the first naming included), and the face-frames where a stranger is shown as the
enrolled person (false accepts) or the enrolled person is named (true accepts).

* ``astronaut``: scikit-image's astronaut (enrolled from her photo, as ``rtv demo`` does) panned and zoomed,
  alone and beside strangers: the ``face_recognition`` 1.3.0 sdist test photos (Obama, Biden), Matplotlib's Grace
  Hopper, OpenCV's ``messi5.jpg`` and scikit-image's cameraman. Ground truth from where each photo was placed.
* ``megamind``: OpenCV's ``Megamind.avi`` (animated; 270 frames), the man in glasses enrolled from frame 240;
  ground truth labelled by hand from a contact sheet of every face track (:func:`megamind_truth`).

``python -m recipes.face_cohort build --cache ~/.cache/rtv/registry`` then
``python -m recipes.face_cohort measure --cache ~/.cache/rtv/registry``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import tarfile
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from realtime.config import load_config
from realtime.face.cohort import SAME_PERSON_DISTANCE, Cohort, cohort_for, save_cohort
from realtime.face.matching import pairwise_distances
from realtime.zoo import ROLES, ZOO_DIR

OPENCV_DOC = "opencv-doc"
FACE_RECOGNITION_SDIST = "face_recognition==1.3.0"
# opencv-doc photos that show real faces (checked by eye); everything else in the package is left out.
COHORT_PHOTOS = ("05.jpg", "06.jpg", "12.jpg", "2.jpg", "3.jpg", "227943776_1.jpg", "230501201_1.jpg", "example.jpg",
                 "face_swapped.jpg", "facereg.jpg", "imgs.jpg", "inpaint_basics.jpg", "julia_facedetect_sample.jpg",
                 "orig_comic.jpg", "fuzzy_filt_output.jpg", "Basic_Linear_Transform_Tutorial_Result_big.jpg")
HELD_OUT_DISTANCE = 0.5
MEGAMIND_ENROL_FRAME = 240
MEGAMIND_MAN_FRAMES = ((98, 153), (200, 269))  # by eye: the frames where the man in glasses is the face found


# --- registry material -----------------------------------------------------------------------------------------

COHORT_FILE = ROLES["face_cohort"].default


def opencv_doc(cache: Path, log: Callable[[str], None] = print) -> tuple[Path, str]:
    """The unpacked media of Debian's opencv-doc (``<out>/<dir>/<name>``) and its version."""
    from recipes.default_detector import _extract_deb_media, _run

    deb_dir = cache / "debian"
    deb_dir.mkdir(parents=True, exist_ok=True)
    debs = sorted(deb_dir.glob(f"{OPENCV_DOC}_*.deb"))
    if not debs and _run(["apt-get", "download", OPENCV_DOC], deb_dir, log):
        debs = sorted(deb_dir.glob(f"{OPENCV_DOC}_*.deb"))
    if not debs:
        raise SystemExit(f"cannot fetch {OPENCV_DOC} with apt-get download")
    out = deb_dir / OPENCV_DOC
    if not out.is_dir():
        _extract_deb_media(debs[0], out, log)
    return out, debs[0].name.split("_")[1]


def face_recognition_photos(cache: Path, log: Callable[[str], None] = print) -> Path:
    from recipes.default_detector import _run

    pip_dir = cache / "pypi"
    pip_dir.mkdir(parents=True, exist_ok=True)
    sdists = sorted(pip_dir.glob("face_recognition-*.tar.gz"))
    if not sdists and _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
                            "-d", str(pip_dir), FACE_RECOGNITION_SDIST], pip_dir, log):
        sdists = sorted(pip_dir.glob("face_recognition-*.tar.gz"))
    if not sdists:
        raise SystemExit(f"cannot fetch {FACE_RECOGNITION_SDIST} with pip download")
    out = pip_dir / "face_recognition"
    if not out.is_dir():
        with tarfile.open(sdists[0]) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and "/tests/test_images/" in m.name
                       and Path(m.name).suffix.lower() in (".jpg", ".jpeg")]
            tar.extractall(out, members=members, filter="data")
    return next(out.rglob("test_images"))


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return image


def test_photos(cache: Path) -> dict[str, np.ndarray]:
    """BGR photos of the measurement's people (never used for the cohort)."""
    import matplotlib
    from skimage import data

    fr = face_recognition_photos(cache)
    doc, _ = opencv_doc(cache)
    rgb = lambda a: np.ascontiguousarray((np.stack([a] * 3, -1) if a.ndim == 2 else a)[..., ::-1])  # noqa: E731
    return {"astronaut": rgb(data.astronaut()), "cameraman": rgb(data.camera()),
            "obama": _read(fr / "obama.jpg"), "obama2": _read(fr / "obama2.jpg"), "biden": _read(fr / "biden.jpg"),
            "hopper": _read(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"),
            "messi": _read(doc / "data" / "messi5.jpg")}


def megamind_frames(cache: Path) -> list[np.ndarray]:
    doc, _ = opencv_doc(cache)
    cap = cv2.VideoCapture(str(doc / "data" / "Megamind.avi"))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


# --- the models ------------------------------------------------------------------------------------------------

def open_models(detect_width: int = 640):
    from realtime.zoo import open_face_detector, open_face_embedder

    config = load_config(None)
    detector = open_face_detector(dataclasses.replace(config.faces, detect_width=detect_width), config.runtime)
    embedder = open_face_embedder(config.faces, config.runtime)
    return config, detector, embedder


def embed_all(image: np.ndarray, detector, embedder, min_score: float = 0.7, min_height: float = 50.0):
    """``(boxes float32 (K, 4), vectors float32 (K, D))`` of the confident, large enough faces in ``image``."""
    from realtime.face.enroll import embed_faces

    faces = detector.detect(image)
    keep = np.flatnonzero((faces.scores >= min_score)
                          & ((faces.boxes_xyxy[:, 3] - faces.boxes_xyxy[:, 1]) >= min_height))
    if not keep.size:
        return np.zeros((0, 4), np.float32), np.zeros((0, embedder.embedding_size), np.float32)
    sub = dataclasses.replace(faces, boxes_xyxy=faces.boxes_xyxy[keep], scores=faces.scores[keep],
                              landmarks5=faces.landmarks5[keep], identities=(None,) * keep.size,
                              distances=np.full(keep.size, np.nan, np.float32),
                              track_ids=np.full(keep.size, -1, np.int64))
    return faces.boxes_xyxy[keep], embed_faces(image, sub, embedder)[1]


# --- build -----------------------------------------------------------------------------------------------------

def build(cache: Path, out: Path, log: Callable[[str], None] = print) -> dict:
    doc, version = opencv_doc(cache, log)
    _config, detector, embedder = open_models()
    try:
        held_out = [embed_all(img, detector, embedder, 0.5, 30)[1] for img in test_photos(cache).values()]
        mm = megamind_frames(cache)
        held_out += [embed_all(mm[k], detector, embedder, 0.5, 30)[1] for k in range(0, len(mm), 10)]
        held = np.concatenate([h for h in held_out if len(h)])
        vectors, sources, dropped = [], [], []
        for name in COHORT_PHOTOS:
            matches = sorted(doc.glob(f"*/{name}"))
            if not matches:
                raise SystemExit(f"{name} not found in {OPENCV_DOC} {version}")
            image = _read(matches[0])
            boxes, vecs = embed_all(image, detector, embedder)
            for k, (box, v) in enumerate(zip(boxes, vecs)):
                where = f"debian:{OPENCV_DOC} {version} {matches[0].parent.name}/{name} face {k}"
                if pairwise_distances(v[None], held).min() < HELD_OUT_DISTANCE:
                    dropped.append(f"{where} (a measurement person)")
                    continue
                if vectors and pairwise_distances(v[None], np.stack(vectors)).min() < SAME_PERSON_DISTANCE:
                    dropped.append(f"{where} (a person already in)")
                    continue
                vectors.append(v)
                sources.append(where)
        cohort = Cohort(np.stack(vectors).astype(np.float32), tuple(sources), embedder.sha256,
                        np.asarray(embedder.template5, np.float32))
    finally:
        detector.close()
        embedder.close()
    save_cohort(out, cohort)
    entry = {
        "bytes": out.stat().st_size, "kind": "face_cohort", "name": "face_cohort",
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "source": f"Debian {OPENCV_DOC} {version}: faces in {len(COHORT_PHOTOS)} tutorial/example photos "
                  f"(recipes/face_cohort.py COHORT_PHOTOS), embedded with dlib_resnet128.onnx",
        "licence": "Apache-2.0 / BSD-3-Clause (OpenCV documentation); embeddings only, no pixels ship",
        "faces": len(sources), "embedder_sha256": embedder.sha256,
        "recipe": "python -m recipes.face_cohort build", "dropped": len(dropped),
    }
    if out.resolve().parent == ZOO_DIR.resolve():
        manifest_path = ZOO_DIR / "MANIFEST.json"
        manifest = json.loads(manifest_path.read_text())
        manifest[out.name] = entry
        manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    for line in dropped:
        log(f"dropped: {line}")
    log(f"wrote {out}: {len(sources)} faces")
    return entry


# --- measure ---------------------------------------------------------------------------------------------------

def _tile_view(tiles: list[np.ndarray], t: float, size_wh=(640, 480)) -> tuple[np.ndarray, list[tuple]]:
    """Photos side by side, gently panned and zoomed at phase ``t`` in [0, 1]; returns the frame and each
    tile's rectangle (x1, y1, x2, y2) in frame pixels."""
    w, h = size_wh
    n = len(tiles)
    cell = min(w // n, h)
    zoom = 1.0 + 0.12 * np.sin(np.pi * t)
    side = int(cell * 0.9 * zoom)
    frame = np.full((h, w, 3), 114, np.uint8)
    rects = []
    for k, tile in enumerate(tiles):
        cx = (k + 0.5) * w / n + 12 * np.sin(2 * np.pi * t + k)
        cy = h / 2 + 10 * np.cos(2 * np.pi * t + k)
        x1, y1 = int(cx - side / 2), int(cy - side / 2)
        patch = cv2.resize(tile, (side, side), interpolation=cv2.INTER_AREA)
        fx1, fy1, fx2, fy2 = max(0, x1), max(0, y1), min(w, x1 + side), min(h, y1 + side)
        frame[fy1:fy2, fx1:fx2] = patch[fy1 - y1:fy2 - y1, fx1 - x1:fx2 - x1]
        rects.append((fx1, fy1, fx2, fy2))
    return frame, rects


def _square(photo: np.ndarray, center_xy: tuple[float, float], side: float) -> np.ndarray:
    x, y = center_xy
    m = np.float32([[1, 0, side / 2 - x], [0, 1, side / 2 - y]])
    return cv2.warpAffine(photo, m, (int(side), int(side)), borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(114, 114, 114))


def astronaut_clip(photos: dict[str, np.ndarray], detector, frames_per_scene: int = 60
                   ) -> Iterator[tuple[np.ndarray, list[str | None]]]:
    """Frames and, per detected face, who it is (None where no placed photo contains the face's centre)."""
    crops = {}
    for name, photo in photos.items():  # each person's face, centred in a square crop of their photo
        faces = detector.detect(photo)
        k = int(np.argmax(faces.boxes_xyxy[:, 3] - faces.boxes_xyxy[:, 1]))
        x1, y1, x2, y2 = faces.boxes_xyxy[k]
        crops[name] = _square(photo, ((x1 + x2) / 2, (y1 + y2) / 2), 2.2 * max(x2 - x1, y2 - y1))
    scenes = [["astronaut"], ["astronaut", "obama"], ["biden", "hopper"], ["messi", "cameraman"],
              ["obama2", "astronaut", "biden"], ["hopper", "astronaut"]]
    for scene in scenes:
        for i in range(frames_per_scene):
            frame, rects = _tile_view([crops[n] for n in scene], i / max(1, frames_per_scene - 1))
            yield frame, scene, rects


def _who(box, scene, rects) -> str | None:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    for name, (x1, y1, x2, y2) in zip(scene, rects):
        if x1 <= cx < x2 and y1 <= cy < y2:
            return name.rstrip("0123456789")
    return None


# (cohort, vote rule (None: the configured one), re-embed on an abrupt thumbnail change)
SETTINGS = {"before": (False, (1, 1, 1), False), "last embedding": (False, (1, 1, 1), True),
            "vote": (False, None, True), "cohort": (True, (1, 1, 1), True), "vote + cohort": (True, None, True)}


def _run_setting(frames_faces, embedder, gallery, labels, cohort, vote, appearance, config) -> list[list[tuple]]:
    """Per frame: [(track_id, shown identity, frame identity)] for each face."""
    from realtime.face.recognition import FaceRecognition
    from realtime.face.track import APPEARANCE_CHANGE, FaceTracker, VoteRule
    from realtime.types import FramePacket
    from realtime.zoo import match_threshold

    faces_cfg = config.faces
    rule = VoteRule(*vote) if vote else VoteRule(faces_cfg.vote_window, faces_cfg.name_votes, faces_cfg.change_votes)
    stage = FaceRecognition(embedder, gallery, labels, FaceTracker(reembed_every=faces_cfg.reembed_every,
                                                                   reembed_iou=faces_cfg.reembed_iou, vote=rule),
                            match_threshold=match_threshold(faces_cfg, embedder), match_margin=faces_cfg.match_margin,
                            cohort_vectors=cohort, appearance_change=APPEARANCE_CHANGE if appearance else None)
    out = []
    for index, (frame, faces) in enumerate(frames_faces):
        f = stage(FramePacket(index=index, t_capture=0.0, t_source=0.0, frame_bgr=frame, faces=faces)).faces
        out.append(list(zip(f.track_ids.tolist(), f.track_identities, f.identities)))
    return out


def score(results: list[list[tuple]], truth: list[list[str | None]], enrolled: str) -> dict:
    """False accepts (a stranger's face-frames shown as ``enrolled``), true accepts, and flicker (identity changes
    along each track, the first naming included) for one setting."""
    fa = ta = enrolled_frames = stranger_frames = 0
    fa_tracks: set[int] = set()
    shown: dict[int, list] = {}
    for frame, labels in zip(results, truth):
        for (track, identity, _per_frame), who in zip(frame, labels):
            shown.setdefault(track, []).append(identity)
            if who == enrolled:
                enrolled_frames += 1
                ta += identity == enrolled
            elif who is not None:
                stranger_frames += 1
                if identity == enrolled:
                    fa += 1
                    fa_tracks.add(track)
    changes = [sum(a != b for a, b in zip([None] + seq[:-1], seq)) for seq in shown.values()]
    return {"false_accepts": fa, "stranger_face_frames": stranger_frames, "false_accept_tracks": len(fa_tracks),
            "true_accepts": ta, "enrolled_face_frames": enrolled_frames, "tracks": len(shown),
            "identity_changes": int(sum(changes)),
            "changes_per_track": round(float(np.mean(changes)) if changes else 0.0, 3)}


def measure(cache: Path, log: Callable[[str], None] = print) -> dict:
    from realtime.face.cohort import load_cohort

    config, detector, embedder = open_models(detect_width=config_width())
    cohort_all = load_cohort(ZOO_DIR / COHORT_FILE)
    report = {}
    try:
        photos = test_photos(cache)
        # astronaut clip: enrolled from her whole photo
        _, enrol = embed_all(photos["astronaut"], detector, embedder)
        gallery, labels = enrol[:1], np.array(["astronaut"])
        frames_faces, truth = [], []
        for frame, scene, rects in astronaut_clip(photos, detector):
            faces = detector.detect(frame)
            frames_faces.append((frame, faces))
            truth.append([_who(b, scene, rects) for b in faces.boxes_xyxy])
        report["astronaut"] = _all_settings(frames_faces, truth, "astronaut", embedder, gallery, labels,
                                            cohort_all, config)
        # megamind: the man in glasses, enrolled from one frame
        mm = megamind_frames(cache)
        boxes, vecs = embed_all(mm[MEGAMIND_ENROL_FRAME], detector, embedder, 0.5, 30)
        k = int(np.argmax(boxes[:, 3] - boxes[:, 1]))
        gallery, labels = vecs[k:k + 1], np.array(["man"])
        frames_faces = [(frame, detector.detect(frame)) for frame in mm]
        truth = megamind_truth(frames_faces)
        report["megamind"] = _all_settings(frames_faces, truth, "man", embedder, gallery, labels, cohort_all, config)
    finally:
        detector.close()
        embedder.close()
    log(json.dumps(report, indent=1))
    return report


def config_width() -> int:
    return load_config(None).faces.detect_width


def megamind_truth(frames_faces) -> list[list[str | None]]:
    """Who each Megamind face is, labelled by hand from a contact sheet of every face track: the man in glasses is
    the only face detected in frames 98-153 and 200-269 (:data:`MEGAMIND_MAN_FRAMES`); every other detected face
    (Roxanne, the blurred man in the background) is someone else."""
    def his(index: int) -> bool:
        return any(lo <= index <= hi for lo, hi in MEGAMIND_MAN_FRAMES)

    return [["man" if his(i) else "other"] * len(faces) for i, (_frame, faces) in enumerate(frames_faces)]


def _all_settings(frames_faces, truth, enrolled, embedder, gallery, labels, cohort_all, config) -> dict:
    out = {}
    for name, (use_cohort, vote, appearance) in SETTINGS.items():
        cohort = cohort_for(cohort_all, embedder.sha256, embedder.template5, gallery) if use_cohort else None
        results = _run_setting(frames_faces, embedder, gallery, labels, cohort, vote, appearance, config)
        out[name] = score(results, truth, enrolled)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.face_cohort", description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("build", "measure"))
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "rtv" / "registry"),
                        help="where registry packages are fetched to")
    parser.add_argument("--out", default=str(ZOO_DIR / COHORT_FILE), help="cohort file (build)")
    parser.add_argument("--json", help="also write the measurement as JSON here")
    args = parser.parse_args(argv)
    cache = Path(args.cache).expanduser()
    if args.step == "build":
        build(cache, Path(args.out))
    else:
        report = measure(cache)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
