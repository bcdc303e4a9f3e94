"""Gallery export and import: the portable JSON file (``rtv gallery export/import``), read within declared limits.

An export holds ``{"format": "rtv-gallery", "version": 1, "exported_at", "model": {sha256, name, embedding_size},
"persons": [{name, allowed, schedule, created_at, embeddings: [{vector (base64 little-endian float32), source,
quality, created_at}]}]}``. Reading one is bounded: at most :data:`MAX_EXPORT_BYTES` (checked before reading),
nesting at most :data:`MAX_EXPORT_DEPTH`, no key repeated in any object, texts at most :data:`MAX_TEXT_CHARS`
printable characters, dates in ISO 8601, names valid and neither repeated nor look-alikes of one another
(:func:`realtime.gallery.names.confusable_key`); every check is linear in the file's size.

This module reads and writes files only; :class:`realtime.gallery.store.Gallery` stores what it returns.
"""

from __future__ import annotations

import base64
import json
import math
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from realtime.errors import GalleryError
from realtime.gallery.names import check_name, check_not_confusable, confusable_key, escape_text
from realtime.gallery.schedule import validate_schedule

EXPORT_FORMAT = "rtv-gallery"
EXPORT_VERSION = 1
MAX_EXPORT_BYTES = 256 * 2**20  # ~250k embeddings of 128 floats; a bigger file is refused before it is read
MAX_EXPORT_DEPTH = 6            # document > persons > person > embeddings > embedding (schedule > window)
MAX_TEXT_CHARS = 1000           # source and created_at texts of an import
FIX_MODEL = "re-enrol with 'rtv enroll' or rebuild the gallery"


def now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_sha(value: Any, field: str) -> str:
    text = value.lower() if isinstance(value, str) else ""
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise GalleryError(f"{field} must be 64 hex digits (the sha256 of the model file), got {value!r}")
    return text


def check_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) <= 0:
        raise GalleryError(f"embedding_size must be a positive integer, got {value!r}")
    return int(value)


# ------------------------------------------------------------------------------------------------------- writing
def export_document(model: Mapping[str, Any], people: Iterable[tuple], embeddings: Iterable[tuple],
                    load_schedule) -> dict[str, Any]:
    """The export document. ``people``: ``(id, name, allowed, schedule_text, created_at)`` rows; ``embeddings``:
    ``(person_id, vector_blob, model_sha256, source, quality, created_at)`` rows; ``load_schedule(name, text)``."""
    by_person: dict[int, list[dict[str, Any]]] = {}
    for person_id, blob, sha, source, quality, created in embeddings:
        if sha != model["sha256"]:
            raise GalleryError(f"the gallery holds embeddings from another model (sha256 {sha}); {FIX_MODEL}")
        by_person.setdefault(person_id, []).append({
            "vector": base64.b64encode(blob).decode("ascii"), "source": source,
            "quality": quality, "created_at": created})
    return {
        "format": EXPORT_FORMAT, "version": EXPORT_VERSION, "exported_at": now_text(), "model": dict(model),
        "persons": [{"name": name, "allowed": bool(allowed), "schedule": load_schedule(name, schedule),
                     "created_at": created, "embeddings": by_person.get(person_id, [])}
                    for person_id, name, allowed, schedule, created in people],
    }


def write_export(path: str | os.PathLike, document: Mapping[str, Any], overwrite: bool = False) -> None:
    """Write ``document`` to a temporary name beside ``path`` and rename it: never half a file."""
    out = Path(path)
    if out.exists() and not overwrite:
        raise GalleryError(f"export file {out} already exists; choose another path or allow overwriting")
    if not out.parent.is_dir():
        raise GalleryError(f"cannot export to {out}: folder {out.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, allow_nan=False, indent=1)
        os.replace(tmp, out)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise GalleryError(f"cannot write export file {out}: {exc}") from exc


# ------------------------------------------------------------------------------------------------------- reading
def read_import(src: str | os.PathLike, model_sha256: str, embedding_size: int, existing_names: Sequence[str] = (),
                max_bytes: int = MAX_EXPORT_BYTES) -> list[dict[str, Any]]:
    """Read and check an export file for a gallery of ``model_sha256`` / ``embedding_size``; the persons to store
    (``name, allowed, schedule (JSON text or None), created_at, vectors (K, D) float32, sources, qualities,
    created``). ``existing_names``: names in the gallery (a look-alike of one is refused). :class:`GalleryError`
    naming the first problem."""
    path = Path(src)
    document = _read_export(path, max_bytes)
    model = document["model"]
    if model["sha256"] != model_sha256:
        raise GalleryError(f"{path} holds embeddings from model {model['name']} (sha256 {model['sha256']}), but the "
                           f"gallery uses sha256 {model_sha256}; {FIX_MODEL}")
    if model["embedding_size"] != embedding_size:
        raise GalleryError(f"{path} holds {model['embedding_size']}-dimensional embeddings, but the gallery holds "
                           f"{embedding_size}; {FIX_MODEL}")
    entries = [_parse_person(path, i, entry, embedding_size) for i, entry in enumerate(document["persons"])]
    seen: dict[str, str] = {}
    for entry in entries:  # one pass: repeated names and look-alikes within the file
        key = confusable_key(entry["name"])
        if seen.get(key) == entry["name"]:
            raise GalleryError(f"{path} lists {escape_text(entry['name'])!r} more than once; fix the file")
        try:
            check_not_confusable(entry["name"], seen)
        except GalleryError as exc:
            raise GalleryError(f"{path}: {exc}") from None
        seen[key] = entry["name"]
    stored = {confusable_key(n): n for n in existing_names}
    for entry in entries:
        try:
            check_not_confusable(entry["name"], stored)
        except GalleryError as exc:
            raise GalleryError(f"{path}: {exc}") from None
    return entries


def _parse_person(src: Path, index: int, entry: Any, d: int) -> dict[str, Any]:
    where = f"{src}: person {index}"
    if not isinstance(entry, dict):
        raise GalleryError(f"{where} is not an object; the file is not a valid rtv gallery export")
    try:
        name = check_name(entry["name"])
        where = f"{src}: person {escape_text(name)!r}"
        allowed = entry.get("allowed", True)
        if not isinstance(allowed, bool):
            raise GalleryError(f"allowed must be true or false, got {allowed!r}")
        windows = validate_schedule(entry.get("schedule"))
        embeddings = entry["embeddings"]
        if not isinstance(embeddings, list) or not embeddings:
            raise GalleryError("it has no embeddings")
        blobs = [base64.b64decode(e["vector"], validate=True) for e in embeddings]
    except (KeyError, TypeError, ValueError, GalleryError) as exc:
        raise GalleryError(f"{where} is malformed ({exc}); the file is not a valid rtv gallery export") from None
    if any(len(b) != 4 * d for b in blobs):
        raise GalleryError(f"{where}: an embedding is not {d} float32 values; {FIX_MODEL}")
    vectors = np.frombuffer(b"".join(blobs), dtype="<f4").astype(np.float32).reshape(-1, d)
    if not np.isfinite(vectors).all():
        raise GalleryError(f"{where}: an embedding holds NaN or infinite values; the file is not a valid rtv "
                           "gallery export")
    return {
        "name": name, "allowed": allowed,
        "schedule": None if windows is None else json.dumps(windows, separators=(",", ":")),
        "created_at": _date(entry.get("created_at"), where) or now_text(),
        "vectors": vectors,
        "sources": [_text(e.get("source"), where, "source") for e in embeddings],
        "qualities": _qualities([e.get("quality") for e in embeddings], where),
        "created": [_date(e.get("created_at"), where) or now_text() for e in embeddings],
    }


def _text(value: Any, where: str, field: str) -> str | None:
    """None, or a string of at most :data:`MAX_TEXT_CHARS` printable characters."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS or not value.isprintable():
        shown = escape_text(value)[:60] if isinstance(value, str) else type(value).__name__
        raise GalleryError(f"{where}: {field} must be printable text of at most {MAX_TEXT_CHARS} characters, got "
                           f"{shown!r}; the file is not a valid rtv gallery export")
    return value


def _date(value: Any, where: str) -> str | None:
    """None, or an ISO 8601 date/time (as an export writes it)."""
    text = _text(value, where, "created_at")
    if text is None:
        return None
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise GalleryError(f"{where}: created_at {escape_text(text)[:60]!r} is not an ISO 8601 date (such as "
                           "2025-01-08T12:00:00+00:00); the file is not a valid rtv gallery export") from None
    return text


def _qualities(qualities: list[Any], where: str) -> list[float | None]:
    out: list[float | None] = []
    for q in qualities:
        if q is None:
            out.append(None)
        elif isinstance(q, bool) or not isinstance(q, (int, float)) or not math.isfinite(q):
            raise GalleryError(f"{where}: a quality is not a finite number; the file is not a valid rtv gallery "
                               "export")
        else:
            out.append(float(q))
    return out


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise GalleryError(f"the key {escape_text(key)[:40]!r} appears twice in one object (a JSON reader keeps "
                               "only one of them)")
        out[key] = value
    return out


def _json_depth(document: Any, limit: int) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), walked without recursion; stops counting past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            depth += 1
            deepest = max(deepest, depth)
            if depth > limit:
                return deepest
            stack.extend((child, depth) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _read_export(src: Path, max_bytes: int = MAX_EXPORT_BYTES) -> dict[str, Any]:
    if not src.is_file():
        raise GalleryError(f"no export file at {src}; check the path (an export is a regular file)")
    try:
        size = src.stat().st_size
    except OSError as exc:
        raise GalleryError(f"cannot read export file {src}: {exc.strerror or exc}") from None
    if size > max_bytes:
        raise GalleryError(f"{src} is {size / 2**20:.0f} MiB, more than the {max_bytes / 2**20:.0f} MiB an rtv "
                           "gallery export may be; it is not one (or split the gallery)")
    try:
        with open(src, "rb") as fh:
            raw = fh.read(max_bytes + 1)
        if len(raw) > max_bytes:
            raise GalleryError(f"{src} grew past {max_bytes / 2**20:.0f} MiB while it was read; it is not an rtv "
                               "gallery export")
        document = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_repeated_keys)
    except OSError as exc:
        raise GalleryError(f"cannot read export file {src}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise GalleryError(f"{src} is not an rtv gallery export (not UTF-8 text: byte {exc.start})") from None
    except RecursionError:
        raise GalleryError(f"{src} is not an rtv gallery export (JSON nested deeper than "
                           f"{MAX_EXPORT_DEPTH} levels)") from None
    except GalleryError as exc:
        raise GalleryError(f"{src} is not a valid rtv gallery export: {exc}") from None
    except ValueError as exc:
        raise GalleryError(f"{src} is not an rtv gallery export (not JSON: {exc})") from None
    if _json_depth(document, MAX_EXPORT_DEPTH) > MAX_EXPORT_DEPTH:
        raise GalleryError(f"{src} is not an rtv gallery export (JSON nested deeper than {MAX_EXPORT_DEPTH} "
                           "levels)")
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise GalleryError(f"{src} is not an rtv gallery export (no \"format\": \"{EXPORT_FORMAT}\")")
    if document.get("version") != EXPORT_VERSION:
        raise GalleryError(f"{src} is export version {document.get('version')!r}; this rtv reads version "
                           f"{EXPORT_VERSION}")
    model = document.get("model")
    if not isinstance(model, dict) or not isinstance(document.get("persons"), list):
        raise GalleryError(f"{src} is not a valid rtv gallery export (no model or persons)")
    try:
        model = {"sha256": check_sha(model.get("sha256"), "model.sha256"), "name": str(model.get("name")),
                 "embedding_size": check_size(model.get("embedding_size"))}
    except GalleryError as exc:
        raise GalleryError(f"{src} is not a valid rtv gallery export ({exc})") from None
    return {"model": model, "persons": document["persons"]}
