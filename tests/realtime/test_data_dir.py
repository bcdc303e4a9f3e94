"""Data in one place: the default gallery and audit log live in the user's data folder (RTV_DATA_DIR overrides
it), not in the current folder; enrolling in one folder and identifying from another finds the same gallery;
``rtv doctor`` prints the paths; the tests' own data folder is never the real one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from realtime.cli.main import main
from realtime.config import load_config
from realtime.data_dir import data_dir, prepare_parent


def test_tests_never_touch_the_real_data_folder():
    from platformdirs import user_data_dir

    assert data_dir() != Path(user_data_dir("rtv", appauthor=False))


def test_defaults_live_in_the_data_folder_whatever_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("RTV_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    assert config.faces.gallery == str(tmp_path / "data" / "gallery.sqlite")
    assert config.door.audit == str(tmp_path / "data" / "door_audit.sqlite")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert load_config(None).faces.gallery == config.faces.gallery
    # a configured path still wins, resolved against the config file
    (tmp_path / "c.yaml").write_text("faces:\n  gallery: mine.sqlite\n")
    assert load_config(tmp_path / "c.yaml").faces.gallery == str(tmp_path / "mine.sqlite")


def test_only_the_data_folder_is_created_on_demand(tmp_path, monkeypatch):
    monkeypatch.setenv("RTV_DATA_DIR", str(tmp_path / "data"))
    prepare_parent(tmp_path / "typo" / "gallery.sqlite")
    assert not (tmp_path / "typo").exists()
    prepare_parent(tmp_path / "data" / "gallery.sqlite")
    assert (tmp_path / "data").is_dir()


def test_enrol_in_one_folder_identify_from_another(tmp_path, monkeypatch, capsys):
    data = pytest.importorskip("skimage.data")
    import cv2

    monkeypatch.setenv("RTV_DATA_DIR", str(tmp_path / "data"))
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), data.astronaut()[..., ::-1])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    assert main(["enroll", "astronaut", str(photo)]) == 0, capsys.readouterr().err
    assert (tmp_path / "data" / "gallery.sqlite").is_file() and not (tmp_path / "a" / "gallery.sqlite").exists()
    monkeypatch.chdir(tmp_path / "b")
    capsys.readouterr()
    code = main(["identify", str(photo)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "astronaut" in out


def test_doctor_prints_the_data_paths(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RTV_DATA_DIR", str(tmp_path / "data"))
    assert main(["doctor", "--no-camera", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["data"]
    assert report["data_dir"]["path"] == str(tmp_path / "data")
    assert report["gallery"]["path"] == str(tmp_path / "data" / "gallery.sqlite")
    assert report["audit_log"]["path"] == str(tmp_path / "data" / "door_audit.sqlite")
    assert main(["doctor", "--no-camera"]) == 0
    text = capsys.readouterr().out
    assert f"gallery      {tmp_path / 'data' / 'gallery.sqlite'}" in text and "RTV_DATA_DIR" in text


def test_audit_keygen_writes_into_the_data_folder_by_default(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RTV_DATA_DIR", str(tmp_path / "data"))
    assert main(["audit", "keygen"]) == 0, capsys.readouterr().err
    assert (tmp_path / "data" / "door_audit.key").is_file()
