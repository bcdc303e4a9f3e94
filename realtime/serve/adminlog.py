"""Every administrator action of the service goes into the door audit log (kind "admin"): who, what, on whom,
through which interface, chained and MACed like the door's own records."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Mapping

from realtime.config import Config

SERVICE_ID = "serve"


class AdminLog:
    """Appends "admin" records to ``door.audit`` (opened per record, under a lock: the log object is one-thread)."""

    def __init__(self, config: Config) -> None:
        self.path = Path(config.door.audit)
        self.key_file = config.door.audit_key_file
        self._lock = threading.Lock()

    def _key(self) -> bytes | None:
        if not self.key_file:
            return None
        from realtime.door.audit import load_key

        return load_key(self.key_file)

    def record(self, who: str, action: str, *, person: str | None = None, via: str = "console",
               detail: Mapping[str, Any] | None = None) -> int:
        from realtime.door.audit import AuditLog

        info = {"who": who, "action": action, "via": via}
        info.update(detail or {})
        with self._lock, AuditLog.open(self.path, key=self._key()) as log:
            return log.append("admin", SERVICE_ID, f"{action} by {who}", person=person, detail=info)

    def records(self, kind: str | None = None, person: str | None = None, limit: int = 200) -> list[dict]:
        """Latest records first (without face images), filtered by kind and person."""
        from realtime.door.audit import AuditLog

        if not self.path.exists():
            return []
        with self._lock, AuditLog.open(self.path, create=False, key=self._key()) as log:
            rows = [r for r in log.records() if (not kind or r["kind"] == kind)
                    and (not person or (r.get("person") or "") == person)]
        return rows[::-1][:limit]

    def verify(self) -> tuple[bool, str]:
        from realtime.door.audit import AuditLog

        if not self.path.exists():
            return True, "no records yet"
        with self._lock, AuditLog.open(self.path, create=False, key=self._key()) as log:
            report = log.verify()
            return bool(report.ok), f"{report.records} records, head {report.head_text}" if report.ok else \
                f"broken at record {report.broken_seq}: {report.problem}"

    def export_csv(self, path: Path) -> int:
        from realtime.door.audit import AuditLog

        with self._lock, AuditLog.open(self.path, create=False, key=self._key()) as log:
            return log.export_csv(path)
