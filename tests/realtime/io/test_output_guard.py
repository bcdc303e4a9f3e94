"""The output guard: an output that would destroy an input, the gallery, the audit log, the config or another output
is refused before any work (exit 6, one line); an existing file is replaced only with --overwrite."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from realtime.cli.main import main
from realtime.errors import OutputError
from realtime.io.paths import check_output_dir, check_outputs, write_text_atomic

NO_MODELS = ["--set", "detector.enabled=false", "--set", "faces.enabled=false"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("rtv: error")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------------------------------------- the guard itself
def test_refuses_an_input_by_path_symlink_and_hard_link(tmp_path):
    src = tmp_path / "in.mp4"
    src.write_bytes(b"video")
    link = tmp_path / "link.mp4"
    link.symlink_to(src)
    hard = tmp_path / "hard.mp4"
    os.link(src, hard)
    for out in (src, link, hard, tmp_path / "sub" / ".." / "in.mp4"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(OutputError, match="is an input"):
            check_outputs({"--out": out}, {"an input": [src]}, overwrite=True)
    assert src.read_bytes() == b"video"


def test_refuses_sqlite_side_files_and_another_output(tmp_path):
    gallery = tmp_path / "gallery.sqlite"
    gallery.write_bytes(b"db")
    with pytest.raises(OutputError, match="the gallery"):
        check_outputs({"--jsonl": tmp_path / "gallery.sqlite-wal"}, {"the gallery": [gallery]}, overwrite=True)
    with pytest.raises(OutputError, match="also the output --out"):
        check_outputs({"--out": tmp_path / "a.mp4", "--jsonl": tmp_path / "a.mp4"})


def test_refuses_folders_devices_dangling_links_and_existing_files(tmp_path):
    with pytest.raises(OutputError, match="is a folder"):
        check_outputs({"--out": tmp_path}, overwrite=True)
    with pytest.raises(OutputError, match="not a regular file"):
        check_outputs({"--out": "/dev/null"}, overwrite=True)
    dangling = tmp_path / "dangling.jsonl"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputError, match="link to nothing"):
        check_outputs({"--jsonl": dangling}, overwrite=True)
    existing = tmp_path / "old.jsonl"
    existing.write_text("keep")
    with pytest.raises(OutputError, match="--overwrite"):
        check_outputs({"--jsonl": existing})
    assert check_outputs({"--jsonl": existing}, overwrite=True)["--jsonl"] == existing.resolve()
    with pytest.raises(OutputError, match="does not exist"):
        check_outputs({"--jsonl": tmp_path / "missing" / "x.jsonl"})


def test_refuses_an_output_inside_an_input_folder(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    with pytest.raises(OutputError, match="inside an input"):
        check_outputs({"--jsonl": frames / "out.jsonl"}, {"an input": [frames]})


def test_owned_folder_refuses_links_in_place_of_its_files(tmp_path):
    keep = tmp_path / "precious.mp4"
    keep.write_bytes(b"x")
    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo_annotated.mp4").symlink_to(keep)
    with pytest.raises(OutputError, match="is a link"):
        check_output_dir("--out-dir", out, ("demo_annotated.mp4",))
    (out / "demo_annotated.mp4").unlink()
    (out / "demo_annotated.mp4").write_bytes(b"old run")
    assert check_output_dir("--out-dir", out, ("demo_annotated.mp4",)) == out.resolve()


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "m.json"
    target.write_text("old")

    def full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match="No space left"):
        write_text_atomic(target, "new")
    assert target.read_text() == "old"
    assert not (tmp_path / "m.json.partial").exists()


# ------------------------------------------------------------------------------------- through the CLI: exit 6
def test_annotate_refuses_to_overwrite_its_input(tmp_path, capsys, video_factory, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip = video_factory(tmp_path / "in.mp4", 3)
    before = digest(clip)
    code, _, err = run(capsys, "annotate", str(clip), "--out", str(clip), "--overwrite", *NO_MODELS)
    assert code == 6 and "is an input" in one_error_line(err)
    assert digest(clip) == before


@pytest.mark.parametrize("kept, flag", [("gallery.sqlite", "--jsonl"), ("door_audit.sqlite", "--metrics-json"),
                                        ("config.yaml", "--jsonl")])
def test_annotate_refuses_the_gallery_audit_log_and_config(tmp_path, capsys, video_factory, monkeypatch, kept,
                                                           flag):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RTV_DATA_DIR", str(tmp_path))  # the default gallery and audit log live here
    clip = video_factory(tmp_path / "in.mp4", 3)
    (tmp_path / "config.yaml").write_text("overlay:\n  enabled: true\n")
    target = tmp_path / kept
    if not target.exists():
        target.write_bytes(b"SQLite format 3\x00 pretend")
    before = digest(target)
    other = ["--jsonl", "ok.jsonl"] if flag != "--jsonl" else []
    code, _, err = run(capsys, "annotate", str(clip), flag, kept, *other, "--overwrite", *NO_MODELS)
    assert code == 6, err
    one_error_line(err)
    assert digest(target) == before
    assert not (tmp_path / "ok.jsonl").exists()  # refused before any work


def test_annotate_refuses_one_path_for_two_outputs(tmp_path, capsys, video_factory, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip = video_factory(tmp_path / "in.mp4", 3)
    code, _, err = run(capsys, "annotate", str(clip), "--out", "x.mp4", "--jsonl", "x.mp4", *NO_MODELS)
    assert code == 6 and "also the output --out" in one_error_line(err)
    assert not (tmp_path / "x.mp4").exists()


def test_an_existing_output_is_replaced_only_with_overwrite(tmp_path, capsys, video_factory, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip = video_factory(tmp_path / "in.mp4", 3)
    (tmp_path / "old.jsonl").write_text("precious\n")
    code, _, err = run(capsys, "annotate", str(clip), "--jsonl", "old.jsonl", "--no-progress", *NO_MODELS)
    assert code == 6 and "--overwrite" in one_error_line(err)
    assert (tmp_path / "old.jsonl").read_text() == "precious\n"
    code, _, err = run(capsys, "annotate", str(clip), "--jsonl", "old.jsonl", "--no-progress", "--overwrite",
                       *NO_MODELS)
    assert code == 0, err
    assert '"end"' in (tmp_path / "old.jsonl").read_text().splitlines()[-1]


def test_audit_export_and_gallery_export_refuse_what_they_read(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RTV_DATA_DIR", str(tmp_path))  # the default gallery and audit log live here
    for name in ("door_audit.sqlite", "gallery.sqlite"):
        (tmp_path / name).write_bytes(b"SQLite format 3\x00 pretend")
    before = {n: digest(tmp_path / n) for n in ("door_audit.sqlite", "gallery.sqlite")}
    code, _, err = run(capsys, "audit", "export", "door_audit.sqlite", "--overwrite")
    assert code == 6 and "the audit log" in one_error_line(err)
    code, _, err = run(capsys, "gallery", "export", "gallery.sqlite", "--force")
    assert code == 6 and "the gallery" in one_error_line(err)
    code, _, err = run(capsys, "gallery", "export", "door_audit.sqlite", "--force")
    assert code == 6 and "the audit log" in one_error_line(err)
    assert before == {n: digest(tmp_path / n) for n in before}


def test_an_output_in_a_read_only_place_is_refused_before_any_work(tmp_path, capsys, video_factory, monkeypatch,
                                                                    tmpfs):
    monkeypatch.chdir(tmp_path)
    clip = video_factory(tmp_path / "in.mp4", 3)
    ro = tmpfs("ro", 64, read_only=True)
    code, _, err = run(capsys, "annotate", str(clip), "--out", str(ro / "out.mp4"), *NO_MODELS)
    assert code == 6 and "cannot write" in one_error_line(err)
