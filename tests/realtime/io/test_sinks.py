import dataclasses
import json

import av
import numpy as np
import pytest

from realtime.errors import SinkError
from realtime.io.sinks import JsonlWriter, Mp4Writer
from realtime.serialize import faces_json, packet_record
from realtime.types import Detections, FaceDetections, FaceIdentities, FramePacket


def test_mp4_is_h264_and_plays_back(tmp_path, frame_factory):
    path = tmp_path / "out.mp4"
    with Mp4Writer(path, fps=25) as writer:
        for i in range(30):
            writer.write(frame_factory(i, (161, 121)))  # odd size: padded to even
    assert path.is_file() and not (tmp_path / "out.mp4.partial").exists()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    assert len(frames) == 30
    assert frames[0].shape == (122, 162, 3)
    # Lossy, but recognisably the same picture.
    assert np.abs(frames[5][:121, :161].astype(int) - frame_factory(5, (161, 121))).mean() < 6


def test_output_folder_missing(tmp_path):
    with pytest.raises(SinkError, match="does not exist"):
        Mp4Writer(tmp_path / "nope" / "x.mp4", fps=25)
    with pytest.raises(SinkError, match="does not exist"):
        JsonlWriter(tmp_path / "nope" / "x.jsonl")


def test_jsonl_schema(tmp_path):
    detections = Detections(np.array([[1, 2, 30, 40]], np.float32), np.array([0.9], np.float32),
                            np.array([1]), ("person", "face"))
    faces = FaceDetections(np.array([[5, 5, 25, 25]], np.float32), np.array([0.8], np.float32),
                           np.arange(10, dtype=np.float32).reshape(1, 5, 2))
    identities = dataclasses.replace(FaceIdentities.unknown(1), names=("alice",),
                                     distances=np.array([0.41], np.float32), track_ids=np.array([3]))
    packet = FramePacket(index=7, t_capture=0.0, t_source=0.28, frame_bgr=np.zeros((4, 4, 3), np.uint8),
                         detections=detections, faces=faces, identities=identities, timings_ms={"faces": 3.21})
    path = tmp_path / "r.jsonl"
    with JsonlWriter(path) as writer:
        writer.write(packet_record(packet))
    record = json.loads(path.read_text().splitlines()[0])
    assert record["frame"] == 7 and record["t"] == 0.28
    assert record["detections"] == [{"box": [1.0, 2.0, 30.0, 40.0], "score": 0.9, "class": "face"}]
    face = record["faces"][0]
    assert face["identity"] == "alice" and face["distance"] == pytest.approx(0.41)
    assert face["landmarks"][4] == [8.0, 9.0] and face["track"] == 3
    assert record["ms"] == {"faces": 3.21}


def test_unknown_face_has_null_identity_and_distance():
    faces = FaceDetections(np.zeros((1, 4), np.float32), np.ones(1, np.float32), np.zeros((1, 5, 2), np.float32))
    entry = faces_json(faces, FaceIdentities.unknown(1))[0]
    assert entry["identity"] is None and entry["distance"] is None and "track" not in entry
    entry = faces_json(faces, None)[0]  # no recognition at all
    assert entry["identity"] is None and entry["distance"] is None and "track" not in entry
