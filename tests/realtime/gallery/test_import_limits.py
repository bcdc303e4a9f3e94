"""Gallery import of hostile files: too big (1.5 GB), too deep, bad names, random mutations (hypothesis): one line,
an exit code from the documented set, and nothing stored changed."""

from __future__ import annotations

import base64
import copy
import functools
import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime.cli.main import main
from realtime.errors import GalleryError
from realtime.gallery.names import check_name, escape_text, name_problem
from realtime.gallery.store import Gallery

SHA = "cd" * 32
D = 4
IMPORT_EXIT_CODES = {0, 5}  # ok; GalleryError (documented in the README's exit code table)


def _make_gallery(path: Path) -> None:
    with Gallery.open(path, model_sha256=SHA, model_name="m", embedding_size=D) as g:
        g.enroll("alice", np.eye(D, dtype=np.float32)[:2], sources=["a1.png", "a2.png"])
        g.enroll("bob", np.eye(D, dtype=np.float32)[2:3])


def _state(path: Path):
    with sqlite3.connect(path) as conn:
        return (conn.execute("SELECT id, name, allowed, schedule, created_at FROM persons ORDER BY id").fetchall(),
                conn.execute("SELECT * FROM embeddings ORDER BY id").fetchall())


def _document(name="carol", **person):
    vector = base64.b64encode(np.full(D, 0.25, "<f4").tobytes()).decode("ascii")
    entry = {"name": name, "allowed": True, "schedule": None, "created_at": "2025-01-01T00:00:00+00:00",
             "embeddings": [{"vector": vector, "source": "c.png", "quality": 1.0, "created_at": None}]}
    entry.update(person)
    return {"format": "rtv-gallery", "version": 1, "exported_at": "2025-01-01T00:00:00+00:00",
            "model": {"sha256": SHA, "name": "m", "embedding_size": D}, "persons": [entry]}


def _import(capsys, gallery: Path, file: Path) -> tuple[int, str]:
    code = main(["gallery", "import", str(file), "--set", f"faces.gallery={gallery}"])
    out, err = capsys.readouterr()
    return code, err


@pytest.fixture
def gallery(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "gallery.db"
    _make_gallery(path)
    return path


def test_a_huge_file_is_refused_before_it_is_read(tmp_path, gallery, capsys):
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as fh:  # sparse: 1.5 GB that take no disk
        fh.truncate(1536 * 2**20)
    before = _state(gallery)
    code, err = _import(capsys, gallery, huge)
    assert code == 5 and "1536 MiB" in err and len(err.strip().splitlines()) == 1
    assert _state(gallery) == before
    small = tmp_path / "small.json"
    small.write_text(json.dumps(_document()))
    with Gallery.open(gallery, create=False) as g, pytest.raises(GalleryError, match="more than"):
        g.import_(small, max_bytes=100)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000,
                                  json.dumps({"format": "rtv-gallery", "x": [[[[[[[1]]]]]]]})])
def test_deep_nesting_is_refused_in_one_line(tmp_path, gallery, capsys, text):
    deep = tmp_path / "deep.json"
    deep.write_text(text)
    before = _state(gallery)
    code, err = _import(capsys, gallery, deep)
    assert code == 5 and "nested deeper" in err and len(err.strip().splitlines()) == 1
    assert _state(gallery) == before


@pytest.mark.parametrize("name", ["-rf", "--help", "ann\u202egnp.exe", "x\u2028#2 GRANT", "tab\there", "bell\x07",
                                  "zero\u200bwidth", "lrm\u200e", "x" * 101, "  ", ""])
def test_bad_names_are_refused_at_import_and_enrolment(tmp_path, gallery, capsys, name):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_document(name)))
    before = _state(gallery)
    code, err = _import(capsys, gallery, bad)
    assert code == 5 and "refused" in err and len(err.strip().splitlines()) == 1
    assert not any(ch in err for ch in "\u202e\u2028\u200b\u200e\x07\t")
    assert _state(gallery) == before
    with Gallery.open(gallery, model_sha256=SHA) as g, pytest.raises(GalleryError, match="refused"):
        g.enroll(name, np.ones((1, D), np.float32))
    assert _state(gallery) == before


def test_good_names_pass_and_stored_bad_names_can_still_be_removed(gallery):
    for name in ("José García", "山田 太郎", "O'Brien-Smith", "Ann (contractor)", "a-b"):
        assert check_name(name) == name and name_problem(name) is None
    assert check_name("  Ann  ") == "Ann"
    with sqlite3.connect(gallery) as conn:
        conn.execute("UPDATE persons SET name = '-x\u202e' WHERE name = 'bob'")
    with Gallery.open(gallery, create=False) as g:
        assert [n for n, _why in g.bad_names()] == ["-x\u202e"]
        with pytest.raises(GalleryError, match=r"invalid person name.*\\u202e"):
            g.check_names()
        g.set_access("-x\u202e", False)
        assert g.remove("-x\u202e") == 1
        g.check_names()
    assert escape_text("a\u202eb\nc\\") == "a\\u202eb\\x0ac\\\\"


def test_access_schedule_that_is_not_json_is_a_usage_error(gallery, capsys):
    code = main(["gallery", "access", "alice", "--schedule", "x", "--set", f"faces.gallery={gallery}"])
    err = capsys.readouterr().err
    assert code == 2 and "not JSON" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------------- the fuzz test
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                   max_size=3), max_leaves=8)
_PATHS = [("format",), ("version",), ("model",), ("model", "sha256"), ("model", "embedding_size"), ("persons",),
          ("persons", 0), ("persons", 0, "name"), ("persons", 0, "allowed"), ("persons", 0, "schedule"),
          ("persons", 0, "created_at"), ("persons", 0, "embeddings"), ("persons", 0, "embeddings", 0),
          ("persons", 0, "embeddings", 0, "vector"), ("persons", 0, "embeddings", 0, "source"),
          ("persons", 0, "embeddings", 0, "quality"), ("persons", 0, "embeddings", 0, "created_at")]


@st.composite
def _hostile_file(draw) -> bytes:
    kind = draw(st.sampled_from(["mutate", "mutate", "mutate", "splice", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=200))
    document = copy.deepcopy(_document(draw(st.sampled_from(["carol", "alice", "-x", "d\u202ee", "e\nf"]))))
    if kind == "splice":
        text = json.dumps(document).encode("utf-8")
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 20))
        return text[:at] + draw(st.binary(max_size=12)) + text[at + cut:]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_PATHS))
        node = document
        try:
            for key in path[:-1]:
                node = node[key]
            if draw(st.booleans()) and isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = draw(_json)
        except (KeyError, IndexError, TypeError):
            pass
    return json.dumps(document).encode("utf-8")


@functools.lru_cache(maxsize=1)
def _base_gallery() -> Path:
    path = Path(tempfile.mkdtemp(prefix="rtv-fuzz-")) / "base.db"
    _make_gallery(path)
    return path


_FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(max_examples=30, **_FUZZ)
@given(content=_hostile_file())
def test_fuzzed_import_files_give_one_line_a_known_code_and_change_nothing(tmp_path, capsys, content):
    _check_import(tmp_path, capsys, content)


@pytest.mark.slow
@settings(max_examples=500, **_FUZZ)
@given(content=_hostile_file())
def test_fuzzed_import_files_many(tmp_path, capsys, content):
    _check_import(tmp_path, capsys, content)


def _check_import(tmp_path, capsys, content: bytes) -> None:
    gallery = tmp_path / "fuzz.db"
    shutil.copy(_base_gallery(), gallery)
    for suffix in ("-wal", "-shm"):
        Path(f"{gallery}{suffix}").unlink(missing_ok=True)
    file = tmp_path / "fuzz.json"
    file.write_bytes(content)
    before = _state(gallery)
    code, err = _import(capsys, gallery, file)
    assert code in IMPORT_EXIT_CODES, err
    if code != 0:
        assert len(err.strip().splitlines()) == 1 and err.startswith("rtv: error: "), err
        assert _state(gallery) == before
    else:
        persons, _rows = _state(gallery)
        assert all(name_problem(name) is None for _id, name, *_rest in persons)
