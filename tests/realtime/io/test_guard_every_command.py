"""Every registered command that writes a file refuses every protected path (directly, through a symlink and through
a hard link), with --overwrite too, before any work: the input, the config, the gallery (+ its -wal file and its
calibration), the audit log (+ its -journal file) and its key, every model the config names (detector, landmarks,
style models) and the shipped zoo.

The commands are found by walking the argparse tree of ``rtv``: a new writing option fails
:func:`test_the_table_lists_every_writing_option` until it is added here (and so is checked)."""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import pytest

import realtime.cli.main as cli_main
from realtime.cli.main import build_parser, main

#: option dests that name a file a command writes (flags with nargs=0, such as ``--json`` that prints, are skipped)
WRITER_DESTS = {"out", "jsonl", "metrics_json", "json", "plot", "roc"}
#: (command, option): (argv before the option, suffix the option expects). ``{input}`` is the command's input file.
FILE_OUTPUTS: dict[tuple[str, str], tuple[list[str], str]] = {
    ("run", "--out"): (["run", "--source", "{input}"], ".mp4"),
    ("run", "--jsonl"): (["run", "--source", "{input}"], ".jsonl"),
    ("run", "--metrics-json"): (["run", "--source", "{input}"], ".json"),
    ("annotate", "--out"): (["annotate", "{input}"], ".mp4"),
    ("annotate", "--jsonl"): (["annotate", "{input}"], ".jsonl"),
    ("annotate", "--metrics-json"): (["annotate", "{input}", "--jsonl", "{tmp}/new.jsonl"], ".json"),
    ("demo", "--metrics-json"): (["demo", "--out-dir", "{tmp}/demo"], ".json"),
    ("gallery export", "FILE"): (["gallery", "export"], ".json"),
    ("door", "--jsonl"): (["door", "--no-window", "--source", "{input}"], ".jsonl"),
    ("door", "--out"): (["door", "--no-window", "--source", "{input}"], ".mp4"),
    ("calibrate", "--plot"): (["calibrate"], ".png"),
    ("audit export", "FILE"): (["audit", "export"], ".csv"),
    ("audit keygen", "FILE"): (["audit", "keygen"], ".key"),
    ("bench pipeline", "--json"): (["bench", "pipeline", "--clip", "{input}"], ".json"),
    ("bench faces", "--json"): (["bench", "faces"], ".json"),
    ("bench detector", "--json"): (["bench", "detector", "--clip", "{input}"], ".json"),
    ("bench every", "--json"): (["bench", "every", "--clip", "{input}"], ".json"),
    ("bench precision", "--json"): (["bench", "precision", "--models", "faces", "--clip", "{input}"], ".json"),
    ("bench style", "--json"): (["bench", "style", "--out-dir", "{tmp}/bs"], ".json"),
    ("bench batch", "--json"): (["bench", "batch", "--work-dir", "{tmp}/bb"], ".json"),
    ("bench serve", "--json"): (["bench", "serve", "--seconds", "1"], ".json"),
    ("export detector", "--out"): (["export", "detector", "{input}"], ".onnx"),
    ("export style", "--out"): (["export", "style", "{input}"], ".onnx"),
    ("export embedder", "--out"): (["export", "embedder", "{input}"], ".onnx"),
    ("export int8", "--out"): (["export", "int8", "{input}"], ".onnx"),
    ("import darknet", "--out"): (["import", "darknet", "{input}", "{tmp}/in.weights"], ".onnx"),
    ("import darknet", "--checkpoint"): (["import", "darknet", "{input}", "{tmp}/in.weights", "--out",
                                          "{tmp}/new.onnx"], ".pt"),
    ("train style", "--out"): (["train", "style", "--style", "0"], ".pt"),
    ("train embedder", "--out"): (["train", "embedder", "--data", "{tmp}/data"], ".pt"),
    ("eval faces", "--roc"): (["eval", "faces", "--data", "{tmp}/data"], ".png"),
    ("eval faces", "--json"): (["eval", "faces", "--data", "{tmp}/data"], ".json"),
}
#: positional file outputs (argparse cannot tell them from inputs, so they are named here)
POSITIONAL_OUTPUTS = {("gallery export", "file"), ("audit export", "file"), ("audit keygen", "file")}
#: folders a command owns (checked against a protected file given as the folder)
FOLDER_OUTPUTS: dict[tuple[str, str], list[str]] = {
    ("demo", "--out-dir"): ["demo"],
    ("bench style", "--out-dir"): ["bench", "style"],
    ("bench batch", "--work-dir"): ["bench", "batch"],
    ("batch", "--out-dir"): ["batch", "{input}"],
    ("export faces", "--out-dir"): ["export", "faces"],
    ("export style", "--out-dir"): ["export", "style", "--teacher"],
    ("export int8-faces", "--zoo"): ["export", "int8-faces", "centerface"],
    ("export int8-faces", "--work-dir"): ["export", "int8-faces", "centerface"],
    ("export darknet", "--out-dir"): ["export", "darknet"],
    ("train detector", "--out"): ["train", "detector", "--data", "{tmp}/data"],
    ("train style", "--previews"): ["train", "style", "--style", "0", "--out", "{tmp}/new.pt"],
    ("label", "--out"): ["label", "{input}"],
}
FOLDER_DESTS = {"out_dir", "work_dir", "zoo", "previews"}
FOLDER_OPTIONS = {("train detector", "--out"), ("label", "--out")}  # --out that names a folder


def _leaves(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _leaves(sub, prefix + (name,))
            return
    yield " ".join(prefix), parser


def discovered_writers() -> tuple[set, set]:
    files, folders = set(), set()
    for command, parser in _leaves(build_parser()):
        for action in parser._actions:
            if not action.option_strings:
                if (command, action.dest) in POSITIONAL_OUTPUTS:
                    files.add((command, "FILE"))
                continue
            option = action.option_strings[0]
            if action.nargs == 0:
                continue
            if action.dest in FOLDER_DESTS or (command, option) in FOLDER_OPTIONS:
                folders.add((command, option))
            elif action.dest in WRITER_DESTS or (command, option) == ("import darknet", "--checkpoint"):
                files.add((command, option))
    return files, folders


def test_the_table_lists_every_writing_option():
    files, folders = discovered_writers()
    assert files == set(FILE_OUTPUTS), (files ^ set(FILE_OUTPUTS))
    assert folders == set(FOLDER_OUTPUTS), (folders ^ set(FOLDER_OUTPUTS))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def parser():
    return build_parser()


@pytest.fixture
def world(tmp_path, monkeypatch, parser):
    """A config naming a gallery, an audit log with its key, a detector, landmarks and a style folder; a fake zoo;
    an input file. Returns (argv substitutions, {what: path} of every protected file)."""
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "yolov3_tiny_coco.onnx").write_bytes(b"zoo model")
    (zoo / "face_cohort.npz").write_bytes(b"cohort")
    monkeypatch.setattr("realtime.io.paths.zoo_dir", lambda: zoo)
    monkeypatch.setattr(cli_main, "build_parser", lambda: parser)
    styles = tmp_path / "styles"
    styles.mkdir()
    files = {
        "gallery": tmp_path / "gallery.sqlite", "gallery wal": tmp_path / "gallery.sqlite-wal",
        "calibration": tmp_path / "gallery.sqlite.calibration.json",
        "audit log": tmp_path / "audit.sqlite", "audit journal": tmp_path / "audit.sqlite-journal",
        "audit key": tmp_path / "audit.key", "detector": tmp_path / "det.onnx",
        "landmarks": tmp_path / "shape5.npz", "style model": styles / "style_ink.onnx",
        "zoo model": zoo / "yolov3_tiny_coco.onnx", "cohort": zoo / "face_cohort.npz",
    }
    for what, path in files.items():
        path.write_bytes(f"precious {what}".encode())
    config = tmp_path / "config.yaml"
    config.write_text(
        f"detector: {{model: {files['detector']}}}\n"
        f"faces: {{gallery: {files['gallery']}, landmarks_model: {files['landmarks']}}}\n"
        f"door: {{audit: {files['audit log']}, audit_key_file: {files['audit key']}}}\n"
        f"style: {{model_dir: {styles}}}\n")
    files["config"] = config
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "in.weights").write_bytes(b"\0" * 64)
    files["input"] = tmp_path / "in.bin"
    files["input"].write_bytes(b"precious input")
    return {"tmp": str(tmp_path), "input": str(files["input"]), "config": str(config)}, files


def _argv(template: list[str], subs: dict) -> list[str]:
    return [part.format(**subs) for part in template]


def _has_overwrite(parser, command: str) -> list[str]:
    sub = dict(_leaves(parser))[command]
    flags = {s for a in sub._actions for s in a.option_strings}
    return ["--overwrite"] if "--overwrite" in flags else (["--force"] if "--force" in flags else [])


def _refused(capsys, argv: list[str], protected: Path, before: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code in (2, 6), (argv, code, err)
    assert protected.read_bytes() and _digest(protected) == before, argv
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# Commands that stop first, with exit 9, when PyTorch is missing (they need it to do anything): their guard cases
# run where torch is installed (as in CI) and skip elsewhere.
NEEDS_TORCH = {"export embedder", "export style", "export faces", "export int8-faces", "train embedder",
               "train style", "train detector"}


def _skip_without_torch(command: str) -> None:
    import importlib.util

    if command in NEEDS_TORCH and importlib.util.find_spec("torch") is None:
        pytest.skip(f"rtv {command} needs PyTorch before it reads its arguments' files")


@pytest.mark.parametrize("key", sorted(FILE_OUTPUTS), ids=lambda k: f"{k[0]} {k[1]}".replace(" ", "-"))
def test_every_file_output_refuses_every_protected_path(key, world, parser, capsys, tmp_path):
    subs, files = world
    command, option = key
    _skip_without_torch(command)
    template, suffix = FILE_OUTPUTS[key]
    base = ["--config", subs["config"], *_argv(template, subs), *_has_overwrite(parser, command)]
    targets = dict(files)
    if "{input}" not in " ".join(template):
        targets.pop("input")
    for what, path in targets.items():
        before = _digest(path)
        link = tmp_path / f"link_{what.replace(' ', '_')}{suffix}"
        link.symlink_to(path)
        hard = tmp_path / f"hard_{what.replace(' ', '_')}{suffix}"
        os.link(path, hard)
        for target in (path, link, hard):
            if target is path and option == "--out" and suffix == ".onnx" and what == "zoo model":
                continue  # an export may rebuild a shipped ONNX model named directly (never through a link)
            argv = base + ([str(target)] if option == "FILE" else [option, str(target)])
            line = _refused(capsys, argv, path, before)
            if target is not path:  # the right suffix: the guard itself says no
                assert "refus" in line or "is an input" in line or "never replaced" in line, (argv, line)
        link.unlink()
        hard.unlink()


@pytest.mark.parametrize("key", sorted(FOLDER_OUTPUTS), ids=lambda k: f"{k[0]} {k[1]}".replace(" ", "-"))
def test_every_output_folder_refuses_a_protected_file(key, world, capsys):
    subs, files = world
    command, option = key
    _skip_without_torch(command)
    for what in ("gallery", "audit key", "config", "landmarks"):
        path = files[what]
        before = _digest(path)
        argv = ["--config", subs["config"], *_argv(FOLDER_OUTPUTS[key], subs), option, str(path)]
        _refused(capsys, argv, path, before)


def test_calibrate_plot_with_an_unknown_format_is_an_argument_error(world, capsys):
    subs, files = world
    code = main(["--config", subs["config"], "calibrate", "--plot", f"{subs['tmp']}/x.key", "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2 and "--plot" in err and "Traceback" not in err, err
