"""The gallery's own discipline: a trigger, view or table planted in the file is refused on open and whenever the
schema changes (also by a running door, within one frame); every change is read back after its commit; imports are
bounded (linear duplicate check, repeated keys, dates, look-alike names)."""

from __future__ import annotations

import base64
import json
import sqlite3
import time

import numpy as np
import pytest

from realtime.cli.main import main
from realtime.errors import GalleryError
from realtime.gallery.names import confusable_key
from realtime.gallery.store import Gallery

SHA = "cd" * 32
D = 4


@pytest.fixture
def gallery(tmp_path):
    path = tmp_path / "gallery.db"
    with Gallery.open(path, model_sha256=SHA, model_name="m", embedding_size=D) as g:
        g.enroll("x", np.eye(D, dtype=np.float32)[:2])
        g.enroll("alice", np.eye(D, dtype=np.float32)[2:3])
    return path


def _plant(path, sql):
    with sqlite3.connect(path) as conn:
        conn.execute(sql)


TRIGGERS = {
    "keep x": "CREATE TRIGGER keep BEFORE DELETE ON persons WHEN old.name = 'x' BEGIN SELECT RAISE(IGNORE); END",
    "keep access": "CREATE TRIGGER keep BEFORE UPDATE OF allowed ON persons BEGIN SELECT RAISE(IGNORE); END",
}


@pytest.mark.parametrize("command", [["gallery", "remove", "x"], ["gallery", "access", "x", "--deny"]])
@pytest.mark.parametrize("trigger", list(TRIGGERS))
def test_cli_refuses_a_gallery_with_a_planted_trigger(gallery, command, trigger, capsys):
    _plant(gallery, TRIGGERS[trigger])
    code = main([*command, "--set", f"faces.gallery={gallery}"])
    err = capsys.readouterr().err
    assert code == 5 and "trigger 'keep'" in err and "Traceback" not in err, err
    with sqlite3.connect(gallery) as conn:
        assert conn.execute("SELECT allowed FROM persons WHERE name = 'x'").fetchone() == (1,)


def test_a_trigger_planted_while_open_is_caught_before_the_next_write(gallery):
    with Gallery.open(gallery) as g:
        _plant(gallery, TRIGGERS["keep x"])
        with pytest.raises(GalleryError, match="trigger 'keep'"):
            g.remove("x")
        with pytest.raises(GalleryError, match="trigger 'keep'"):
            g.data_version()  # what a running door asks every frame


def test_every_change_is_read_back(gallery):
    with Gallery.open(gallery) as g:
        # a TEMP trigger is invisible in the file's schema: only the read-back can see the change did not take
        g._conn.execute("CREATE TEMP TRIGGER k BEFORE DELETE ON persons BEGIN SELECT RAISE(IGNORE); END")
        g._conn.execute("CREATE TEMP TRIGGER a BEFORE UPDATE ON persons BEGIN SELECT RAISE(IGNORE); END")
        with pytest.raises(GalleryError, match="did not take"):
            g.remove("x")
        with pytest.raises(GalleryError, match="did not take"):
            g.set_access("x", False)


def test_a_running_door_locks_within_one_frame_of_a_planted_trigger(gallery):
    from realtime.door.live_gallery import LiveGallery

    live = LiveGallery(gallery, SHA)
    live.open()
    try:
        assert live.check() == [] and not live.locked
        _plant(gallery, TRIGGERS["keep access"])
        events = live.check()
        assert live.locked and events and events[0].kind == "alarm" and "trigger" in events[0].reason
    finally:
        live.close()


# -------------------------------------------------------------------------------------------------- bounded imports
def _vector(value=0.25):
    return base64.b64encode(np.full(D, value, "<f4").tobytes()).decode("ascii")


def _doc(persons):
    return {"format": "rtv-gallery", "version": 1, "exported_at": "2025-01-01T00:00:00+00:00",
            "model": {"sha256": SHA, "name": "m", "embedding_size": D}, "persons": persons}


def _person(name, created_at="2025-01-01T00:00:00+00:00"):
    return {"name": name, "allowed": True, "schedule": None, "created_at": created_at,
            "embeddings": [{"vector": _vector(), "source": None, "quality": None, "created_at": None}]}


def test_a_repeated_key_is_refused(gallery, tmp_path):
    text = json.dumps(_doc([_person("carol")]))
    text = text[:-1] + ', "persons": []}'  # a second "persons" key that a plain JSON reader would keep
    src = tmp_path / "x.json"
    src.write_text(text)
    with Gallery.open(gallery) as g, pytest.raises(GalleryError, match="appears twice"):
        g.import_(src)


def test_a_date_that_is_not_a_date_is_refused(gallery, tmp_path):
    src = tmp_path / "x.json"
    src.write_text(json.dumps(_doc([_person("carol", created_at="not a date")])))
    with Gallery.open(gallery) as g, pytest.raises(GalleryError, match="not an ISO 8601 date"):
        g.import_(src)


def test_look_alike_names_are_refused(gallery, tmp_path):
    assert confusable_key("\u0410lice") == confusable_key("alice") == confusable_key("ALICE")
    src = tmp_path / "x.json"
    src.write_text(json.dumps(_doc([_person("\u0410lice")])))  # Cyrillic A
    with Gallery.open(gallery, SHA) as g:
        with pytest.raises(GalleryError, match="looks like 'alice'"):
            g.import_(src)
        with pytest.raises(GalleryError, match="looks like"):
            g.enroll("\u0430lice", np.eye(D, dtype=np.float32)[:1])
        assert [p.name for p in g.persons()] == ["alice", "x"]


def test_duplicate_check_is_linear(gallery, tmp_path):
    n = 5_000
    persons = [_person(f"p{i:06d}") for i in range(n)]
    src = tmp_path / "many.json"
    src.write_text(json.dumps(_doc(persons)))
    start = time.perf_counter()
    with Gallery.open(gallery) as g:
        assert g.import_(src) == n
    seconds = time.perf_counter() - start
    assert seconds < 10, seconds  # was quadratic: 100,000 persons took 117 s
    persons.append(_person("p000007"))
    src.write_text(json.dumps(_doc(persons)))
    with Gallery.open(tmp_path / "g2.db", model_sha256=SHA, model_name="m", embedding_size=D) as g:
        with pytest.raises(GalleryError, match="more than once"):
            g.import_(src)
