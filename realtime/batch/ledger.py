"""``DIR/batch.jsonl``: one JSON object per input, and what a re-run may skip.

During a run the driver appends a line as each input finishes (so a killed run keeps what it finished; the last
line of a name wins); at the end the file is rewritten with one line per input, in input order (lines of names not
in this run are kept after them). A record::

    {"input": "/abs/clip.mp4", "name": "clip", "status": "done", "frames": 240, "expected_frames": 240,
     "seconds": 3.1, "sha256": "...", "config": "<fingerprint>", "mp4": "clip.mp4", "jsonl": "clip.jsonl",
     "error": null}

A photo's record has ``"mp4": null`` and ``"image": "<name><its suffix>"`` (its annotated copy); an output that was
not written is named ``null``.

``status``: ``done``; ``failed`` (``error`` is the one-line reason; outputs are finalised up to the damage);
``skipped`` (done earlier with the same input bytes and the same config); ``interrupted`` (abandoned on Ctrl-C,
outputs finalised); ``pending`` (never started because of Ctrl-C).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from realtime.config import Config
from realtime.errors import ConfigError, SinkError
from realtime.runtime import file_sha256

FINISHED = ("done", "skipped")
STATUSES = ("done", "failed", "skipped", "interrupted", "pending")
TIMING_KEYS = ("seconds",)
_CUT_NAME = re.compile(r'"name":"([A-Za-z0-9._-]+)"')  # the only fields that differ between two runs of the same batch


def config_fingerprint(config: Config) -> str:
    """SHA-256 (16 hex digits) of what decides an input's outputs: the config sections annotate reads (threads,
    the source URI and the door section left out), the bytes of every model file, gallery and face cohort the
    pipeline would open, and the rtv version."""
    import realtime
    from realtime.zoo import model_path, style_dir

    data = config.to_dict()
    data.pop("door", None)
    for key in ("uri", "policy", "pace", "decode_threads"):
        data["source"].pop(key, None)
    data["output"].pop("encode_threads", None)
    for key in ("workers", "intra_op_threads", "inter_op_threads", "opencv_threads", "blas_threads", "frames_in_flight"):
        data["runtime"].pop(key, None)
    files: dict[str, str] = {}
    if config.detector.enabled:
        path = model_path("detector", config.detector.model, required=bool(config.detector.model))
        if path is not None:
            files["detector"] = file_sha256(path)
    if config.faces.enabled:
        files["face_detector"] = file_sha256(model_path("face_detector", config.faces.detector_model))
        if config.faces.recognize:
            files["face_embedder"] = file_sha256(model_path("face_embedder", config.faces.embedder_model))
            gallery = Path(config.faces.gallery)
            files["gallery"] = file_sha256(gallery) if gallery.is_file() else "absent"
            if config.faces.cohort:
                cohort = model_path("face_cohort", required=False)
                files["cohort"] = file_sha256(cohort) if cohort is not None else "absent"
    if config.style.enabled:
        for path in sorted(style_dir(config.style.model_dir).glob("style_*.onnx")):
            files[f"style/{path.name}"] = file_sha256(path)
    text = json.dumps({"config": data, "files": files, "rtv": realtime.__version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def strip_timing(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` without the fields that differ from run to run (for comparing two runs)."""
    return {k: v for k, v in record.items() if k not in TIMING_KEYS}


@dataclass(frozen=True)
class Decision:
    """``skip``: the record to write instead of running (None: run it); ``reason``: why not skipped, for logs."""

    skip: dict[str, Any] | None
    reason: str


class Ledger:
    """``DIR/batch.jsonl``. ``open()`` locks the folder (another ``rtv batch`` on the same folder is refused);
    ``append`` writes and flushes one record; ``compact`` rewrites one line per name atomically."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._handle = None
        self._lock_fd: int | None = None

    def read(self) -> dict[str, dict[str, Any]]:
        """The last record of every name (unreadable lines, e.g. one cut short by a crash, are ignored)."""
        latest: dict[str, dict[str, Any]] = {}
        if not self.path.is_file():
            return latest
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                # a line cut short by a crash: if it still names its input, that input's outputs are this
                # batch's (redone, never skipped: the record cannot be checked)
                found = _CUT_NAME.search(line)
                if found and found.group(1) not in latest:
                    latest[found.group(1)] = {"name": found.group(1), "status": "cut"}
                continue
            if isinstance(record, dict) and isinstance(record.get("name"), str):
                latest[record["name"]] = record
        return latest

    def open(self) -> "Ledger":
        if self.path.exists() and not self.path.is_file():
            raise SinkError(f"{self.path} exists and is not a regular file")
        self._lock_folder()
        try:
            self._handle = open(self.path, "a", encoding="utf-8")
            if self.path.stat().st_size and not self._ends_with_newline():
                self._handle.write("\n")  # a line cut short by a crash stays alone on its line (and is ignored)
                self._handle.flush()
        except OSError as exc:
            self.close()
            raise SinkError(f"cannot write {self.path}: {exc}") from exc
        return self

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def _lock_folder(self) -> None:
        """An exclusive lock on the out-dir itself (so it survives ``compact`` replacing the file)."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        self._lock_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise ConfigError(f"another 'rtv batch' is writing to {self.path.parent}; wait for it to end or "
                              "choose another --out-dir") from exc

    def append(self, record: Mapping[str, Any]) -> None:
        if self._handle is None:
            raise SinkError(f"{self.path} is not open")
        self._handle.write(json.dumps(dict(record), separators=(",", ":")) + "\n")
        self._handle.flush()

    def compact(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Rewrite with ``records`` (in order) and then the kept records of every other name."""
        records = [dict(r) for r in records]
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        names = {r["name"] for r in records}
        others = [r for name, r in self.read().items() if name not in names]
        tmp = self.path.with_name(self.path.name + ".partial")
        with open(tmp, "w", encoding="utf-8") as handle:
            for record in records + others:
                handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        os.replace(tmp, self.path)
        self._handle = open(self.path, "a", encoding="utf-8")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def __enter__(self) -> "Ledger":
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
