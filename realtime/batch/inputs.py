"""What ``rtv batch`` was asked to annotate: files, folders, globs and list files, expanded into inputs.

Every input gets an output name (``DIR/<name>.mp4`` or, for a photo, ``DIR/<name><its suffix>``; ``DIR/<name>.jsonl``) that is unique in the batch and does
not depend on the order the inputs were given in, so a re-run with the same inputs finds its earlier outputs.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from realtime.errors import ConfigError, OutputError, SourceError
from realtime.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, is_image

LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
LEDGER_NAME = "batch"  # DIR/batch.jsonl: no input may take this name
_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class BatchInput:
    """One input. ``path``: absolute; ``exists`` False for a named file that is missing (it fails, the batch goes
    on); ``name``: the output stem in the out-dir, unique in the batch."""

    path: str
    name: str
    exists: bool = True


def _is_list_file(text: str) -> bool:
    return text.startswith("@") or (Path(text).suffix.lower() in LIST_SUFFIXES and Path(text).is_file())


def _inside(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _folder_inputs(folder: Path, out_dir: Path | None) -> list[Path]:
    """Video files and photos under ``folder`` (recursively, sorted, the out-dir left out): each photo is an input
    of its own, annotated as a photo (as ``rtv annotate photos/`` does)."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES + IMAGE_SUFFIXES
                  and p.is_file() and not _inside(p.resolve(), out_dir))


def _list_file_entries(text: str) -> list[str]:
    path = Path(text[1:] if text.startswith("@") else text).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read the input list {path}: {exc}") from exc
    base = path.resolve().parent
    entries = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = Path(line).expanduser()
        entries.append(str(entry if entry.is_absolute() else base / entry))
    return entries


def _expand(texts: Iterable[str], out_dir: Path | None, depth: int = 0) -> list[tuple[Path, bool]]:
    found: list[tuple[Path, bool]] = []
    for text in texts:
        text = str(text).strip()
        if not text:
            continue
        if _is_list_file(text):
            if depth > 4:
                raise ConfigError(f"input list {text}: lists nested more than 4 deep")
            found.extend(_expand(_list_file_entries(text), out_dir, depth + 1))
            continue
        path = Path(text).expanduser()
        if path.is_dir():
            found.extend((p, True) for p in _folder_inputs(path, out_dir))
        elif path.exists():
            found.append((path, True))
        elif any(ch in text for ch in _GLOB_CHARS):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
            for match in matches:
                if match.is_dir():
                    found.extend((p, True) for p in _folder_inputs(match, out_dir))
                elif not _inside(match.resolve(), out_dir):
                    found.append((match, True))
            if not matches:
                found.append((path, False))
        else:
            found.append((path, False))
    return found


def _safe_stem(path: Path) -> str:
    stem = path.stem if path.suffix.lower() in VIDEO_SUFFIXES or path.is_file() else path.name
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "input"
    return stem


def expand_inputs(texts: Sequence[str], out_dir: Path | None = None) -> list[BatchInput]:
    """Inputs in the order given (duplicates of one file kept once), each with a unique output ``name``.

    ``texts``: files, folders (their videos and photos, recursively; each photo is an input), globs, and
    list files (``@FILE`` or a ``.txt``/``.lst``/``.list`` file: one entry per line, ``#`` comments, relative
    entries taken from the list's folder). Files under ``out_dir`` are never picked up by a folder or a glob. A
    name that exists nowhere (or a glob that matches nothing) is kept as a missing input: it fails, the others run.
    Names: the file stem; stems that collide (case-insensitively, or with ``batch``) get ``-`` and 8 hex digits of
    the path's SHA-1, so the name depends on the path alone.
    """
    out = Path(out_dir).resolve() if out_dir is not None else None
    seen: set[str] = set()
    entries: list[tuple[Path, bool]] = []
    for path, exists in _expand(texts, out):
        key = str(path.resolve()) if exists else str(path.absolute())
        if key not in seen:
            seen.add(key)
            entries.append((Path(key), exists))
    stems = [_safe_stem(p) for p, _ in entries]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[stem.casefold()] = counts.get(stem.casefold(), 0) + 1
    inputs = []
    for (path, exists), stem in zip(entries, stems):
        if counts[stem.casefold()] > 1 or stem.casefold() == LEDGER_NAME:
            stem = f"{stem}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        inputs.append(BatchInput(path=str(path), name=stem, exists=exists))
    return inputs


def photo_suffix(path: str | Path) -> str:
    """A photo input's suffix as given (its annotated copy keeps it: ``a.JPG`` -> ``OUT/a.JPG``); "" for a video
    or an image folder."""
    path = Path(path)
    return path.suffix if is_image(path) and not path.is_dir() else ""


def output_suffixes(item: BatchInput) -> tuple[str, str]:
    """What ``item`` writes besides its name: (``.mp4`` or the photo's suffix, ``.jsonl``)."""
    return photo_suffix(item.path) or ".mp4", ".jsonl"


def check_outputs_spare_inputs(inputs: Sequence[BatchInput], out_dir: Path) -> None:
    """Refuse, before any work, a batch whose outputs (or the ledger) would land on one of its inputs."""
    real_inputs = {os.path.realpath(i.path): i.path for i in inputs if i.exists}
    out_dir = Path(out_dir)
    ledger = os.path.realpath(out_dir / f"{LEDGER_NAME}.jsonl")
    for item in inputs:
        for suffix in (*output_suffixes(item), *(f".partial{s}" for s in output_suffixes(item))):
            target = os.path.realpath(out_dir / f"{item.name}{suffix}")
            if target in real_inputs or target == ledger and ledger in real_inputs:
                raise OutputError(f"the output {target} would overwrite the input {real_inputs[target]}; "
                                  "choose another --out-dir")
    if ledger in real_inputs:
        raise OutputError(f"{ledger} is an input and the batch ledger; choose another --out-dir")


def input_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes; of a folder: of each image's name and bytes, in name order."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    elif path.is_file():
        files = [path]
    else:
        raise SourceError(f"input not found: {path}")
    for file in files:
        if path.is_dir():
            digest.update(file.name.encode() + b"\0")
        try:
            with open(file, "rb") as handle:
                while block := handle.read(chunk):
                    digest.update(block)
        except OSError as exc:
            raise SourceError(f"cannot read {file}: {exc}") from exc
    return digest.hexdigest()


def expected_frames(path: str | Path) -> int:
    """Frames a video's header announces (images in a folder); 0 when unknown or unreadable. For the ETA only."""
    path = Path(path)
    if path.is_dir():
        return sum(1 for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not path.is_file():  # a FIFO would block the probe, a device never end
        return 0
    if is_image(path):  # a photo is one frame
        return 1
    try:
        import av

        with av.open(str(path)) as container:
            return int(container.streams.video[0].frames or 0) if container.streams.video else 0
    except Exception:  # noqa: BLE001 - a probe for the progress bar only; the worker reports the real error
        return 0
