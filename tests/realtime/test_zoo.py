"""The model registry: a role's file is the configured one, else the shipped one; roles are checked."""

import pytest

from realtime.config import FacesConfig, RuntimeConfig
from realtime.errors import ModelError
from realtime.runtime import RuntimeOptions
from realtime.zoo import DEFAULT_MODELS, ROLES, ZOO_DIR, model_path, open_face_detector, open_model, style_dir

SHIPPED_FACE_DETECTOR = ZOO_DIR / DEFAULT_MODELS["face_detector"]


def test_every_role_but_style_names_a_file_and_the_style_role_a_folder():
    assert set(ROLES) == {"detector", "face_detector", "face_embedder", "face_landmarks", "face_cohort", "style"}
    assert model_path("style") == ZOO_DIR == style_dir("")
    for name, file in DEFAULT_MODELS.items():
        assert "/" not in file and file.endswith((".onnx", ".npz")), name


def test_configured_file_wins_and_a_missing_one_is_a_model_error(tmp_path):
    mine = tmp_path / "mine.onnx"
    mine.write_bytes(b"x")
    assert model_path("detector", str(mine)) == mine
    assert style_dir(str(tmp_path)) == tmp_path
    with pytest.raises(ModelError, match="detector model not found"):
        model_path("detector", str(tmp_path / "absent.onnx"))


def test_unknown_role_is_a_model_error_naming_the_roles():
    # Arguments the wrong way round (the configured path first) fail loudly instead of opening a default.
    with pytest.raises(ModelError, match="no model role 'models/x.onnx'; roles: detector"):
        model_path("models/x.onnx", "detector")


def test_missing_default_is_none_unless_required(monkeypatch, tmp_path):
    import realtime.zoo as zoo

    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    assert model_path("detector", required=False) is None
    with pytest.raises(ModelError, match="set detector.model in config"):
        model_path("detector")


def test_open_model_checks_the_role_kind(tmp_path):
    if not SHIPPED_FACE_DETECTOR.is_file():
        pytest.skip("needs the shipped face detector")
    with pytest.raises(ModelError):  # CenterFace's contract says face_detector, not yolo
        open_model("detector", RuntimeOptions(providers="cpu"), str(SHIPPED_FACE_DETECTOR))
    with pytest.raises(ModelError, match="not one ONNX model"):
        open_model("face_landmarks", RuntimeOptions(providers="cpu"))
    with open_model("face_detector", RuntimeOptions(providers="cpu")) as model:
        assert model.contract.kind == "face_detector"


def test_open_face_detector_uses_the_faces_section():
    if not SHIPPED_FACE_DETECTOR.is_file():
        pytest.skip("needs the shipped face detector")
    detector = open_face_detector(FacesConfig(detect_width=320, max_faces=3), RuntimeConfig(providers="cpu"))
    try:
        assert detector.detect_width == 320 and detector.max_faces == 3
    finally:
        detector.close()


def test_zoo_dir_has_one_home():
    """Only the registry says where the zoo is: a module that assigns its own ZOO_DIR, or builds the path from the
    package folder and "zoo", is caught."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    homes = []
    for package in ("realtime", "export", "models", "recipes"):
        for path in (root / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "ZOO_DIR"
                                                        for t in node.targets):
                    homes.append(str(path.relative_to(root)))
                if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and \
                        isinstance(node.right, ast.Constant) and node.right.value == "zoo":
                    homes.append(str(path.relative_to(root)))
    assert homes == ["realtime/zoo/__init__.py"]


def test_runtime_precision_chooses_the_shipped_file_but_never_a_configured_one(tmp_path):
    from realtime.zoo import runtime_options

    float_file = model_path("detector", runtime=RuntimeConfig(providers="cpu", precision="float"))
    assert float_file == ZOO_DIR / "yolov3_tiny_coco.onnx"
    mine = tmp_path / "mine.onnx"
    mine.write_bytes(b"x")
    assert model_path("detector", str(mine), runtime=RuntimeConfig(providers="cpu", precision="float")) == mine
    assert model_path("face_landmarks", runtime=RuntimeConfig(providers="cpu")) == ZOO_DIR / "dlib_shape5.npz"
    options = runtime_options(RuntimeConfig(providers="cpu", precision="float"), role="detector")
    assert options.providers == "cpu" and options.precision_hint == ""
