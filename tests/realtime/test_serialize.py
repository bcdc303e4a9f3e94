"""One serialisation module: the JSONL frame lines, face descriptors and door events, honouring
output.jsonl_decimals."""

import dataclasses
import json

import numpy as np
import pytest

from realtime.door.events import DENY, DoorAlarm, DoorDecision, DoorRecovery
from realtime.serialize import SCHEMA_VERSION, event_json, is_frame_record, packet_record
from realtime.types import Detections, FaceDetections, FaceIdentities, FramePacket


def _packet(**kw):
    faces = FaceDetections(np.array([[5.123456, 5.5, 25.25, 25.9999]], np.float32), np.array([0.87654], np.float32),
                           np.full((1, 5, 2), 7.456, np.float32))
    dets = Detections(np.array([[1.23456, 2, 30, 40]], np.float32), np.array([0.912345], np.float32),
                      np.array([0]), ("person",))
    return FramePacket(index=3, t_capture=0.0, t_source=1.23456789, frame_bgr=np.zeros((4, 4, 3), np.uint8),
                       detections=dets, faces=faces, **kw)


def test_decimals_round_pixel_coordinates_and_keep_four_for_scores():
    two = packet_record(_packet())
    assert two["detections"][0]["box"] == [1.23, 2.0, 30.0, 40.0] and two["faces"][0]["landmarks"][0] == [7.46, 7.46]
    assert two["detections"][0]["score"] == 0.9123 and two["t"] == 1.2346
    zero = packet_record(_packet(), decimals=0)
    assert zero["detections"][0]["box"] == [1, 2, 30, 40] and zero["faces"][0]["box"] == [5, 6, 25, 26]
    assert all(isinstance(v, int) for v in zero["faces"][0]["box"])
    six = packet_record(_packet(), decimals=6)
    assert six["faces"][0]["box"][0] == pytest.approx(5.123456, abs=1e-6) and six["t"] == 1.234568


def test_identities_appear_only_when_recognition_ran_and_nan_becomes_null():
    plain = packet_record(_packet())["faces"][0]
    assert plain["identity"] is None and plain["distance"] is None and "track" not in plain and "votes" not in plain
    ids = dataclasses.replace(FaceIdentities.unknown(1), names=("ann",), distances=np.array([0.3], np.float32),
                              second_distances=np.array([np.inf], np.float32), track_ids=np.array([4]),
                              track_names=("ann",), votes=np.array([2]), voters=np.array([3]),
                              embedded=np.array([True]), landmarks_dlib5=np.full((1, 5, 2), 9.6, np.float32))
    face = packet_record(_packet(identities=ids))["faces"][0]
    assert face["identity"] == "ann" and face["distance"] == 0.3 and face["second_distance"] is None
    assert face["track"] == 4 and face["track_identity"] == "ann" and (face["votes"], face["voters"]) == (2, 3)
    assert face["embedded"] is True and face["landmarks_dlib"][0] == [10, 10]
    json.dumps(face, allow_nan=False)  # strict JSON: no NaN or Infinity anywhere


def test_door_events_serialise_here_and_unknown_events_are_refused():
    decision = DoorDecision(DENY, 2, None, "unknown person", (1.0, 2.0, 3.0, 4.0), distance=0.812345, new=True)
    record = packet_record(_packet(decisions=(decision, DoorAlarm("gallery", "gone"), DoorRecovery("camera", "back"))))
    assert [d["type"] for d in record["decisions"]] == ["decision", "alarm", "recovery"]
    assert record["decisions"][0]["verdict"] == "DENY" and record["decisions"][0]["distance"] == 0.8123
    assert record["decisions"][0]["margin"] is None

    @dataclasses.dataclass(frozen=True)
    class Other:
        frame_index: int = 0
        new: bool = True

    with pytest.raises(TypeError, match="Other"):
        event_json(Other())


def test_frame_lines_are_told_from_header_and_end_by_key():
    assert isinstance(SCHEMA_VERSION, int)
    assert is_frame_record(packet_record(_packet()))
    assert not is_frame_record({"end": {}}) and not is_frame_record({"rtv": {}})


def test_the_shipped_schema_checks_every_kind_of_line(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    from realtime.serialize import RunHeader, ModelFile, end_record, header_record, load_schema
    from realtime.types import EndReason, RunResult, SourceInfo

    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    header = header_record(RunHeader("0.1.0", SourceInfo("video a.mp4", "file", fps=25.0, expected_frames=3),
                                     {"detector": ModelFile("d.onnx", "ab" * 32)}, {"detector": {"x": 0.5}},
                                     "0123456789abcdef"), (64, 48))
    assert header["rtv"]["source"]["width"] == 64 and header["rtv"]["schema"] == SCHEMA_VERSION
    ids = dataclasses.replace(FaceIdentities.unknown(1), names=("ann",), distances=np.array([0.3], np.float32),
                              track_ids=np.array([2]), track_names=("ann",))
    decision = DoorDecision(DENY, 2, None, "unknown person", (1.0, 2.0, 3.0, 4.0), new=True)
    lines = [header, packet_record(_packet(identities=ids, decisions=(decision, DoorAlarm("gallery", "gone")))),
             packet_record(_packet(), decimals=0), end_record(RunResult(2, EndReason.END, None, 3))]
    for line in lines:
        validator.validate(json.loads(json.dumps(line)))
    bad_face = packet_record(_packet(identities=ids))
    del bad_face["faces"][0]["landmarks"]
    assert not validator.is_valid(bad_face)
    assert not validator.is_valid({"frame": 0, "t": 0.0, "detections": [], "faces": [], "end": {}})
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    from realtime.serialize import validate_result_lines

    read = validate_result_lines(path)
    assert read.header["models"]["detector"]["file"] == "d.onnx" and len(read.frames) == 2
    assert read.end["reason"] == "end"
    path.write_text("\n".join(json.dumps(line) for line in [lines[1], lines[0]]) + "\n")
    with pytest.raises(ValueError, match="header line after the first"):
        validate_result_lines(path)
    path.unlink()  # not left for the suite-wide check


def test_an_api_result_is_a_frame_line_of_the_schema():
    jsonschema = pytest.importorskip("jsonschema")
    from realtime.results import result_record
    from realtime.serialize import load_schema

    validator = jsonschema.Draft202012Validator(load_schema())
    row = result_record(_packet(), "photos/a.jpg")
    assert row["source"] == "photos/a.jpg" and row["frame"] == 3
    validator.validate(json.loads(json.dumps(row)))
    packet = _packet()
    held = dataclasses.replace(packet, detections=dataclasses.replace(packet.detections, continued=np.array([True])))
    row = json.loads(json.dumps(result_record(held, None)))
    assert row["detections"][0]["continued"] is True
    validator.validate(row)
