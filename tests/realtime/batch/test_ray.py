"""The Ray path on a local Ray instance (2 CPUs): the same outputs and batch.jsonl as the local pool, and a worker
killed mid-input has its input redone by Ray. Slow (Ray starts in seconds); .ci/run runs it with the ray extra."""

import json
from pathlib import Path

import pytest

from realtime.batch.ledger import strip_timing
from realtime.batch.run import Reporter, run_batch

pytest.importorskip("ray")
pytestmark = pytest.mark.slow


def frames_of(jsonl: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "ms"} for line in jsonl.read_text().splitlines()]


def ledger_lines(out: Path) -> list[dict]:
    return [strip_timing(json.loads(line)) for line in (out / "batch.jsonl").read_text().splitlines()]


class KillOnce(Reporter):
    def __init__(self, victim: str):
        self.victim, self.killed = victim, None

    def started(self, job, worker):
        import os
        import signal

        if job.name == self.victim and self.killed is None:
            self.killed = worker
            os.kill(worker, signal.SIGKILL)


def test_ray_gives_the_same_results_as_the_local_pool(tmp_path, clip_dir, fast_config, tiny_clip):
    tiny_clip(clip_dir / "long.mp4", 150)
    inputs = [str(clip_dir), str(tmp_path / "missing.mp4")]
    run_batch(fast_config, inputs, tmp_path / "local", workers=2)
    reporter = KillOnce("long")
    on_ray = run_batch(fast_config, inputs, tmp_path / "ray", ray_address="local", ray_num_cpus=2,
                       reporter=reporter)
    assert on_ray.runner == "ray" and on_ray.workers == 2 and reporter.killed is not None
    assert ledger_lines(tmp_path / "local") == ledger_lines(tmp_path / "ray")
    assert [r["status"] for r in on_ray.records] == ["done", "done", "failed", "done", "done", "failed"]
    for record in on_ray.records:
        if record["status"] != "failed" or record["frames"]:
            name = record["name"]
            assert frames_of(tmp_path / "local" / f"{name}.jsonl") == frames_of(tmp_path / "ray" / f"{name}.jsonl")
    assert frames_of(tmp_path / "ray" / "long.jsonl")[-1]["end"]["frames"] == 150  # redone after the kill
