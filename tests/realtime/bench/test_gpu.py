"""require-gpu: every model of the pipeline on CUDA or a ProviderError; a GPU benchmark that records figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from realtime.build import build_pipeline
from realtime.config import load_config
from realtime.errors import ProviderError
from realtime.zoo import ZOO_DIR

needs_models = pytest.mark.skipif(not (ZOO_DIR / "centerface.onnx").is_file(), reason="needs the shipped models")


@needs_models
def test_require_gpu_refuses_the_whole_pipeline_without_cuda(tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here; see the gpu test")
    config = load_config(None, ["runtime.providers=require-gpu", f"faces.gallery={tmp_path / 'g.sqlite'}"])
    with pytest.raises(ProviderError, match="CUDAExecutionProvider"):
        build_pipeline(config)


def _sessions(pipeline):
    for stage in pipeline.stages:
        for holder in (stage, getattr(stage, "detector", None), getattr(stage, "embedder", None)):
            for attr in ("_model", "model"):
                model = getattr(holder, attr, None) if holder is not None else None
                if model is not None and hasattr(model, "providers"):
                    yield stage.name, model


@pytest.mark.gpu
@needs_models
def test_gpu_pipeline_runs_every_model_on_cuda_and_records_the_figures(tmp_path):
    from realtime.samples.clips import bench_frames, write_demo_clip
    from realtime.bench.pipeline import compare_pipeline

    config = load_config(None, ["runtime.providers=require-gpu", f"faces.gallery={tmp_path / 'g.sqlite'}"])
    with build_pipeline(config) as pipeline:
        sessions = list(_sessions(pipeline))
        assert sessions, "no model sessions found in the pipeline"
        for name, model in sessions:
            assert model.providers[0] == "CUDAExecutionProvider", (name, model.providers)
    clip = write_demo_clip(tmp_path / "bench.mp4", seconds=4.0, frames=bench_frames)
    report = compare_pipeline(config, clip)
    out = Path("out/perf/gpu_compare.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    assert report["runs"]["tuned"]["throughput"]["fps"] > 0
