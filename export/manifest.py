"""The zoo manifest: for every shipped model file, its source, licence, sha256 and parity figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from realtime.runtime import file_sha256

MANIFEST_NAME = "MANIFEST.json"


def update_manifest(model_path: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Record ``entry`` (source, licence, parity, ...) plus the file's sha256 and size under the model's file name.

    The manifest lives beside the model; other entries are kept. Written atomically (temp file + rename).
    """
    model_path = Path(model_path)
    manifest_path = model_path.parent / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    record = dict(entry)
    record["sha256"] = file_sha256(model_path)
    record["bytes"] = model_path.stat().st_size
    manifest[model_path.name] = record
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(manifest_path)
    return record
