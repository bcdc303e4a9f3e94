"""The agreement measures of ``rtv bench precision`` and its records, on small synthetic data and the real
shipped embedder (float vs INT8 on the CPU provider)."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.bench import precision as prec
from realtime.config import ZOO_DIR


def test_ap50_is_one_for_the_truth_and_drops_for_misses_and_false_alarms():
    truth = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.zeros((0, 4), np.float32)]
    perfect = [(truth[0], np.array([0.9, 0.8])), (np.zeros((0, 4)), np.zeros(0))]
    assert prec.average_precision_50(perfect, truth) == pytest.approx(1.0)
    one_missed = [(truth[0][:1], np.array([0.9])), (np.zeros((0, 4)), np.zeros(0))]
    assert prec.average_precision_50(one_missed, truth) == pytest.approx(0.5)
    # a confident false alarm ranked first halves the precision at the first hit
    alarm = [(np.concatenate([[[50, 50, 60, 60]], truth[0]]).astype(np.float32), np.array([0.99, 0.9, 0.8])),
             (np.zeros((0, 4)), np.zeros(0))]
    assert prec.average_precision_50(alarm, truth) == pytest.approx(2 / 3, abs=1e-6)
    assert np.isnan(prec.average_precision_50(perfect, [np.zeros((0, 4))] * 2))


def test_face_agreement_counts_recall_and_landmark_error_in_eye_distances():
    boxes = np.array([[0, 0, 100, 100], [200, 0, 300, 100]], np.float32)
    marks = np.zeros((2, 5, 2), np.float32)
    marks[:, 0], marks[:, 1] = [30, 40], [70, 40]  # eyes 40 px apart
    moved = marks.copy()
    moved[0] += 4.0  # every point of face 0 moved by (4, 4): 5.66 px = 0.1414 IOD
    fig = prec.face_agreement([(boxes, marks)], [(boxes[:1], moved[:1])])
    assert fig["recall"] == 0.5 and fig["matched"] == 1
    assert fig["landmark_error_iod_mean"] == pytest.approx(np.hypot(4, 4) / 40, rel=1e-5)


def test_embedding_agreement_counts_flipped_decisions():
    ref = np.array([[0, 0], [0.5, 0], [2, 0]], np.float32)
    cand = ref.copy()
    cand[1, 0] = 0.7  # pair (0, 1) goes from 0.5 (same at 0.6) to 0.7 (different)
    fig = prec.embedding_agreement(ref, cand, 0.6)
    assert fig["decisions_flipped"] == 1 and fig["pairs"] == 3 and fig["max_distance"] == pytest.approx(0.2)


def test_records_replace_the_same_provider_precision_and_cpu_class():
    report = {"cpu": {"isa": "avx2", "model": "X"}, "measured": "2026-12-06",
              "models": [{"role": "detector", "rows": [{"provider": "cpu", "precision": "int8", "pass": False,
                                                        "ms": 5.0, "figures": {}, "summary": ""}]}]}
    manifest = {"yolov3_tiny_coco.onnx": {"precision": {"records": [
        {"provider": "cpu", "precision": "int8", "isa": "avx2", "pass": True},
        {"provider": "cpu", "precision": "int8", "isa": "amx", "pass": True}]}}}
    merged = prec.merge_records(manifest, prec.manifest_records(report, "rtv bench precision"), prec.RULES)
    records = merged["yolov3_tiny_coco.onnx"]["precision"]["records"]
    assert [(r["isa"], r["pass"]) for r in records] == [("amx", True), ("avx2", False)]
    assert records[-1]["command"] == "rtv bench precision" and "0.99" in merged["yolov3_tiny_coco.onnx"][
        "precision"]["rule"]


@pytest.mark.skipif(not (ZOO_DIR / "dlib_resnet128_int8.onnx").is_file(), reason="no INT8 embedder ships")
def test_embedder_variants_measured_against_float_on_real_sessions():
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 255, (4, 150, 150, 3), dtype=np.uint8)
    block = prec.eval_embedder(chips, ["cpu"], threads=1, repeats=1)
    rows = {r["precision"]: r for r in block["rows"]}
    assert set(rows) == {"float", "int8"}
    assert rows["float"]["figures"]["max_distance"] == 0.0 and rows["float"]["pass"]
    assert rows["int8"]["figures"]["max_distance"] > 0.0 and rows["int8"]["ms"] > 0


def test_side_by_side_prints_each_provider_and_the_speedup():
    from realtime.bench.providers import side_by_side

    text = side_by_side("p50", {"cpu": {"detect": 40.0, "embed": 10.0}, "openvino": {"detect": 10.0, "embed": 5.0}})
    lines = text.splitlines()
    assert "openvino/cpu" in lines[1]
    assert lines[2].split()[-1] == "4.00x" and lines[3].split()[-1] == "2.00x"


def test_bench_with_a_missing_provider_names_it_and_records_the_machine(tmp_path, capsys, monkeypatch):
    import json
    import sys

    from realtime import runtime as rt
    from realtime.cli.main import main

    monkeypatch.setitem(sys.modules, rt.OPENVINO_PLUGIN, None)  # the plugin hidden
    rt.forget_openvino_plugin()
    try:
        out = tmp_path / "faces.json"
        assert main(["bench", "faces", "--providers", "cpu", "openvino", "--faces", "1", "--repeats", "1",
                     "--json", str(out)]) == 0
    finally:
        rt.forget_openvino_plugin()
    printed = capsys.readouterr().out
    assert "openvino: not measured" in printed and "not installed" in printed
    report = json.loads(out.read_text())
    assert set(report["providers"]) == {"cpu"}
    assert report["machine"]["cpu"]["isa"] and report["machine"]["precision"]["cpu"]["detector"]["precision"]
    assert "detect" in report["providers"]["cpu"]["parts"]
