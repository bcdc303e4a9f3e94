"""Small real filesystems for the output tests: a tmpfs of a given size (root only; tests skip without it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(name, size_kib, read_only=False) -> Path``: a fresh tmpfs under ``tmp_path``, unmounted after."""
    mounted: list[Path] = []

    def mount(name: str, size_kib: int, read_only: bool = False) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        options = f"size={size_kib}k" + (",ro" if read_only else "")
        try:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                                  capture_output=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            pytest.skip("cannot run mount here")
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode(errors='replace').strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=10)
