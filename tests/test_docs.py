"""The generated documentation pages are current (defaults and model facts live in the code, not in the docs)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("docs_generate", REPO / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_pages_are_current():
    stale = [str(path.relative_to(REPO)) for path, text in _generator().pages().items()
             if not path.is_file() or path.read_text(encoding="utf-8") != text]
    assert not stale, f"out of date, run python docs/generate.py: {stale}"


def test_config_reference_lists_every_key_with_its_default():
    import dataclasses

    from realtime.config import Config

    text = (REPO / "docs" / "reference" / "config.md").read_text(encoding="utf-8")
    for section in dataclasses.fields(Config):
        if section.metadata.get("internal"):
            continue
        for field in dataclasses.fields(type(getattr(Config(), section.name))):
            assert f"| `{section.name}.{field.name}` |" in text, f"{section.name}.{field.name}"
    assert "| `detector.score_threshold` | `0.5` | [0, 1] |" in text


def test_yaml_comments_are_read_per_section(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a:\n  x: 1  # first\n  y: 2\nb:\n  x: 3   # other\n  z: 4   # long\n         # more\n")
    assert _generator().yaml_comments(path) == {"a.x": "first", "b.x": "other", "b.z": "long more"}
