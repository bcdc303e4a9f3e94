"""The service's audit logs: administrators' actions in their own log, and a read-only view over every door's.

A running door owns its audit log (it refuses a log that another program writes to), so the service keeps
administrator actions (kind "admin": who, what, on whom, through which interface) in a log of their own, made by the
same :class:`realtime.door.audit.AuditLog` (chained, keyed with ``door.audit_key_file`` like the doors' logs), at
:func:`admin_log_path`. With more than one door, each door writes its own log (:func:`door_log_path`). The console and
the API read all of them, merged by time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Mapping

from realtime.config import Config

SERVICE_ID = "serve"
ADMIN_LOG = "admin"


def admin_log_path(config: Config) -> Path:
    """``door.audit`` with ``.admin`` before its suffix (``door_audit.sqlite`` -> ``door_audit.admin.sqlite``)."""
    path = Path(config.door.audit)
    return path.with_name(f"{path.stem}.{ADMIN_LOG}{path.suffix or '.sqlite'}")


def door_log_path(config: Config, door_id: str, n_doors: int) -> Path:
    """``door.audit`` for a single door; with several, ``door_audit.DOOR.sqlite`` for each."""
    path = Path(config.door.audit)
    if n_doors <= 1:
        return path
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in door_id)
    return path.with_name(f"{path.stem}.{safe}{path.suffix or '.sqlite'}")


class AdminLog:
    """Appends "admin" records to the service's log; reads, verifies and exports it with the doors' logs.
    Each operation opens its log under a lock (a log object is for one thread)."""

    def __init__(self, config: Config, door_logs: Mapping[str, Path] | None = None) -> None:
        self.path = admin_log_path(config)
        self.door_logs = dict(door_logs or {})
        self.key_file = config.door.audit_key_file
        self._lock = threading.Lock()

    def _key(self) -> bytes | None:
        if not self.key_file:
            return None
        from realtime.door.audit import load_key

        return load_key(self.key_file)

    def _logs(self) -> list[tuple[str, Path]]:
        return [(ADMIN_LOG, self.path)] + [(door, Path(p)) for door, p in self.door_logs.items()]

    def record(self, who: str, action: str, *, person: str | None = None, via: str = "console",
               detail: Mapping[str, Any] | None = None) -> int:
        from realtime.door.audit import AuditLog

        info = {"who": who, "action": action, "via": via}
        info.update(detail or {})
        with self._lock, AuditLog.open(self.path, key=self._key()) as log:
            return log.append("admin", SERVICE_ID, f"{action} by {who}", person=person, detail=info)

    def records(self, kind: str | None = None, person: str | None = None, limit: int = 200) -> list[dict]:
        """Newest first over every log (without face images), filtered by kind and person; each record says its
        ``log`` ("admin" or the door id)."""
        from realtime.door.audit import AuditLog

        rows: list[dict] = []
        key = self._key()
        with self._lock:
            for name, path in self._logs():
                if not path.exists():
                    continue
                with AuditLog.open(path, create=False, key=key) as log:
                    rows.extend(dict(r, log=name) for r in log.records()
                                if (not kind or r["kind"] == kind) and (not person or (r.get("person") or "") == person))
        rows.sort(key=lambda r: (r["ts"], r["seq"]), reverse=True)
        return rows[:limit]

    def verify(self) -> tuple[bool, str]:
        """``(every log verifies, one line per log: records and head, or where it is broken)``."""
        from realtime.door.audit import AuditLog

        parts, ok_all = [], True
        key = self._key()
        with self._lock:
            for name, path in self._logs():
                if not path.exists():
                    continue
                with AuditLog.open(path, create=False, key=key) as log:
                    report = log.verify()
                ok_all &= bool(report.ok)
                parts.append(f"{name}: {report.records} records, head {report.head_text}" if report.ok else
                             f"{name}: broken at record {report.broken_seq}: {report.problem}")
        return ok_all, "; ".join(parts) or "no records yet"

    def head(self) -> str | None:
        """``SEQ:HASH`` of the service's own log (None before its first record)."""
        ok, detail = self.verify()
        for part in detail.split("; "):
            if part.startswith(f"{ADMIN_LOG}: ") and " head " in part:
                return part.rsplit(" head ", 1)[1]
        return None

    def face_jpeg(self, log_name: str, seq: int) -> bytes | None:
        """The face image stored with record ``seq`` of log ``log_name`` (``door.store_faces``), or None. It is part
        of the record's hash, so :meth:`verify` covers it."""
        from realtime.door.audit import AuditLog

        path = dict(self._logs()).get(log_name)
        if path is None or not path.exists():
            return None
        with self._lock, AuditLog.open(path, create=False, key=self._key()) as log:
            for rec in log.records(with_faces=True):
                if rec["seq"] == seq:
                    return rec.get("face_jpeg")
        return None

    def export_csv(self, path: Path) -> int:
        """Every log's records as one CSV (oldest first, a ``log`` column first; formula-like cells quoted)."""
        import csv

        from realtime.gallery.names import spreadsheet_cell

        rows = self.records(limit=10**9)[::-1]
        columns = ["log", "seq", "ts", "door_id", "kind", "decision", "person", "track_id", "distance", "margin",
                   "frames_used", "threshold", "model_sha256", "reason", "liveness", "detail", "prev_hash", "hash"]
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for rec in rows:
                writer.writerow({k: spreadsheet_cell(rec.get(k)) for k in columns})
        return len(rows)
