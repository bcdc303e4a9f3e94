"""Calibration: threshold at a target FAR from gallery pairs, storage next to the gallery, which threshold door
mode picks, the histogram, and `rtv calibrate` end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from realtime.door.calibrate import (Calibration, calibrate, calibration_path, choose_threshold, gallery_fingerprint,
                                     load_calibration, plot_histogram, save_calibration)
from realtime.errors import ConfigError, GalleryError


def _clusters(n_people=20, per=4, spread=0.05, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_people, 16))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    vectors = np.repeat(centers, per, axis=0) + rng.normal(scale=spread, size=(n_people * per, 16))
    labels = np.repeat([f"p{i}" for i in range(n_people)], per)
    return vectors.astype(np.float32), labels


def test_threshold_meets_the_target_far_on_the_pairs():
    vectors, labels = _clusters()
    cal, genuine, impostor = calibrate(vectors, labels, 0.01, "ab" * 32)
    assert genuine.size == 20 * 6 and impostor.size == 80 * 79 // 2 - 120
    assert cal.n_genuine == genuine.size and cal.n_impostor == impostor.size
    assert np.mean(impostor < cal.threshold) == pytest.approx(cal.far) and cal.far <= 0.01
    assert np.mean(genuine < cal.threshold) == pytest.approx(cal.tar) and cal.tar == 1.0
    # The largest such threshold: the next impostor distance up would exceed the target.
    above = np.sort(impostor[impostor >= cal.threshold])[0]
    assert np.mean(impostor <= above) > 0.01 or above == cal.threshold
    assert cal.notes == ()


def test_extra_impostors_add_pairs_and_notes_say_when_far_is_not_measurable():
    vectors, labels = _clusters(n_people=2, per=2)
    cal, _g, impostor = calibrate(vectors, labels, 0.001, "ab" * 32)
    assert impostor.size == 4 and cal.far == 0.0 and "cannot be measured" in cal.notes[0]
    assert not cal.measurable
    assert cal.threshold == pytest.approx(impostor.min())
    extra = _clusters(n_people=5, per=1, seed=3)[0]
    cal2, _g, impostor2 = calibrate(vectors, labels, 0.001, "ab" * 32, extra)
    assert impostor2.size == 4 + 5 * 4
    assert calibrate(vectors, labels, 0.05, "ab" * 32, extra)[0].measurable  # 24 pairs measure 1/20


def test_calibration_needs_impostors_and_a_sane_far():
    vectors, labels = _clusters(n_people=1, per=3)
    with pytest.raises(GalleryError, match="impostor"):
        calibrate(vectors, labels, 0.01, "ab" * 32)
    with pytest.raises(ConfigError, match="target_far"):
        calibrate(*_clusters(), 0.0, "ab" * 32)
    cal, _g, _i = calibrate(*_clusters(n_people=3, per=1), 0.5, "ab" * 32)
    assert math.isnan(cal.tar) and any("TAR not measured" in n for n in cal.notes)


def test_saved_next_to_the_gallery_and_chosen_only_for_the_same_model(tmp_path):
    vectors, labels = _clusters()
    cal, _g, _i = calibrate(vectors, labels, 0.01, "ab" * 32)
    path = calibration_path(tmp_path / "gallery.sqlite")
    assert path.name == "gallery.sqlite.calibration.json"
    save_calibration(cal, path)
    loaded = load_calibration(path)
    assert loaded == cal
    fp = gallery_fingerprint(vectors, labels)
    threshold, text = choose_threshold(0.6, True, loaded, "ab" * 32, fp)
    assert threshold == cal.threshold and text.startswith("calibrated threshold") and "WARNING" not in text
    assert "gallery changed" in choose_threshold(0.6, True, loaded, "ab" * 32, "00")[1]
    threshold, text = choose_threshold(0.6, True, loaded, "cd" * 32, fp)
    assert threshold == 0.6 and "another embedding model" in text
    assert choose_threshold(0.6, False, loaded, "ab" * 32, fp)[0] == 0.6
    assert choose_threshold(0.6, True, None, "ab" * 32, fp)[1].endswith("run 'rtv calibrate'")
    assert load_calibration(tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(GalleryError, match="unreadable"):
        load_calibration(tmp_path / "bad.json")


def test_fingerprint_changes_with_any_embedding_or_label():
    vectors, labels = _clusters(n_people=3, per=2)
    base = gallery_fingerprint(vectors, labels)
    changed = vectors.copy()
    changed[4, 0] += 1e-6
    relabelled = labels.copy()
    relabelled[0] = "zz"
    assert len({base, gallery_fingerprint(changed, labels), gallery_fingerprint(vectors, relabelled)}) == 3


def test_histogram_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = plot_histogram(np.array([0.2, 0.3]), np.array([0.8, 0.9, 1.0]), 0.5, tmp_path / "h.png")
    assert out is not None and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rtv_calibrate_end_to_end(tmp_path, astronaut_gallery, capsys):
    """The astronaut gallery plus photos of the (not enrolled) cameraman as impostors: too few pairs for a FAR of
    1% is refused (nothing stored); enough for the target FAR is stored, and door mode then uses it."""
    import shutil

    import cv2
    from skimage import data

    from realtime.cli.main import main
    from realtime.config import load_config
    from realtime.door.mode import resolve_threshold

    gallery = tmp_path / "g.sqlite"
    shutil.copy(astronaut_gallery, gallery)
    impostors = tmp_path / "impostors"
    impostors.mkdir()
    cv2.imwrite(str(impostors / "cameraman.png"), data.camera())
    code = main(["calibrate", "--impostors", str(impostors), "--far", "0.01", "--set", f"faces.gallery={gallery}"])
    captured = capsys.readouterr()
    assert code == 5 and "NOT stored" in captured.err and "needs 100" in captured.err
    assert "pairs: 0 genuine, 1 impostor" in captured.out
    assert not calibration_path(gallery).exists()

    cv2.imwrite(str(impostors / "cameraman_flipped.png"), data.camera()[:, ::-1])
    cv2.imwrite(str(impostors / "cameraman_small.png"), cv2.resize(data.camera(), (384, 384)))
    code = main(["calibrate", "--impostors", str(impostors), "--far", "0.4", "--json",
                 "--set", f"faces.gallery={gallery}"])
    err = capsys.readouterr().err
    # a threshold above door.deny_threshold (0.7) would be refused by door mode: not stored, exit 2
    assert code == 2 and "door.deny_threshold" in err and not calibration_path(gallery).exists(), err
    code = main(["calibrate", "--impostors", str(impostors), "--far", "0.4", "--json",
                 "--set", f"faces.gallery={gallery}", "--set", "door.deny_threshold=1.5"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["stored"]
    assert out["n_impostor"] == 3 and out["n_genuine"] == 0 and out["tar"] is None and out["far"] <= 0.4
    assert 0.6 < out["threshold"] < 1.2  # distances of the cameraman's face to the astronaut's
    stored = load_calibration(calibration_path(gallery))
    assert isinstance(stored, Calibration) and stored.threshold == out["threshold"]
    threshold, text, _sha = resolve_threshold(load_config(None, [f"faces.gallery={gallery}",
                                                                 "door.deny_threshold=1.5"]))
    assert threshold == stored.threshold and text.startswith("calibrated threshold")
    if out["plot"]:
        assert (tmp_path / "g.sqlite.calibration.png").read_bytes()[:4] == b"\x89PNG"
