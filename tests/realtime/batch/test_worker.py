"""A worker builds its pipeline once and gives each input fresh state: the second of two face clips gets the same
JSONL (object and face track ids from 1 again) as 'rtv annotate' run on it alone."""

import json
from pathlib import Path

import numpy as np
import pytest

from realtime.batch.worker import BatchWorker, Job, worker_config
from realtime.config import ZOO_DIR, load_config

HAS_FACE_MODELS = (ZOO_DIR / "centerface.onnx").is_file() and (ZOO_DIR / "dlib_resnet128.onnx").is_file()


def frames_of(jsonl: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "ms"} for line in jsonl.read_text().splitlines()]


def face_clip(path: Path, frames: int) -> Path:
    import cv2
    from skimage import data

    from realtime.io.sinks import Mp4Writer

    astronaut = cv2.resize(np.ascontiguousarray(data.astronaut()[..., ::-1]), (256, 256))
    with Mp4Writer(path, fps=10, crf=18, preset="ultrafast") as writer:
        for i in range(frames):
            writer.write(np.roll(astronaut, 2 * i, axis=1))
    return path


def test_worker_config_sizes_threads():
    config = worker_config(load_config(None, []), 3)
    assert (config.runtime.intra_op_threads, config.runtime.inter_op_threads, config.runtime.opencv_threads) == (
        3, 1, 1)
    assert config.source.decode_threads == 3 and config.output.encode_threads == 3


@pytest.mark.skipif(not HAS_FACE_MODELS, reason="face models are not in realtime/zoo")
def test_each_input_starts_with_fresh_tracks(tmp_path):
    from realtime.session import annotate

    config = load_config(None, [f"faces.gallery={tmp_path / 'none.sqlite'}", "faces.detect_width=256"])
    clips = [face_clip(tmp_path / f"face{i}.mp4", 4) for i in range(2)]
    worker = BatchWorker(config, threads=1)
    try:
        records = [worker.process(Job(str(c), c.stem, str(tmp_path / f"{c.stem}.out.mp4"),
                                      str(tmp_path / f"{c.stem}.out.jsonl"), "fp")) for c in clips]
    finally:
        worker.close()
    assert [r["status"] for r in records] == ["done", "done"]
    second = frames_of(tmp_path / "face1.out.jsonl")
    assert second[0]["faces"] and second[0]["faces"][0]["track"] == 1
    tracked = [d["track"] for r in second if "detections" in r for d in r["detections"] if "track" in d]
    assert tracked and min(tracked) == 1  # the object tracker starts over too
    alone = tmp_path / "alone.jsonl"
    annotate(config, str(clips[1]), None, alone, progress=False)
    assert second == frames_of(alone)
