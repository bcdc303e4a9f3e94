from pathlib import Path

import pytest

from realtime.config import Config, load_config
from realtime.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_without_file():
    config = load_config(None)
    assert config == Config()
    assert config.runtime.intra_op_threads == "auto"


def test_repo_config_loads():
    repo = Path(__file__).resolve().parents[2]
    config = load_config(repo / "config.yaml")
    from realtime.data_dir import data_dir

    assert config.faces.gallery == str(data_dir() / "gallery.sqlite")  # the data folder, not the repository


def test_unknown_key_names_dotted_path(tmp_path):
    with pytest.raises(ConfigError, match=r"'faces\.detect_widht'"):
        load_config(write(tmp_path, "faces:\n  detect_widht: 320\n"))


def test_unknown_section(tmp_path):
    with pytest.raises(ConfigError, match="'facez'"):
        load_config(write(tmp_path, "facez: {}\n"))


@pytest.mark.parametrize("text, key", [
    ("faces:\n  detect_width: wide\n", "faces.detect_width"),
    ("faces:\n  enabled: 1\n", "faces.enabled"),
    ("detector:\n  score_threshold: 1.5\n", "detector.score_threshold"),
    ("runtime:\n  providers: tpu\n", "runtime.providers"),
    ("detector:\n  input_size: [320]\n", "detector.input_size"),
    ("source:\n  queue_size: 0\n", "source.queue_size"),
])
def test_bad_values_name_key(tmp_path, text, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(write(tmp_path, text))


def test_set_overrides_and_types(tmp_path):
    config = load_config(write(tmp_path, "faces:\n  detect_width: 320\n"),
                         ["faces.detect_width=256", "detector.input_size=[416, 416]", "overlay.enabled=false"])
    assert config.faces.detect_width == 256
    assert config.detector.input_size == (416, 416)
    assert config.overlay.enabled is False


def test_set_unknown_key_rejected():
    with pytest.raises(ConfigError, match=r"faces\.nope"):
        load_config(None, ["faces.nope=1"])


def test_set_malformed():
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["faces"])


def test_relative_paths_resolve_against_config_file(tmp_path):
    sub = tmp_path / "conf"
    sub.mkdir()
    path = sub / "c.yaml"
    path.write_text("faces:\n  gallery: data/g.sqlite\n  detector_model: /abs/m.onnx\n")
    config = load_config(path)
    assert config.faces.gallery == str((sub / "data" / "g.sqlite").resolve())
    assert config.faces.detector_model == "/abs/m.onnx"


def test_config_is_frozen():
    config = load_config(None)
    with pytest.raises(AttributeError):
        config.faces.detect_width = 1  # type: ignore[misc]


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "faces: [\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_match_threshold_defaults_to_the_models_own():
    from realtime.build import match_threshold

    class Embedder:
        match_threshold = 0.45

    assert load_config(None).faces.match_threshold is None
    assert match_threshold(load_config(None).faces, Embedder()) == 0.45
    assert match_threshold(load_config(None, ["faces.match_threshold=0.5"]).faces, Embedder()) == 0.5
    with pytest.raises(ConfigError, match=r"faces\.match_threshold"):
        load_config(None, ["faces.match_threshold=-1"])
