"""``rtv bench serve`` runs the service in-process and reports every route's figures, errors included."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("uvicorn")
pytest.importorskip("requests")


def test_bench_serve_reports_both_routes_without_errors(tmp_path):
    from realtime.cli.main import main

    out = tmp_path / "bench.json"
    assert main(["bench", "serve", "--clients", "2", "--seconds", "1", "--no-door", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [r["route"] for r in report["routes"]] == ["/v1/vision/detection", "/v1/vision/face/recognize"]
    for r in report["routes"]:
        assert r["errors"] == 0 and r["requests"] >= 1 and r["requests_per_s"] > 0 and r["p95_ms"] >= r["p50_ms"]
    assert main(["bench", "serve", "--seconds", "1", "--json", str(out)]) == 6  # the guard: no silent overwrite
