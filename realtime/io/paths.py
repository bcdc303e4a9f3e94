"""The output guard: nothing rtv writes may destroy something it reads or keeps.

Every command that writes files calls :func:`check_outputs` from its CLI handler BEFORE any work (no model opened,
no frame read). An output is refused (:class:`OutputError`, exit 6, one line) when it resolves, after symlinks or
through a hard link (same device and inode), to a protected file (an input, the gallery, the audit log, the config,
their SQLite side files) or to another output of the same run; when it is a folder, a dangling link or anything
else that is not a regular file; when it lies inside an input folder; when its folder is missing or cannot be
written; or when it exists and ``overwrite`` is false. Commands that own an output folder (``demo``, ``label``,
``train detector``) check it with :func:`check_output_dir` and may reuse the files they own in it.

:func:`write_text_atomic` writes ``<name>.partial`` and renames it over the final name, so a crash or a full disk
never leaves a half file under the final name.
"""

from __future__ import annotations

import glob
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from realtime.errors import OutputError

PARTIAL_SUFFIX = ".partial"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
_GLOB_CHARS = set("*?[")

PathLike = Path | str


def partial_path(path: PathLike) -> Path:
    """Where a file is written before the rename that publishes it: ``<name>.partial`` beside it."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


@dataclass(frozen=True)
class _Protected:
    """A file or folder an output must not touch: its resolved path and, when it exists, (device, inode)."""

    what: str
    path: Path
    identity: tuple[int, int] | None
    is_dir: bool


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _resolve(path: PathLike) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve(strict=False)


def _protected_entries(what: str, path: PathLike) -> list[_Protected]:
    """``path`` itself plus its SQLite side files; a glob protects each file it matches."""
    text = str(path)
    if _GLOB_CHARS & set(text) and not Path(text).exists():
        matches = glob.glob(text)
        return [e for m in matches for e in _protected_entries(what, m)]
    resolved = _resolve(path)
    entries = [_Protected(what, resolved, _identity(resolved), resolved.is_dir())]
    for suffix in SQLITE_SIDE_FILES:
        side = resolved.with_name(resolved.name + suffix)
        entries.append(_Protected(f"{what} ({suffix[1:]} file)", side, _identity(side), False))
    return entries


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def _check_folder_writable(folder: Path, label: str, shown: PathLike) -> None:
    if not folder.is_dir():
        raise OutputError(f"{label} {shown}: folder {folder} does not exist")
    try:  # a real probe: os.access says yes to root on a read-only place it cannot write
        fd, probe = tempfile.mkstemp(prefix=".rtv-probe-", dir=folder)
    except OSError as exc:
        raise OutputError(f"{label} {shown}: cannot write in {folder} ({exc.strerror or exc})") from exc
    os.close(fd)
    os.unlink(probe)


def _check_one(label: str, shown: PathLike, overwrite: bool, protected: list[_Protected],
               make_parents: bool) -> Path:
    raw = Path(shown).expanduser()
    if str(shown) == "" or raw.name in ("", ".", ".."):
        raise OutputError(f"{label} {str(shown)!r}: not a file name")
    if raw.name.endswith(PARTIAL_SUFFIX):
        raise OutputError(f"{label} {shown}: names ending in {PARTIAL_SUFFIX} are rtv's own unfinished files")
    resolved = _resolve(raw)
    if os.path.lexists(raw):
        try:
            st = os.stat(raw)
        except OSError:
            raise OutputError(f"{label} {shown}: is a link to nothing; refusing to write through it") from None
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{label} {shown}: is a folder; give a file name")
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(f"{label} {shown}: is not a regular file (device, pipe or socket); refusing")
    identity = _identity(resolved)
    for entry in protected:
        same = resolved == entry.path or (identity is not None and identity == entry.identity)
        if same:
            raise OutputError(f"{label} {shown}: is {entry.what} ({entry.path}); refusing to overwrite it")
        if entry.is_dir and _is_within(resolved, entry.path):
            raise OutputError(f"{label} {shown}: lies inside {entry.what} ({entry.path}); write it elsewhere")
        partial = partial_path(resolved)
        if partial == entry.path:
            raise OutputError(f"{label} {shown}: its unfinished copy {partial.name} would be {entry.what}")
    if identity is not None and not overwrite:
        raise OutputError(f"{label} {shown}: exists; pass --overwrite to replace it")
    parent = resolved.parent
    if make_parents and not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{label} {shown}: cannot make folder {parent} ({exc.strerror or exc})") from exc
    _check_folder_writable(parent, label, shown)
    return resolved


def protected_paths(config=None, inputs: Iterable[PathLike | None] = (),
                    rebuilds: Iterable[PathLike] = ()) -> dict[str, list]:
    """THE protected set: everything a run must never write over, by what it is (for error messages).

    ``config``: a :class:`realtime.config.Config` or None (then only ``./config.yaml`` when present). It names the
    config file, the gallery and its calibration, the audit log and its key file, every model file it names (object
    detector, face detector, embedder, landmarks, style models) and the shipped zoo (which holds the cohort and the
    default models). ``inputs``: the files or folders the command reads. ``rebuilds``: zoo files that a command
    exists to rebuild (``rtv export faces`` into the zoo); only zoo and model entries can be exempted this way,
    never an input, the gallery, the audit log, its key or the config. Each path also protects its SQLite
    -wal/-shm/-journal files (see :func:`check_outputs`).
    """
    from realtime.config import ZOO_DIR

    config_path = getattr(config, "path", None) if config is not None else None
    protected: dict[str, list] = {"an input": [p for p in inputs if p is not None and str(p) != ""]}
    protected["the config"] = [config_path or ("config.yaml" if Path("config.yaml").is_file() else None)]
    exempt = {_resolve(p) for p in rebuilds}
    zoo_files = [str(p) for p in sorted(Path(ZOO_DIR).glob("*")) if _resolve(p) not in exempt]
    if config is None:
        protected["a shipped model (zoo)"] = zoo_files
        return protected
    gallery = config.faces.gallery
    protected["the gallery"] = [gallery]
    protected["the gallery's calibration"] = [f"{gallery}.calibration.json" if gallery else None]
    protected["the audit log"] = [config.door.audit]
    protected["the audit key file"] = [config.door.audit_key_file]
    style_dir = config.style.model_dir
    models = [config.detector.model, config.faces.detector_model, config.faces.embedder_model,
              config.faces.landmarks_model, str(Path(style_dir) / "style_*.onnx") if style_dir else None]
    protected["a model the config names"] = [m for m in models if m and _resolve(m) not in exempt]
    protected["a shipped model (zoo)"] = zoo_files
    return protected


def check_outputs(outputs: Mapping[str, PathLike | None], protected: Mapping[str, Iterable[PathLike | None]]
                  = {}, overwrite: bool = False, make_parents: bool = False) -> dict[str, Path]:
    """Refuse any output that could destroy data, before any work; return the outputs' resolved paths.

    ``outputs``: label (e.g. ``"--out"``) -> path or None (not asked for). ``protected``: what each group of
    paths is (``"an input"``, ``"the gallery"``, ``"the audit log"``, ``"the config"``) -> its paths (None and
    empty entries are skipped; a glob protects what it matches; a folder protects everything inside it).
    ``overwrite``: an existing regular file may be replaced. ``make_parents``: create missing output folders
    (otherwise a missing folder is refused). Raises :class:`OutputError` (exit 6) naming the output and why.
    """
    entries: list[_Protected] = []
    for what, paths in protected.items():
        for path in paths:
            if path is not None and str(path) != "":
                entries.extend(_protected_entries(what, path))
    checked: dict[str, Path] = {}
    for label, shown in outputs.items():
        if shown is None:
            continue
        resolved = _check_one(label, shown, overwrite, entries, make_parents)
        checked[label] = resolved
        entries.extend(_protected_entries(f"also the output {label}", resolved))
    return checked


def check_output_dir(label: str, folder: PathLike, owned_names: Iterable[str] = (),
                     protected: Mapping[str, Iterable[PathLike | None]] = {}) -> Path:
    """A folder that a command owns (it may replace its own files in it): refused when it is not a folder, is or
    holds a protected file or lies inside one's folder, or cannot be written; each of ``owned_names`` inside
    it, when present, must be a regular file (not a link or a folder) that is not protected. Creates the folder."""
    raw = Path(folder).expanduser()
    if os.path.lexists(raw) and not raw.is_dir():
        raise OutputError(f"{label} {folder}: is not a folder")
    resolved = _resolve(raw)
    entries = [e for what, paths in protected.items() for p in paths if p is not None and str(p) != ""
               for e in _protected_entries(what, p)]
    for entry in entries:
        if resolved == entry.path or (entry.is_dir and _is_within(resolved, entry.path)):
            raise OutputError(f"{label} {folder}: is or lies inside {entry.what} ({entry.path})")
    try:
        resolved.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{label} {folder}: cannot make it ({exc.strerror or exc})") from exc
    _check_folder_writable(resolved, label, folder)
    for name in owned_names:
        target = raw / name
        if os.path.islink(target):
            raise OutputError(f"{label} {folder}: {name} is a link; rtv replaces only files it wrote there")
        if os.path.lexists(target) and not target.is_file():
            raise OutputError(f"{label} {folder}: {name} is not a regular file")
        identity = _identity(target)
        for entry in entries:
            if identity is not None and identity == entry.identity:
                raise OutputError(f"{label} {folder}: {name} is {entry.what} ({entry.path}); refusing")
    return resolved


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``<path>.partial``, flush it to disk, rename it to ``path``.

    A failure (full disk, no permission) removes the partial file and raises :class:`OutputError`; ``path`` is
    then what it was before."""
    path = Path(path)
    tmp = partial_path(path)
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def write_json_atomic(path: PathLike, data: object) -> Path:
    """``data`` as pretty JSON through :func:`write_text_atomic`."""
    import json

    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
