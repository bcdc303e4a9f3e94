"""Where rtv keeps its data when the config does not say: the gallery, the door's audit log and its key live in
the user's data folder (platformdirs: ``~/.local/share/rtv`` on Linux, ``~/Library/Application Support/rtv`` on
macOS, ``%LOCALAPPDATA%\\rtv`` on Windows), so enrolling in one folder and identifying from another finds the
same gallery. ``RTV_DATA_DIR`` overrides the folder (tests point it at a temporary one)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "RTV_DATA_DIR"
GALLERY_NAME = "gallery.sqlite"
AUDIT_NAME = "door_audit.sqlite"
AUDIT_KEY_NAME = "door_audit.key"


def data_dir() -> Path:
    """The data folder: ``$RTV_DATA_DIR`` when set, else the user's data folder for rtv. Not created here."""
    override = os.environ.get(DATA_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser().resolve()
    from platformdirs import user_data_dir

    return Path(user_data_dir("rtv", appauthor=False))


def default_gallery() -> str:
    """``faces.gallery`` when the config does not set it."""
    return str(data_dir() / GALLERY_NAME)


def default_audit() -> str:
    """``door.audit`` when the config does not set it."""
    return str(data_dir() / AUDIT_NAME)


def default_audit_key() -> Path:
    """Where ``rtv audit keygen`` writes a key when no file is named."""
    return data_dir() / AUDIT_KEY_NAME


def prepare_parent(path: Path | str) -> None:
    """Create the data folder (owner-only) when ``path`` is to be created in it; any other folder must exist
    already (a typo in a configured path is an error, not a new folder)."""
    parent = Path(path).parent
    if not parent.is_dir() and parent.resolve() == data_dir().resolve():
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
