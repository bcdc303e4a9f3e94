"""face_recognition 1.3.0's functions on rtv's models: a program changes one import line and needs no dlib.

::

    import realtime.compat.face_recognition as face_recognition   # was: import face_recognition

    known = face_recognition.load_image_file("obama.jpg")
    unknown = face_recognition.load_image_file("unknown.jpg")
    known_encoding = face_recognition.face_encodings(known)[0]
    for encoding in face_recognition.face_encodings(unknown):
        print(face_recognition.compare_faces([known_encoding], encoding))   # [True] or [False]

Same names, arguments, return types and box order ``(top, right, bottom, left)`` as face_recognition 1.3.0.
Underneath: rtv's CenterFace detector finds the faces; each box is mapped to the box dlib's HOG detector would
give (fitted constants below; ``model="cnn"`` uses the same mapping, the CNN detector's boxes were not measured);
dlib's 5-point shape predictor (rtv's port) places the landmarks on that box, and
dlib's ResNet (rtv's ONNX port) describes the chip dlib would cut. Descriptors are dlib's 128-d vectors, so 0.6
means what it means in face_recognition, and encodings from the two libraries can be compared.

What differs:

* **Boxes** are rtv's faces mapped to dlib's HOG boxes, not dlib's detector. On the photos of the fit (see the
  constants) they overlap dlib's with a mean IoU of 0.82, and the two libraries find somewhat different sets of
  faces: CenterFace also finds turned and partly hidden faces that dlib's HOG detector misses, and faces smaller
  than dlib's detector reports (74 px at ``number_of_times_to_upsample=0``, halved per upsampling) are dropped as
  dlib's detector never reports them.
* **68-point landmarks are not available**: ``face_landmarks(..., model="large")`` (face_recognition's default)
  raises :class:`realtime.errors.ModelError`; ask for ``model="small"``, which gives face_recognition's 5-point
  dict (``nose_tip``, ``left_eye``, ``right_eye``) from dlib's 5-point predictor. ``face_encodings(...,
  model="large")`` cuts the chip from the 5 points too (dlib's chips are nearly the same either way).
* ``num_jitters > 1`` averages the descriptors of randomly moved, scaled, rotated and mirrored chips as dlib does,
  with its own random draws (a fixed seed: the same image gives the same answer), not dlib's.
* ``load_image_file`` decodes with OpenCV, not Pillow (the pixels of a JPEG can differ by a grey level).
* ``batch_face_locations`` trims each image's boxes to that image (face_recognition trims every box to the first
  image's size).
* Bad arguments raise :mod:`realtime.errors` types (``ConfigError`` for an unknown model name, ``SourceError``
  for an image that is not an 8-bit picture) rather than dlib's ``RuntimeError``.

The models open on the first call, once per process (thread-safe); :func:`configure` picks another rtv config
(threads, providers, model files) before that.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from pathlib import Path
from typing import IO, Any, Iterable, Sequence

import numpy as np

from realtime.errors import ConfigError, ModelError, SourceError

__all__ = ["load_image_file", "face_locations", "batch_face_locations", "face_landmarks", "face_encodings",
           "face_distance", "compare_faces", "configure"]

# --- the fitted box mapping -----------------------------------------------------------------------------------------
# Stage 1: CenterFace box and landmarks -> dlib's square box. Features (stage1_features): 1, box height / width,
# the 5 CenterFace landmarks relative to the box centre in box widths (x, y each). Targets: dlib box centre minus
# CenterFace centre (x, y) in box widths, log(dlib side / box width). Stage 2: dlib's 5 points (rtv's shape
# predictor on the stage-1 box) -> dlib's box again. Features (stage2_features): 1, the points relative to their
# centroid in units of their spread (RMS distance from the centroid). Targets: dlib box centre minus the centroid in
# spreads, log(dlib side / spread). CNN_STAGE2_COEF: stage 2 for model="cnn"; dlib's CNN detector was too slow to run
# on the fit's photos here, so it is the HOG mapping.
# Fitted by `python -m recipes.face_box_fit fit` (the recipe names the photos and the commands) on the 1420 faces that
# both found of the 1425 that face_recognition 1.3.0 (dlib 20.0.1, HOG, upsample 1) found in 442 images (112 photos
# from face_recognition's examples and tests, dlib's examples, Debian opencv-doc, scikit-image, Matplotlib, each also
# mirrored, shrunk, enlarged, cropped and rotated). Against face_recognition on all 1420 faces: box IoU mean 0.82
# (median 0.83, 5th percentile 0.69); descriptor distance mean 0.047 (median 0.037, 95th percentile 0.118, max 0.59;
# 30 faces above 0.15). Held out by photo (two folds): mean 0.059 (323 faces) and 0.043 (1097 faces). rtv's port on
# dlib's own box gives dlib's descriptor (mean distance 1e-6): what is left is dlib's box, which rtv estimates.
STAGE1_COEF = np.array([
    [0.0102, -0.07064, -0.19993], [-0.02056, 0.02437, 0.12893], [0.14745, -0.11967, 0.02275],
    [-0.01274, 0.20416, -0.14293], [0.19423, 0.118, 0.00314], [0.03605, 0.22483, -0.10702],
    [0.21931, 0.02657, -0.06484], [-0.01335, 0.17033, -0.0548], [0.07156, -0.12957, 0.12101],
    [-0.04048, 0.0422, 0.18469], [0.12241, 0.13413, -0.05684], [0.00077, 0.05541, 0.23078]])
STAGE2_COEF = np.array([
    [-0.26085, -0.89955, 2.37844], [0.21084, 0.27341, -0.17195], [-0.08405, 0.00614, 0.19],
    [-0.03578, 0.32663, -0.22691], [-0.02005, -0.09423, -0.11322], [0.09541, -0.33263, 0.22302],
    [0.13302, -0.01243, 0.19146], [-0.20919, -0.38235, 0.20858], [-0.03989, -0.16385, -0.12186],
    [-0.06127, 0.11494, -0.03274], [0.01097, 0.26438, -0.14638]])
CNN_STAGE2_COEF = STAGE2_COEF

# dlib's frontal face detector slides an 80x80 window (padding included): the smallest box it reports is 74 px at
# upsample 0 (37 px, the smallest of the 1425 HOG boxes of the fit, at upsample 1). Mapped boxes below
# MIN_SIDE_FRACTION of that are dropped, as dlib never reports such faces: for the 71 faces that dlib boxed at 37 px
# (in every other image of the fit) the mapped sides ran from 26 to 43 px, 5th percentile 29.5 (0.80 of 37).
HOG_MIN_SIDE_PX = 74
MIN_SIDE_FRACTION = 0.75
# dlib's HOG detector picks one of its pyramid's box sizes (steps of 1.2x), so its side is uncertain by about 10%
# for any estimate; dlib's landmarks and descriptor move with the box. Each descriptor is therefore the mean over the
# mapped box and two copies of it scaled by these factors: on 238 faces of the fit's photos (every third matched face
# of every other image) the mean distance to face_recognition's descriptor went 0.056 -> 0.048 and the 95th
# percentile 0.145 -> 0.109 (three boxes; nine, also moved up and down by 4%, gave 0.045 and 0.104).
BOX_SCALES = (1 / 1.1, 1.0, 1.1)
CHIP_SHAPE = (150, 150, 3)
SCORE_THRESHOLD = 0.5
MAX_FACES = 256
DLIB_JITTER_SEED = 0

_MODELS = ("hog", "cnn")


# --- image input ----------------------------------------------------------------------------------------------------

def load_image_file(file: str | Path | IO[bytes], mode: str = "RGB") -> np.ndarray:
    """An image file (.jpg, .png, ...) or open binary file as a numpy array, as face_recognition loads it.

    ``mode``: ``"RGB"`` gives uint8 (H, W, 3) in RGB order; ``"L"`` gives uint8 (H, W) grey. EXIF orientation is
    ignored (as Pillow's ``Image.open`` does). Raises :class:`SourceError` when the file is missing or not an image,
    :class:`ConfigError` for another ``mode``.

    >>> image = load_image_file("obama.jpg")      # doctest: +SKIP
    >>> image.shape, image.dtype                  # doctest: +SKIP
    ((1137, 910, 3), dtype('uint8'))
    """
    import cv2

    if mode not in ("RGB", "L"):
        raise ConfigError(f"load_image_file: mode {mode!r} is not supported; use 'RGB' or 'L'")
    if isinstance(file, (str, Path)):
        try:
            data = Path(file).read_bytes()
        except OSError as exc:
            raise SourceError(f"cannot read image {file}: {exc.strerror or exc}") from exc
        name = str(file)
    else:
        data = file.read()
        name = getattr(file, "name", "image file")  # file objects carry a name when they come from a path
    flags = cv2.IMREAD_IGNORE_ORIENTATION | (cv2.IMREAD_GRAYSCALE if mode == "L" else cv2.IMREAD_COLOR)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None
    if image is None:
        raise SourceError(f"{name}: not a readable image")
    return image if mode == "L" else np.ascontiguousarray(image[..., ::-1])


def _rgb(image: Any) -> np.ndarray:
    """The caller's image as uint8 (H, W, 3) RGB (grey is repeated, an alpha channel dropped)."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise SourceError(f"face_recognition functions need an 8-bit image (load_image_file gives one), got {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]
    elif a.ndim == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise SourceError(f"an image must be (H, W, 3) RGB or (H, W) grey, got shape {a.shape}")
    return np.ascontiguousarray(a)


# --- box mapping (pure numpy; the recipe fits these) ----------------------------------------------------------------

def _square_ltrb(cx: np.ndarray, cy: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Square dlib rectangles (inclusive left, top, right, bottom) of ``side`` pixels centred on (cx, cy)."""
    s = np.maximum(np.round(side), 1.0)
    left = np.round(cx - (s - 1) / 2)
    top = np.round(cy - (s - 1) / 2)
    return np.stack([left, top, left + s - 1, top + s - 1], axis=1).astype(np.int64).reshape(-1, 4)


def _ltrb_centre_side(ltrb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    b = np.asarray(ltrb, np.float64).reshape(-1, 4)
    return (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, ((b[:, 2] - b[:, 0]) + (b[:, 3] - b[:, 1])) / 2 + 1


def _cf_frame(boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    b = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    w = np.maximum(b[:, 2] - b[:, 0], 1e-6)
    h = b[:, 3] - b[:, 1]
    return (b[:, 0] + b[:, 2]) / 2 - 0.5, (b[:, 1] + b[:, 3]) / 2 - 0.5, w, h


def stage1_features(boxes_xyxy: np.ndarray, points5: np.ndarray) -> np.ndarray:
    """CenterFace boxes (N, 4) xyxy and landmarks (N, 5, 2) -> float64 (N, 12) features of stage 1."""
    cx, cy, w, h = _cf_frame(boxes_xyxy)
    p = np.asarray(points5, np.float64).reshape(-1, 5, 2)
    rel = (p - np.stack([cx, cy], axis=1)[:, None, :]) / w[:, None, None]
    return np.column_stack([np.ones(len(w)), h / w, rel.reshape(-1, 10)])


def stage1_targets(boxes_xyxy: np.ndarray, dlib_ltrb: np.ndarray) -> np.ndarray:
    """What stage 1 predicts for CenterFace boxes whose dlib boxes are ``dlib_ltrb``: float64 (N, 3)."""
    cx, cy, w, _ = _cf_frame(boxes_xyxy)
    dx, dy, side = _ltrb_centre_side(dlib_ltrb)
    return np.column_stack([(dx - cx) / w, (dy - cy) / w, np.log(side / w)])


def stage1_boxes(boxes_xyxy: np.ndarray, points5: np.ndarray, coef: np.ndarray = STAGE1_COEF) -> np.ndarray:
    """Stage 1: dlib-like boxes, int64 (N, 4) ltrb, from CenterFace boxes and landmarks."""
    cx, cy, w, _ = _cf_frame(boxes_xyxy)
    t = stage1_features(boxes_xyxy, points5) @ coef
    return _square_ltrb(cx + t[:, 0] * w, cy + t[:, 1] * w, np.exp(t[:, 2]) * w)


def _points_frame(points5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(points5, np.float64).reshape(-1, 5, 2)
    centre = p.mean(axis=1)
    spread = np.sqrt(((p - centre[:, None]) ** 2).sum(axis=2).mean(axis=1))
    return centre, np.maximum(spread, 1e-6)


def stage2_features(points5: np.ndarray) -> np.ndarray:
    """dlib 5-point landmarks (N, 5, 2) -> float64 (N, 11) features of stage 2."""
    p = np.asarray(points5, np.float64).reshape(-1, 5, 2)
    centre, spread = _points_frame(p)
    rel = (p - centre[:, None]) / spread[:, None, None]
    return np.column_stack([np.ones(len(p)), rel.reshape(-1, 10)])


def stage2_targets(points5: np.ndarray, dlib_ltrb: np.ndarray) -> np.ndarray:
    """What stage 2 predicts for landmarks whose dlib boxes are ``dlib_ltrb``: float64 (N, 3)."""
    centre, spread = _points_frame(points5)
    dx, dy, side = _ltrb_centre_side(dlib_ltrb)
    return np.column_stack([(dx - centre[:, 0]) / spread, (dy - centre[:, 1]) / spread, np.log(side / spread)])


def stage2_boxes(points5: np.ndarray, coef: np.ndarray = STAGE2_COEF) -> np.ndarray:
    """Stage 2: dlib-like boxes, int64 (N, 4) ltrb, from dlib 5-point landmarks."""
    centre, spread = _points_frame(points5)
    t = stage2_features(points5) @ coef
    return _square_ltrb(centre[:, 0] + t[:, 0] * spread, centre[:, 1] + t[:, 1] * spread, np.exp(t[:, 2]) * spread)


def detect_width(image_width: int, upsample: int) -> int:
    """CenterFace's working width for an image: enough that dlib's smallest face at ``upsample`` (80 / 2**upsample
    px) is still about 20 px for the network, and at least the image's own width up to 640."""
    return int(min(max(min(image_width, 640), math.ceil(image_width * 2.0 ** upsample / 4)), 4096))


# --- the models -----------------------------------------------------------------------------------------------------

def open_models(config) -> "Models":
    """rtv's face detector, shape predictor and embedder for ``config`` (an rtv :class:`realtime.config.Config`):
    the configured files, else the shipped float models whatever ``runtime.precision`` says (the drop-in's job is
    dlib's numbers)."""
    from realtime.build import model_path, runtime_options
    from realtime.face.embedder import FaceEmbedder
    from realtime.face.landmarks import load_shape_predictor
    from realtime.runtime import OnnxModel

    faces, options = config.faces, runtime_options(config.runtime)
    predictor = load_shape_predictor(model_path(faces.landmarks_model, "face_landmarks"))
    detector = OnnxModel(model_path(faces.detector_model, "face_detector"), options, expected_kind="face_detector")
    try:
        embedder = FaceEmbedder(OnnxModel(model_path(faces.embedder_model, "face_embedder"), options,
                                          expected_kind="face_embedder"))
    except BaseException:
        detector.close()
        raise
    return Models(detector, predictor, embedder, iou_threshold=faces.iou_threshold)


class Models:
    """The opened models and the steps of face_recognition's pipeline on them. Thread-safe."""

    def __init__(self, detector_model, predictor, embedder, iou_threshold: float = 0.4):
        self.detector_model = detector_model
        self.predictor = predictor
        self.embedder = embedder
        self.iou_threshold = float(iou_threshold)
        self._detectors: dict[int, Any] = {}
        self._lock = threading.Lock()

    def _detector(self, width: int):
        from realtime.face.detector import FaceDetector

        with self._lock:
            detector = self._detectors.get(width)
            if detector is None:
                if len(self._detectors) >= 8:
                    self._detectors.clear()
                # One session for every working width: these detectors are never closed, the session is.
                detector = FaceDetector(self.detector_model, detect_width=width, score_threshold=SCORE_THRESHOLD,
                                        iou_threshold=self.iou_threshold, max_faces=MAX_FACES)
                self._detectors[width] = detector
            return detector

    def detect(self, rgb: np.ndarray, upsample: int):
        """CenterFace's faces (:class:`realtime.types.Faces`) on an RGB image."""
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        return self._detector(detect_width(rgb.shape[1], upsample)).detect(bgr)

    def boxes(self, rgb: np.ndarray, upsample: int = 1, model: str = "hog") -> np.ndarray:
        """dlib-like boxes, int64 (N, 4) dlib ltrb (not trimmed to the image), highest score first."""
        if model not in _MODELS:
            raise ConfigError(f"face detection model {model!r} is not one of {', '.join(_MODELS)}")
        if not isinstance(upsample, (int, np.integer)) or upsample < 0:
            raise ConfigError(f"number_of_times_to_upsample must be an integer >= 0, got {upsample!r}")
        faces = self.detect(rgb, int(upsample))
        if len(faces) == 0:
            return np.zeros((0, 4), np.int64)
        first = stage1_boxes(faces.boxes_xyxy, faces.landmarks5)
        points = self.predictor.predict(rgb, first)
        boxes = stage2_boxes(points, CNN_STAGE2_COEF if model == "cnn" else STAGE2_COEF)
        side = boxes[:, 2] - boxes[:, 0] + 1
        return boxes[side >= MIN_SIDE_FRACTION * HOG_MIN_SIDE_PX / 2.0 ** int(upsample)]

    def landmarks(self, rgb: np.ndarray, boxes_ltrb: np.ndarray) -> np.ndarray:
        """dlib's 5 points on each box: int64 (N, 5, 2), x then y, dlib's order."""
        return self.predictor.predict(rgb, np.asarray(boxes_ltrb, np.int64).reshape(-1, 4))

    def encode(self, rgb: np.ndarray, boxes_ltrb: np.ndarray, num_jitters: int = 1) -> np.ndarray:
        """dlib's descriptors of the faces in ``boxes_ltrb``: float64 (N, 128), each the mean over the box and its
        copies scaled by :data:`BOX_SCALES` (see there); ``num_jitters > 1``: the mean over that many jittered
        chips, taken from the scaled boxes in turn."""
        from realtime.face.chip import dlib_face_chips

        boxes = np.asarray(boxes_ltrb, np.int64).reshape(-1, 4)
        n, k = len(boxes), len(BOX_SCALES)
        if n == 0:
            return np.zeros((0, self.embedder.embedding_size), np.float64)
        cx, cy, side = _ltrb_centre_side(boxes)
        scaled = np.concatenate([_square_ltrb(cx, cy, side * f) for f in BOX_SCALES])  # (k * N, 4), scale-major
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        chips = dlib_face_chips(bgr, self.landmarks(rgb, scaled)).reshape(k, n, *CHIP_SHAPE)
        if num_jitters <= 1:
            return self.embedder.embed(chips.reshape(k * n, *CHIP_SHAPE)).astype(np.float64).reshape(k, n, -1).mean(0)
        rng = np.random.default_rng(DLIB_JITTER_SEED)
        out = []
        for face in range(n):
            jittered = np.stack([_jitter(chips[j % k, face], rng) for j in range(num_jitters)])
            out.append(self.embedder.embed(jittered).astype(np.float64).mean(axis=0))
        return np.stack(out)

    def close(self) -> None:
        self.detector_model.close()
        self.embedder.close()


def _jitter(chip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One randomly moved (2%), scaled (97-99%), rotated (3 degrees) and maybe mirrored copy of a chip, as dlib's
    ``jitter_image`` draws them."""
    import cv2

    size = chip.shape[0]
    inner = size - 6
    box = inner / rng.uniform(0.97, 0.99)
    shift = rng.uniform(-0.02, 0.02, size=2) * inner
    angle = rng.uniform(-3.0, 3.0)
    centre = ((size - 1) / 2 + shift[0], (size - 1) / 2 + shift[1])
    m = cv2.getRotationMatrix2D(centre, -angle, size / box)
    m[:, 2] += (size - 1) / 2 - np.array(centre)
    out = cv2.warpAffine(chip, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return np.ascontiguousarray(out[:, ::-1]) if rng.random() > 0.5 else out


class _Holder:
    """Opens the models on first use, once per process; :meth:`configure` sets the config used for that."""

    def __init__(self):
        self._lock = threading.Lock()
        self._config = None
        self._models: Models | None = None

    def configure(self, config) -> None:
        with self._lock:
            if self._models is not None:
                self._models.close()
                self._models = None
            self._config = config

    def get(self) -> Models:
        with self._lock:
            if self._models is None:
                from realtime.config import Config

                self._models = open_models(self._config if self._config is not None else Config())
            return self._models


_HOLDER = _Holder()


def configure(config=None) -> None:
    """Use rtv ``config`` (a :class:`realtime.config.Config`; None: the built-in defaults) for the models: its
    ``runtime`` section (threads, providers) and ``faces`` model files. Closes models already open; the next call
    opens them again.

    >>> from realtime.config import load_config
    >>> configure(load_config(overrides=["runtime.intra_op_threads=1"]))
    """
    _HOLDER.configure(config)


def models() -> Models:
    """The process's opened models (opened on first use)."""
    return _HOLDER.get()


# --- face_recognition's functions -----------------------------------------------------------------------------------

def _trim_css(ltrb: Sequence[int], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    left, top, right, bottom = (int(v) for v in ltrb)
    return max(top, 0), min(right, shape[1]), min(bottom, shape[0]), max(left, 0)


def _css_to_ltrb(locations: Iterable[Sequence[int]]) -> np.ndarray:
    rows = []
    for loc in locations:
        if len(loc) != 4:
            raise ConfigError(f"a face location is (top, right, bottom, left), got {loc!r}")
        top, right, bottom, left = (int(v) for v in loc)
        rows.append((left, top, right, bottom))
    return np.array(rows, np.int64).reshape(-1, 4)


def face_locations(img: np.ndarray, number_of_times_to_upsample: int = 1, model: str = "hog"
                   ) -> list[tuple[int, int, int, int]]:
    """Bounding boxes of the faces in an image: a list of ``(top, right, bottom, left)`` tuples of ints, trimmed to
    the image, as face_recognition returns them.

    ``number_of_times_to_upsample``: higher finds smaller faces (the smallest dlib can report is 74 / 2**n px).
    ``model``: ``"hog"`` or ``"cnn"``: both run rtv's CenterFace detector and map its boxes to dlib's HOG boxes
    (the CNN detector's own boxes were not measured).

    >>> image = load_image_file("two_people.jpg")           # doctest: +SKIP
    >>> face_locations(image)                               # doctest: +SKIP
    [(54, 401, 213, 242), (84, 952, 242, 794)]
    """
    rgb = _rgb(img)
    return [_trim_css(b, rgb.shape) for b in models().boxes(rgb, number_of_times_to_upsample, model)]


def batch_face_locations(images: Sequence[np.ndarray], number_of_times_to_upsample: int = 1, batch_size: int = 128
                         ) -> list[list[tuple[int, int, int, int]]]:
    """:func:`face_locations` with ``model="cnn"`` for each image of a list: a list (per image) of lists of
    ``(top, right, bottom, left)``. ``batch_size`` is accepted for compatibility (the images run one by one)."""
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    return [face_locations(image, number_of_times_to_upsample, "cnn") for image in images]


def _boxes_for(rgb: np.ndarray, face_locations: Iterable[Sequence[int]] | None) -> np.ndarray:
    if face_locations is None:
        return models().boxes(rgb, 1, "hog")
    return _css_to_ltrb(face_locations)


def face_landmarks(face_image: np.ndarray, face_locations: Iterable[Sequence[int]] | None = None,
                   model: str = "large") -> list[dict[str, list[tuple[int, int]]]]:
    """Facial feature points of each face: a list of dicts of lists of ``(x, y)`` int tuples.

    ``model="small"``: face_recognition's 5-point dict, ``{"nose_tip": [p], "left_eye": [outer, inner],
    "right_eye": [outer, inner]}`` from dlib's 5-point predictor (``left_eye`` is the eye on the image's left...
    as face_recognition names them: points 2-3 of dlib's model; ``right_eye`` points 0-1). ``model="large"``
    (face_recognition's 68-point default: chin, eyebrows, lips) is **not available** in rtv and raises
    :class:`realtime.errors.ModelError`. ``face_locations``: the faces' ``(top, right, bottom, left)`` boxes;
    None finds them with :func:`face_locations`.

    >>> face_landmarks(image, model="small")[0]["nose_tip"]   # doctest: +SKIP
    [(327, 158)]
    """
    if model == "large":
        raise ModelError("68-point face landmarks (model='large') are not available in rtv; "
                         "face_landmarks(image, model='small') gives the 5-point dict (nose_tip, left_eye, right_eye)")
    if model != "small":
        raise ConfigError(f"landmarks model {model!r} is not supported; use 'small' ('large' is not available)")
    rgb = _rgb(face_image)
    points = models().landmarks(rgb, _boxes_for(rgb, face_locations))
    out = []
    for face in points:
        p = [(int(x), int(y)) for x, y in face]
        out.append({"nose_tip": [p[4]], "left_eye": p[2:4], "right_eye": p[0:2]})
    return out


def face_encodings(face_image: np.ndarray, known_face_locations: Iterable[Sequence[int]] | None = None,
                   num_jitters: int = 1, model: str = "small") -> list[np.ndarray]:
    """The 128-d descriptor of each face: a list of float64 numpy arrays of shape (128,), dlib's descriptors.

    ``known_face_locations``: ``(top, right, bottom, left)`` boxes (dlib's landmarks are placed on exactly these);
    None finds the faces as :func:`face_locations` does. ``num_jitters``: average this many randomly jittered
    chips (slower, a little steadier). ``model``: ``"small"`` or ``"large"``; both cut the chip from dlib's 5
    points (68 points are not available).

    >>> face_encodings(load_image_file("obama.jpg"))[0].shape   # doctest: +SKIP
    (128,)
    """
    if model not in ("small", "large"):
        raise ConfigError(f"landmarks model {model!r} is not supported; use 'small' or 'large'")
    if not isinstance(num_jitters, (int, np.integer)):
        raise ConfigError(f"num_jitters must be an integer, got {num_jitters!r}")
    rgb = _rgb(face_image)
    vectors = models().encode(rgb, _boxes_for(rgb, known_face_locations), int(num_jitters))
    return [np.array(v) for v in vectors]


def face_distance(face_encodings: Sequence[np.ndarray] | np.ndarray, face_to_compare: np.ndarray) -> np.ndarray:
    """Euclidean distance from each known encoding to ``face_to_compare``: a float numpy array, one per encoding
    (empty for no encodings). Below 0.6: usually the same person.

    >>> face_distance([np.zeros(128), np.ones(128)], np.zeros(128)).round(2).tolist()
    [0.0, 11.31]
    """
    if len(face_encodings) == 0:
        return np.empty((0))
    return np.linalg.norm(np.asarray(face_encodings) - np.asarray(face_to_compare), axis=1)


def compare_faces(known_face_encodings: Sequence[np.ndarray] | np.ndarray, face_encoding_to_check: np.ndarray,
                  tolerance: float = 0.6) -> list:
    """Whether each known encoding matches ``face_encoding_to_check``: a list of booleans (distance <=
    ``tolerance``; lower is stricter).

    >>> [bool(m) for m in compare_faces([np.zeros(128), np.ones(128)], np.zeros(128))]
    [True, False]
    """
    return list(face_distance(known_face_encodings, face_encoding_to_check) <= tolerance)
