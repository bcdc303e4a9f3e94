"""Every shipped model file is recorded in the zoo manifest with its source, licence and current sha256."""

import json

from realtime.runtime import file_sha256
from realtime.zoo import ZOO_DIR


def test_every_zoo_model_is_in_the_manifest_with_its_hash():
    manifest = json.loads((ZOO_DIR / "MANIFEST.json").read_text())
    models = sorted(ZOO_DIR.glob("*.onnx")) + sorted(ZOO_DIR.glob("*.npz"))
    assert models, "no shipped models"
    for path in models:
        entry = manifest.get(path.name)
        assert entry is not None, f"{path.name} has no manifest entry"
        assert entry["sha256"] == file_sha256(path), f"{path.name} changed since its manifest entry was written"
        assert entry.get("licence") and entry.get("source"), path.name
        assert entry["bytes"] == path.stat().st_size
    assert set(manifest) <= {p.name for p in models}, "manifest lists files that do not ship"
