"""``rtv serve`` answers the DeepStack API as the unmodified ``deepstack-python`` client (what Home Assistant's
integrations use) expects, with answers equal to the in-process commands'."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest

pytest.importorskip("deepstack.core")
requests = pytest.importorskip("requests")
pytestmark = pytest.mark.slow  # a real server process: about 10 s with model loading


def _identify(server, path) -> dict:
    """What ``rtv identify`` prints for ``path`` with the server's gallery and settings."""
    from realtime.cli.main import main

    argv = ["identify", str(path)]
    for item in server.settings:
        argv += ["--set", item]
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(argv) == 0
    return json.loads(buf.getvalue())


def test_register_recognize_list_delete_detect_with_the_deepstack_client(served, photos):
    from deepstack.core import DeepstackException, DeepstackFace, DeepstackObject

    faces = DeepstackFace(ip="127.0.0.1", port=served.port, api_key=served.admin_key, timeout=30)
    assert faces.register("astronaut", photos["astronaut"].read_bytes()) == "face added"
    assert faces.register("cameraman", photos["cameraman"].read_bytes()) == "face added"
    assert sorted(faces.get_registered_faces()) == ["astronaut", "cameraman"]

    predictions = faces.recognize(photos["group"].read_bytes())
    by_x = sorted(predictions, key=lambda p: p["x_min"])
    assert [p["userid"] for p in by_x] == ["astronaut", "cameraman", "unknown"]
    assert all(0.5 < p["confidence"] <= 1 for p in by_x[:2]) and by_x[2]["confidence"] == 0
    assert set(by_x[0]) >= {"userid", "confidence", "x_min", "y_min", "x_max", "y_max"}

    # the in-process command gives the same people at the same places
    local = sorted(_identify(served, photos["group"])["faces"], key=lambda f: f["box"][0])
    assert [f["identity"] or "unknown" for f in local] == [p["userid"] for p in by_x]
    for f, p in zip(local, by_x):
        assert [round(v) for v in f["box"]] == [p["x_min"], p["y_min"], p["x_max"], p["y_max"]]

    # a read-only key may recognise but not register
    reader = DeepstackFace(ip="127.0.0.1", port=served.port, api_key=served.read_key, timeout=30)
    assert len(reader.recognize(photos["group"].read_bytes())) == 3
    with pytest.raises(DeepstackException, match="403"):
        reader.register("intruder", photos["stranger"].read_bytes())

    # delete (the client has no method for it: a plain form post, as DeepStack documents)
    answer = requests.post(f"{served.url}/v1/vision/face/delete",
                           data={"userid": "cameraman", "api_key": served.admin_key}, timeout=30).json()
    assert answer["success"] is True
    assert faces.get_registered_faces() == ["astronaut"]
    after = sorted(faces.recognize(photos["group"].read_bytes()), key=lambda p: p["x_min"])
    assert [p["userid"] for p in after] == ["astronaut", "unknown", "unknown"]

    # objects: a cup on the coffee photo, as the pipeline's detection stage finds it
    objects = DeepstackObject(ip="127.0.0.1", port=served.port, api_key=served.read_key, timeout=30,
                              min_confidence=0.3).detect(photos["coffee"].read_bytes())
    assert "cup" in [o["label"] for o in objects]
    expected = _pipeline_objects(served, photos["coffee"], 0.3)
    assert [(o["label"], o["x_min"], o["y_min"], o["x_max"], o["y_max"]) for o in objects] == expected


def _pipeline_objects(server, path, floor):
    import cv2

    from realtime.build import build_detector_stage
    from realtime.config import load_config
    from realtime.types import FramePacket

    config = load_config(None, server.settings + [f"detector.score_threshold={floor}"])
    stage = build_detector_stage(config)
    try:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        dets = stage(FramePacket(index=0, t_capture=0.0, t_source=0.0, frame_bgr=image)).detections
    finally:
        stage.close()
    order = sorted(range(len(dets)), key=lambda i: -float(dets.scores[i]))
    return [(dets.class_name(i), *[int(round(float(v))) for v in dets.boxes_xyxy[i]]) for i in order]


def test_face_match_and_errors(served, photos):
    import cv2

    url = served.url + "/v1/vision"
    key = {"api_key": served.read_key}
    smaller = cv2.resize(cv2.imread(str(photos["astronaut"])), None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)
    same = requests.post(url + "/face/match", data=key, timeout=30, files={
        "image1": photos["astronaut"].read_bytes(), "image2": cv2.imencode(".png", smaller)[1].tobytes()}).json()
    assert same["success"] and same["same_person"] is True and same["similarity"] > 0.5
    other = requests.post(url + "/face/match", data=key, timeout=30, files={
        "image1": photos["astronaut"].read_bytes(), "image2": photos["stranger"].read_bytes()}).json()
    assert other["same_person"] is False and other["similarity"] < same["similarity"]

    r = requests.post(url + "/face/recognize", data=key, files={"image": b"not an image at all"}, timeout=30)
    assert r.status_code == 415 and r.json() == {"success": False, "error": r.json()["error"], "code": 415}
    r = requests.post(url + "/face/recognize", data=key, timeout=30)
    assert r.status_code == 400 and r.json()["success"] is False
    r = requests.post(url + "/detection", data={"api_key": "rtv_wrong"}, files={
        "image": photos["coffee"].read_bytes()}, timeout=30)
    assert r.status_code == 401
    r = requests.post(url + "/face/register", data={"userid": "x"}, files={
        "image": photos["astronaut"].read_bytes()}, timeout=30)
    assert r.status_code == 401


def test_sigterm_stops_the_service_cleanly(served):
    assert served.stop() == 143  # 128 + SIGTERM, as for every rtv command stopped by a signal
    out = served.output()
    assert "rtv serve: stopped" in out and "Traceback" not in out and "rtv: stopped by SIGTERM" in out
