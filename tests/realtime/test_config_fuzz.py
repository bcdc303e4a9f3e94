"""Fuzz over config values (hypothesis): whatever a config file or ``--set`` holds, the loader answers with a Config
or a ConfigError, and ``rtv annotate`` ends with a documented exit code, one line on stderr when it refuses, and
nothing it keeps (input, gallery, audit log, config) changed."""

from __future__ import annotations

import dataclasses
import hashlib
import typing
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from realtime.cli.main import main  # noqa: E402
from realtime.config import Config, load_config  # noqa: E402
from realtime.errors import ConfigError  # noqa: E402

# 0 done, 2 usage/config, 3 source, 4 model, 5 gallery, 6 output; never 1 or 70 (internal error)
DOCUMENTED_EXIT_CODES = {0, 2, 3, 4, 5, 6}
KEPT = ("in.mp4", "gallery.sqlite", "door_audit.sqlite", "config.yaml")


def _keys() -> list[str]:
    keys = []
    for section in dataclasses.fields(Config):
        if section.metadata.get("internal"):
            continue
        cls = typing.get_type_hints(Config)[section.name]
        keys.extend(f"{section.name}.{f.name}" for f in dataclasses.fields(cls))
    return keys + ["source.nope", "nosection.key"]


KEYS = _keys()
PATHS = st.sampled_from(["in.mp4", "gallery.sqlite", "door_audit.sqlite", "config.yaml", "o.jsonl", ".", "",
                         "missing/x", "/dev/null"])
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), PATHS,
    st.lists(st.one_of(st.integers(-3, 5000), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
ENTRIES = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4)


def _nested(entries: dict) -> dict:
    data: dict = {}
    for key, value in entries.items():
        section, _, name = key.partition(".")
        data.setdefault(section, {})[name] = value
    return data


@settings(max_examples=300, deadline=None)
@given(entries=ENTRIES)
def test_loader_answers_any_values_with_a_config_or_a_config_error(entries, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cfg")
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(_nested(entries)), encoding="utf-8")
    try:
        config = load_config(path)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(config, Config)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200), override=st.text(max_size=40))
def test_loader_answers_any_bytes_and_overrides(raw, override, tmp_path_factory):
    path = tmp_path_factory.mktemp("raw") / "config.yaml"
    path.write_bytes(raw)
    for attempt in ((path, []), (None, [override]), (None, [f"source.fps={override}"])):
        try:
            load_config(*attempt)
        except ConfigError:
            pass


def _digest(folder: Path) -> dict[str, str]:
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in KEPT}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from tests.conftest import write_video

    folder = tmp_path_factory.mktemp("fuzzrun")
    write_video(folder / "in.mp4", 3)
    for name in ("gallery.sqlite", "door_audit.sqlite"):
        (folder / name).write_bytes(b"SQLite format 3\x00 stand-in kept file")
    return folder


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=ENTRIES, overrides=st.lists(st.tuples(st.sampled_from(KEYS), st.text(max_size=10)), max_size=2))
def test_annotate_with_fuzzed_config_exits_cleanly_and_changes_nothing_kept(entries, overrides, workdir, capsys,
                                                                           monkeypatch):
    monkeypatch.chdir(workdir)
    data = _nested(entries)
    for section in ("detector", "faces", "style"):  # keep model loading out of most runs (speed), not all
        data.setdefault(section, {}).setdefault("enabled", False)
    (workdir / "config.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    before = _digest(workdir)
    argv = ["--config", "config.yaml", "annotate", "in.mp4", "--jsonl", "o.jsonl", "--overwrite", "--no-progress",
            "--max-frames", "2"]
    for key, value in overrides:
        argv += ["--set", f"{key}={value}"]
    code = main(argv)
    err = capsys.readouterr().err
    assert code in DOCUMENTED_EXIT_CODES, err
    assert "Traceback" not in err and "internal error" not in err
    if code not in (0, 3):
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("rtv: error:"), err
    assert _digest(workdir) == before
