"""Config files that are hostile or broken give a ConfigError (exit 2, one line), never exit 70, a hang or an OOM."""

from __future__ import annotations

import pytest

from realtime.cli.main import main
from realtime.config import MAX_CONFIG_BYTES, load_config
from realtime.errors import ConfigError


def _alias_bomb() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        prev, name = chr(96 + i), chr(97 + i)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("content, needle", [
    (_alias_bomb().encode(), "alias"),
    (b"source:\n  uri: &u cam\ndetector:\n  model: *u\n", "alias"),
    (b"a: " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "nests deeper"),
    (b"".join(b"  " * i + b"k%d:\n" % i for i in range(200)), "nests deeper"),
    (b"source:\n  uri: caf\xe9\n", "not UTF-8"),
    (b"source:\n  fps: 2\n  fps: 3\n", "repeats the key"),
    (b"source:\n  1: 2\n", "not a name"),
    (b"source:\n  fps: .inf\n", "finite"),
    (b"door:\n  hook_timeout_s: .nan\n", "finite"),
    (b"source:\n  fps: " + b"9" * 400 + b"\n", "too large"),
    (b"source:\n  uri: \"a\\0b\"\n", "NUL"),
    (b"source: [1, 2\n", "not valid YAML"),
])
def test_hostile_config_files_are_config_errors(tmp_path, content, needle):
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=needle):
        load_config(path)


def test_a_config_file_has_a_size_limit(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match="at most"):
        load_config(path)


@pytest.mark.parametrize("override, needle", [
    ("source.uri=*a", "alias"),
    ("source.uri=[1, 2", "not valid YAML"),
    ("source.fps=.inf", "finite"),
    ("source.queue_size=" + "[" * 50 + "]" * 50, "nests deeper"),
    ("source.uri=" + "x" * 10_000, "longer than"),
])
def test_hostile_overrides_are_config_errors(override, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(None, [override])


def test_cli_answers_a_bad_config_with_exit_2_and_one_line(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"a: " + b"[" * 100_000 + b"]" * 100_000 + b"\n")
    code = main(["--config", str(path), "annotate", "x.mp4", "--jsonl", str(tmp_path / "o.jsonl")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("rtv: error:"), err
