"""The service keeps administrators' actions in a log of its own (a running door refuses a log another program
writes to) and shows it merged with every door's log; each door of several owns a log."""

from __future__ import annotations

import csv

from realtime.config import load_config
from realtime.door.audit import AuditLog
from realtime.serve.adminlog import AdminLog, admin_log_path, door_log_path


def test_log_paths(tmp_path):
    config = load_config(None, [f"door.audit={tmp_path / 'door_audit.sqlite'}"])
    assert admin_log_path(config) == tmp_path / "door_audit.admin.sqlite"
    assert door_log_path(config, "front", 1) == tmp_path / "door_audit.sqlite"
    assert door_log_path(config, "back/yard", 2) == tmp_path / "door_audit.back_yard.sqlite"


def test_admin_records_merge_with_door_logs_and_export(tmp_path):
    config = load_config(None, [f"door.audit={tmp_path / 'audit.sqlite'}"])
    door_path = door_log_path(config, "front", 2)
    with AuditLog.open(door_path) as log:
        log.append("start", "front", "door mode started", ts="2026-01-01T00:00:00.000+00:00")
        log.append("decision", "front", "recognised", decision="GRANT", person="=cmd()",
                   ts="2026-01-01T00:00:02.000+00:00")
    logs = AdminLog(config, {"front": door_path})
    logs.record("session:admin", "deny", person="alice")
    rows = logs.records()
    assert [(r["log"], r["kind"]) for r in rows] == [("admin", "admin"), ("front", "decision"), ("front", "start")]
    assert [r["kind"] for r in logs.records(kind="decision")] == ["decision"]
    ok, detail = logs.verify()
    assert ok and detail.startswith("admin: 1 records") and "front: 2 records" in detail
    assert logs.head().startswith("1:")
    out = tmp_path / "audit.csv"
    assert logs.export_csv(out) == 3
    table = list(csv.DictReader(out.open()))
    assert [r["log"] for r in table] == ["front", "front", "admin"]
    assert table[1]["person"] == "'=cmd()"  # a formula-like cell is quoted for spreadsheets
