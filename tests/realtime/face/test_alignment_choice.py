"""faces.alignment: the embedder's contract decides by default; config can force either chip geometry."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.config import RuntimeConfig, load_config
from realtime.errors import ConfigError, ModelError
from realtime.zoo import open_face_embedder
from realtime.zoo import ZOO_DIR

SHIPPED = [ZOO_DIR / "dlib_resnet128.onnx", ZOO_DIR / "dlib_shape5.npz"]
needs_models = pytest.mark.skipif(not all(p.is_file() for p in SHIPPED), reason="shipped face models absent")


def test_bad_alignment_value_names_the_key():
    with pytest.raises(ConfigError, match=r"faces\.alignment"):
        load_config(None, ["faces.alignment=dlib68"])


@needs_models
@pytest.mark.parametrize("choice, dlib", [("auto", True), ("dlib5", True), ("template5", False)])
def test_shipped_embedder_gets_the_aligner_its_contract_asks_for(choice, dlib):
    config = load_config(None, [f"faces.alignment={choice}"])
    with open_face_embedder(config.faces, RuntimeConfig()) as embedder:
        assert embedder.alignment == "dlib5"  # what the released network was trained on
        assert (embedder.aligner is not None) == dlib
        frame = np.zeros((120, 160, 3), np.uint8)
        chips, points = embedder.align(frame, np.array([[40, 20, 100, 90]], np.float32),
                                       np.full((1, 5, 2), 60, np.float32))
        assert chips.shape == (1, 150, 150, 3) and np.isfinite(points).all() == dlib


@needs_models
def test_missing_landmarks_model_is_a_model_error(tmp_path):
    config = load_config(None, ["faces.alignment=dlib5", f"faces.landmarks_model={tmp_path / 'absent.npz'}"])
    with pytest.raises(ModelError, match="face_landmarks model not found"):
        open_face_embedder(config.faces, RuntimeConfig())


@needs_models
def test_refinement_can_be_turned_off():
    config = load_config(None, ["faces.landmarks_refine=false"])
    with open_face_embedder(config.faces, RuntimeConfig()) as embedder:
        assert embedder.aligner is not None and embedder.aligner.refine is False
