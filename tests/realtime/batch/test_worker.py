"""A worker builds its pipeline once and gives each input fresh state: the second of two clips gets the same JSONL
(object and face track ids from 1 again) as 'rtv annotate' run on it alone."""

import json
from pathlib import Path

import pytest

from realtime.batch.run import publish
from realtime.batch.worker import BatchWorker, Job, worker_config
from realtime.config import load_config
from realtime.zoo import ZOO_DIR

HAS_FACE_MODELS = (ZOO_DIR / "centerface.onnx").is_file() and (ZOO_DIR / "dlib_resnet128.onnx").is_file()


def frames_of(jsonl: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "ms"} for line in jsonl.read_text().splitlines()]


def people_clip(path: Path, frames: int) -> Path:
    """Frames of the demo clip's two-person scene (the astronaut and the cameraman side by side): two faces and
    two persons that the shipped detectors find on every frame."""
    from itertools import islice

    from realtime.samples.clips import demo_frames
    from realtime.io.sinks import Mp4Writer

    with Mp4Writer(path, fps=10, crf=18, preset="ultrafast") as writer:
        for frame in islice(demo_frames(seconds=4, fps=10), 16, 16 + frames):
            writer.write(frame)
    return path


def test_worker_config_sizes_threads():
    config = worker_config(load_config(None, []), 3)
    assert (config.runtime.intra_op_threads, config.runtime.inter_op_threads, config.runtime.opencv_threads) == (
        3, 1, 1)
    assert config.source.decode_threads == 3 and config.output.encode_threads == 3


@pytest.mark.skipif(not HAS_FACE_MODELS, reason="face models are not in realtime/zoo")
@pytest.mark.parametrize("settings, key", [(["detector.enabled=false"], "faces"),  # face tracks
                                           (["faces.enabled=false"], "detections")])  # object tracks
def test_each_input_starts_with_fresh_tracks(tmp_path, settings, key):
    from realtime.session import annotate

    config = load_config(None, [f"faces.gallery={tmp_path / 'none.sqlite'}", *settings])
    clips = [people_clip(tmp_path / f"face{i}.mp4", 6) for i in range(2)]
    worker = BatchWorker(config, threads=1)
    try:
        jobs = [Job(str(c), c.stem, str(tmp_path / f"{c.stem}.out.mp4"), str(tmp_path / f"{c.stem}.out.jsonl"),
                    "fp") for c in clips]
        records = [publish(worker.process(job), job) for job in jobs]  # the worker writes .partial., the driver
        # publishes
    finally:
        worker.close()
    assert [r["status"] for r in records] == ["done", "done"]
    second = frames_of(tmp_path / "face1.out.jsonl")
    tracks = [item["track"] for r in second if "frame" in r for item in r[key] if "track" in item]
    assert tracks and min(tracks) == 1  # ids start over on the second input
    alone = tmp_path / "alone.jsonl"
    annotate(config, str(clips[1]), None, alone, progress=False)
    assert second == frames_of(alone)
