"""The model zoo: the shipped model files beside this module, and opening a model by its role.

Roles (``ROLES``): ``detector`` (objects), ``face_detector``, ``face_embedder``, ``face_landmarks`` (the 5-point
shape predictor), ``face_cohort`` (background faces for the match margin) and ``style`` (a folder of
``style_*.onnx``). A role's file is the configured path when one is given, else the file that ships here. Serving,
the Python API, ``export/``, ``models/`` and ``recipes/`` all open models through this module, so a model is found,
checked and opened one way. It never imports torch; importing it loads no model.

>>> from realtime.zoo import model_path
>>> model_path("face_detector").name
'centerface.onnx'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from realtime.errors import ModelError
from realtime.precision import ROLE_FILES

if TYPE_CHECKING:
    import numpy as np

    from realtime.config import FacesConfig, RuntimeConfig
    from realtime.face.detector import FaceDetector
    from realtime.face.embedder import FaceEmbedder
    from realtime.face.landmarks import ShapePredictor
    from realtime.precision import PrecisionChoice
    from realtime.runtime import OnnxModel, RuntimeOptions
    from realtime.threads import ThreadPlan

ZOO_DIR = Path(__file__).resolve().parent
MANIFEST = ZOO_DIR / "MANIFEST.json"


@dataclass(frozen=True)
class Role:
    """One kind of model the runtime uses: ``default`` is the file (or, for ``style``, the folder) that ships;
    ``kind`` is the contract kind an ONNX file for it must declare (empty: not an ONNX model)."""

    name: str
    default: str
    kind: str
    config_key: str


ROLES: dict[str, Role] = {r.name: r for r in (
    Role("detector", ROLE_FILES["detector"]["float"], "yolo", "detector.model"),
    Role("face_detector", ROLE_FILES["face_detector"]["float"], "face_detector", "faces.detector_model"),
    Role("face_embedder", ROLE_FILES["face_embedder"]["float"], "face_embedder", "faces.embedder_model"),
    Role("face_landmarks", "dlib_shape5.npz", "", "faces.landmarks_model"),
    Role("face_cohort", "face_cohort.npz", "", "faces.cohort"),
    Role("style", ".", "style", "style.model_dir"),
)}
DEFAULT_MODELS = {name: role.default for name, role in ROLES.items() if name != "style"}


def role_spec(name: str) -> Role:
    """The :class:`Role` called ``name``; :class:`ModelError` for a name that is not one."""
    try:
        return ROLES[name]
    except KeyError:
        raise ModelError(f"no model role {name!r}; roles: {', '.join(ROLES)}") from None


def precision_choice(role: str, runtime: RuntimeConfig, configured_file: bool = False) -> PrecisionChoice:
    """The precision (and shipped file) ``runtime.precision`` gives ``role`` on the provider
    ``runtime.providers`` resolves to here (:mod:`realtime.precision`)."""
    from realtime.cpu import cpu_info
    from realtime.precision import choose_precision, manifest_for
    from realtime.runtime import resolve_provider

    provider = resolve_provider(runtime.providers).name
    return choose_precision(role_spec(role).name, provider, runtime.precision, cpu_info(), manifest_for(ZOO_DIR),
                            ZOO_DIR, configured_file=configured_file)


def model_path(role: str, configured: str | Path = "", required: bool = True,
               runtime: RuntimeConfig | None = None) -> Path | None:
    """The configured model file for ``role``, else the one that ships (with ``runtime``: the file of the
    precision ``runtime.precision`` chooses on this machine); ``None`` when none ships and it is not ``required``.
    :class:`ModelError` when a configured file does not exist or a required one does not ship."""
    spec = role_spec(role)
    if spec.name == "style":
        return style_dir(configured)
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise ModelError(f"{spec.name} model not found: {path}")
        return path
    chosen = precision_choice(spec.name, runtime).file if runtime is not None and spec.kind else None
    default = ZOO_DIR / (chosen or spec.default)
    if default.is_file():
        return default
    if required:
        raise ModelError(f"no {spec.name} model ships at {default}; set {spec.config_key} in config")
    return None


def style_dir(configured: str | Path = "") -> Path:
    """The folder whose ``style_*.onnx`` files are the styles: ``style.model_dir`` when set, else the zoo."""
    return Path(configured) if configured else ZOO_DIR


def runtime_options(config: RuntimeConfig, plan: ThreadPlan | None = None, role: str | None = None,
                    configured_file: bool = False) -> RuntimeOptions:
    """Session options from ``config``, its ``auto`` thread counts resolved by ``plan`` (default: the plan for
    this machine with both analysis branches); ``role``: the model's role, whose precision sets OpenVINO's
    hint (``configured_file``: the model is a configured file, not a shipped one)."""
    from realtime.runtime import RuntimeOptions
    from realtime.threads import plan_threads

    plan = plan or plan_threads(config)
    hint = precision_choice(role, config, configured_file).hint if role else ""
    return RuntimeOptions(providers=config.providers, precision_hint=hint, intra_op_threads=plan.intra_op,
                          inter_op_threads=plan.inter_op, graph_optimization=config.graph_optimization,
                          allow_spinning=plan.allow_spinning)


def open_model(role: str, runtime: RuntimeConfig | RuntimeOptions, configured: str | Path = "",
               plan: ThreadPlan | None = None) -> OnnxModel:
    """An ONNX Runtime session for ``role``'s model, its contract checked against the role's kind; the
    caller closes it. With a :class:`realtime.config.RuntimeConfig` (serving), the file and options follow
    ``runtime`` (precision, providers, threads resolved by ``plan``); with :class:`realtime.runtime.RuntimeOptions`
    (tools, fixed options), the configured file or the float file that ships."""
    from realtime.config import RuntimeConfig
    from realtime.runtime import OnnxModel

    spec = role_spec(role)
    if not spec.kind or spec.name == "style":
        raise ModelError(f"the {spec.name} role is not one ONNX model; use the function for it in realtime.zoo")
    if isinstance(runtime, RuntimeConfig):
        path = model_path(spec.name, configured, runtime=runtime)
        options = runtime_options(runtime, plan, spec.name, bool(configured))
    else:
        path, options = model_path(spec.name, configured), runtime
    return OnnxModel(path, options, expected_kind=spec.kind)


def open_face_detector(faces: FacesConfig, runtime: RuntimeConfig, plan: ThreadPlan | None = None
                       ) -> FaceDetector:
    """The face detector of ``faces.detector_model`` (else the shipped CenterFace) with ``faces``' thresholds."""
    from realtime.face.detector import FaceDetector

    model = open_model("face_detector", runtime, faces.detector_model, plan)
    try:
        return FaceDetector(model, detect_width=faces.detect_width, score_threshold=faces.score_threshold,
                            iou_threshold=faces.iou_threshold, max_faces=faces.max_faces)
    except BaseException:
        model.close()
        raise


def open_shape_predictor(configured: str | Path = "") -> ShapePredictor:
    """dlib's 5-point shape predictor (``faces.landmarks_model``, else the shipped one)."""
    from realtime.face.landmarks import load_shape_predictor

    return load_shape_predictor(model_path("face_landmarks", configured))


def open_face_embedder(faces: FacesConfig, runtime: RuntimeConfig, plan: ThreadPlan | None = None
                       ) -> FaceEmbedder:
    """The embedder with the aligner its chips need (``faces.alignment``; "auto" follows the model's contract)."""
    from realtime.face.align import DlibAligner
    from realtime.face.embedder import FaceEmbedder

    model = open_model("face_embedder", runtime, faces.embedder_model, plan)
    try:
        alignment = FaceEmbedder(model).alignment if faces.alignment == "auto" else faces.alignment
        aligner = None
        if alignment == "dlib5":
            aligner = DlibAligner(open_shape_predictor(faces.landmarks_model),
                                  size=model.contract.input.working_size_wh()[0], refine=faces.landmarks_refine)
        return FaceEmbedder(model, aligner)
    except BaseException:
        model.close()
        raise


def match_threshold(faces: FacesConfig, embedder: FaceEmbedder) -> float:
    """``faces.match_threshold`` when set, else the threshold the embedding model's contract carries."""
    return float(faces.match_threshold) if faces.match_threshold is not None else embedder.match_threshold


def load_face_cohort(faces: FacesConfig, embedder: FaceEmbedder, gallery_vectors: np.ndarray) -> np.ndarray | None:
    """The shipped background cohort for ``embedder`` (None when ``faces.cohort`` is off or it does not fit)."""
    if not faces.cohort:
        return None
    from realtime.face.cohort import cohort_for, load_cohort

    path = ZOO_DIR / ROLES["face_cohort"].default
    if not path.is_file():
        raise ModelError(f"faces.cohort is on but no cohort ships at {path}; build it with 'python -m "
                         "recipes.face_cohort build' or set faces.cohort=false")
    return cohort_for(load_cohort(path), embedder.sha256, embedder.template5, gallery_vectors)
