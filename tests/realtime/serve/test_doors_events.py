"""A door inside ``rtv serve`` (a looped file source): its decisions reach a real mosquitto broker (Home Assistant
topics, retained availability) and a signed webhook; an enrolment through the API from the door's own camera makes
a following decision a GRANT, a deny through the API the next one a DENY; SIGTERM writes the door's stop record."""

from __future__ import annotations

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from .conftest import (DOOR_SETTINGS, Mosquitto, ServeProcess, _photo_arrays, enrol_in_process, free_port,
                       write_door_video)

pytestmark = pytest.mark.slow
pytest.importorskip("paho.mqtt")
requests = pytest.importorskip("requests")

SECRET = b"a shared secret of enough bytes"


class Hooks(BaseHTTPRequestHandler):
    received: "queue.Queue" = queue.Queue()

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hooks.received.put((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


_history: dict = {}


def _wait_for(messages: "queue.Queue", predicate, timeout_s: float):
    """The first message (ever received on ``messages``, in order) that satisfies ``predicate``."""
    seen = _history.setdefault(id(messages), [])
    for item in seen:
        if predicate(item):
            return item
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            item = messages.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(item)
        if predicate(item):
            return item
    raise AssertionError(f"not seen in {timeout_s} s; got {seen[-10:]}")


def test_door_events_reach_mqtt_and_webhooks(tmp_path):
    import paho.mqtt.client as paho

    from realtime.serve.events import sign

    broker = Mosquitto(tmp_path)
    hook_server = HTTPServer(("127.0.0.1", free_port()), Hooks)
    threading.Thread(target=hook_server.serve_forever, daemon=True).start()
    (tmp_path / "secret").write_bytes(SECRET)
    photos = _photo_arrays()
    enrol_in_process(tmp_path / "gallery.sqlite", "cameraman", photos["cameraman"])  # someone, so the door starts
    video = tmp_path / "door.mp4"
    write_door_video(video)
    messages: "queue.Queue" = queue.Queue()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: messages.put((m.topic, m.payload.decode(), m.retain))
    client.connect("127.0.0.1", broker.port)
    client.subscribe("rtv/#", qos=1)
    client.loop_start()
    server = None
    try:
        server = ServeProcess(tmp_path, extra_args=[
            "--door", f"front={video}", "--door-loop", "--mqtt", f"127.0.0.1:{broker.port}",
            "--webhook", f"http://127.0.0.1:{hook_server.server_port}/hook",
            "--webhook-secret-file", str(tmp_path / "secret")], extra_settings=DOOR_SETTINGS)
        _wait_for(messages, lambda m: m[0] == "rtv/front/availability" and m[1] == "online", 30)
        _wait_for(messages, lambda m: m[0] == "rtv/availability" and m[1] == "online", 30)
        # the astronaut is not enrolled: DENY
        deny = _wait_for(messages, lambda m: m[0] == "rtv/front/event" and json.loads(m[1])["decision"] == "DENY",
                         90)
        assert json.loads(deny[1])["person"] in (None, "unknown")
        # enrol through the API from the door's own camera (frames that pass the quality gates): the door then
        # grants on a following pass
        r = requests.post(f"{server.url}/api/v1/persons/astronaut/capture", params={"door": "front", "shots": 2},
                          headers={"X-API-Key": server.admin_key}, timeout=60)
        assert r.status_code == 200, r.text
        assert len(r.json()["accepted"]) == 2 and all(a.startswith("door front frame") for a in r.json()["accepted"])
        grant = _wait_for(messages, lambda m: m[0] == "rtv/front/event"
                          and json.loads(m[1])["decision"] == "GRANT", 90)
        assert json.loads(grant[1])["person"] == "astronaut"
        # deny access through the API: the next decision about the astronaut is a DENY
        r = requests.put(f"{server.url}/api/v1/persons/astronaut/access", headers={"X-API-Key": server.admin_key},
                         json={"allowed": False}, timeout=30)
        assert r.status_code == 200, r.text
        after = _wait_for(messages, lambda m: m[0] == "rtv/front/event"
                          and json.loads(m[1])["decision"] == "DENY"
                          and json.loads(m[1])["person"] == "astronaut", 90)
        assert json.loads(after[1])["kind"] == "decision"
        # the webhook got the same events, signed
        headers, body = _wait_for(Hooks.received, lambda h: json.loads(h[1])["decision"] == "GRANT", 30)
        assert headers["X-Rtv-Signature"] == sign(SECRET, headers["X-Rtv-Timestamp"], body)
        status = requests.get(f"{server.url}/api/v1/doors", headers={"X-API-Key": server.read_key}, timeout=10)
        door = status.json()["doors"][0]
        assert door["id"] == "front" and door["state"] == "running" and door["frames"] > 0
        snap = requests.get(f"{server.url}/api/v1/doors/front/snapshot.jpg",
                            headers={"X-API-Key": server.read_key}, timeout=10)
        assert snap.status_code == 200 and snap.content[:3] == b"\xff\xd8\xff"
    finally:
        if server is not None:
            server.stop()
        client.loop_stop()
        hook_server.shutdown()
    # after SIGTERM: the door's stop record, and the door offline (retained)
    from realtime.door.audit import AuditLog

    with AuditLog.open(tmp_path / "audit.sqlite", create=False) as log:  # the door's own log
        records = list(log.records())
        assert log.verify().ok
    kinds = [(r["kind"], r["door_id"]) for r in records]
    assert kinds[0] == ("start", "front") and kinds[-1] == ("stop", "front")
    assert "alarm" not in [k for k, _ in kinds], [r["reason"] for r in records if r["kind"] == "alarm"]
    assert "error" not in json.loads(records[-1]["detail"])["reason"], records[-1]
    with AuditLog.open(tmp_path / "audit.admin.sqlite", create=False) as log:  # the service's: who did what
        admin = [(r["kind"], r["person"], json.loads(r["detail"])["action"]) for r in log.records()]
        assert log.verify().ok
    assert admin == [("admin", "astronaut", "enrol"), ("admin", "astronaut", "deny")]
    retained = queue.Queue()
    probe = paho.Client(paho.CallbackAPIVersion.VERSION2)
    probe.on_message = lambda c, u, m: retained.put((m.topic, m.payload.decode(), m.retain))
    probe.connect("127.0.0.1", broker.port)
    probe.subscribe("rtv/+/availability")
    probe.loop_start()
    try:
        _wait_for(retained, lambda m: m[0] == "rtv/front/availability" and m[1] == "offline" and m[2], 10)
    finally:
        probe.loop_stop()
        broker.stop()
