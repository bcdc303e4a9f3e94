"""``rtv bench pipeline --compare``: the JSON schema, the naive configuration, the queueing label."""

from __future__ import annotations

import json

import pytest

from realtime.cli.main import main
from realtime.config import load_config
from realtime.metrics import format_summary
from realtime.zoo import ZOO_DIR


def _check_run(s: dict) -> None:
    assert isinstance(s["fps"], (int, float)) and s["fps"] > 0
    assert isinstance(s["dropped"], int) and s["dropped"] >= 0
    assert s["stages_ms"], "no stage timings"
    for name, t in s["stages_ms"].items():
        assert set(t) >= {"p50", "p95"} and t["p50"] <= t["p95"] + 1e-9, name
    c2o = s["capture_to_output_ms"]
    assert set(c2o) >= {"p50", "p95"} and 0 <= c2o["p50"] <= c2o["p95"] + 1e-9


@pytest.mark.skipif(not (ZOO_DIR / "centerface.onnx").is_file(), reason="needs the shipped face models")
def test_compare_writes_both_runs_and_the_speedup(tmp_path, video_factory, capsys):
    clip = video_factory(tmp_path / "tiny.mp4", 8, (160, 120), 30.0)
    out = tmp_path / "compare.json"
    code = main(["bench", "pipeline", "--compare", "--clip", str(clip), "--json", str(out),
                 "--set", "detector.enabled=false", "--set", f"faces.gallery={tmp_path / 'g.sqlite'}"])
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report["runs"]) == {"naive", "tuned"}
    for label in ("naive", "tuned"):
        assert set(report["runs"][label]) == {"throughput", "live"}
        for kind in ("throughput", "live"):
            _check_run(report["runs"][label][kind])
        assert report["runs"][label]["throughput"]["capture_to_output_is"] == "queueing"
        assert report["runs"][label]["live"]["capture_to_output_is"] == "latency"
    expected = report["runs"]["tuned"]["throughput"]["fps"] / report["runs"]["naive"]["throughput"]["fps"]
    assert report["speedup"] == pytest.approx(expected, rel=1e-2)
    naive = report["configs"]["naive"]["threads"]
    assert (naive["workers"], naive["intra_op"], naive["opencv"], naive["blas"]) == (1, 1, 1, 1)
    printed = capsys.readouterr().out
    assert "naive" in printed and "tuned" in printed and "speedup" in printed and "queueing" in printed


def test_naive_config_is_sequential_single_threaded_float(tmp_path):
    from realtime.bench.pipeline import float_variant, naive_config

    config = load_config(None, ["detector.every=4", "runtime.workers=2"])
    naive = naive_config(config)
    assert (naive.runtime.workers, naive.runtime.intra_op_threads, naive.runtime.opencv_threads,
            naive.runtime.blas_threads) == (1, 1, 1, 1)
    assert naive.detector.every == 1
    for path in (naive.faces.detector_model, naive.faces.embedder_model):
        assert "_int8" not in path
    float_file = tmp_path / "m.onnx"
    float_file.write_bytes(b"x")
    int8_file = tmp_path / "m_int8.onnx"
    int8_file.write_bytes(b"y")
    assert float_variant(int8_file) == float_file
    assert float_variant(float_file) == float_file
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"q.onnx": {"int8_of": "m.onnx"}}))
    (tmp_path / "q.onnx").write_bytes(b"z")
    assert float_variant(tmp_path / "q.onnx") == float_file


def test_unpaced_capture_to_output_is_labelled_queueing():
    summary = {"frames": 3, "fps": 10.0, "dropped": 0, "reconnects": 0, "stages": {},
               "latency": {"p50_ms": 200.0, "p95_ms": 300.0}}
    assert "queueing" in format_summary({**summary, "capture_to_output": "queueing"})
    assert "queueing" not in format_summary({**summary, "capture_to_output": "latency"})
