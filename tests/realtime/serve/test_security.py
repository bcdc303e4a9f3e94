"""Nothing that changes state is reachable without authentication, nor with a session cookie but no CSRF token;
ten wrong passwords lock an account; API keys are stored hashed with roles; security headers on every answer."""

from __future__ import annotations

import re
import sqlite3

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("argon2")

from realtime.serve.engine import Enrolment, FaceHit, ObjectHit, Person  # noqa: E402

PASSWORD = "correct horse battery"


def _cheap_hasher():
    """argon2id with small parameters: the same code path, fast enough for tests on a shared machine."""
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class FakeEngine:
    """The adapter's surface without models: records what was asked (state-changing calls must never arrive)."""

    has_detector = True
    default_object_confidence = 0.5
    match_threshold = 0.6
    match_margin = 0.04

    def __init__(self):
        self.calls = []
        self.people = {"alice": Person("alice", 1, True, None, "2026-01-01")}

    def detect_objects(self, image, floor=None):
        return [ObjectHit("cup", 0.9, (1.0, 2.0, 3.0, 4.0))]

    def detect_faces(self, image, floor=0.0):
        return []

    def recognize(self, image):
        return [FaceHit((1.0, 2.0, 30.0, 40.0), 0.9, "alice", 0.2, 0.7, 0.83)]

    def match(self, a, b):
        return 0.3, 0.75

    def enroll(self, name, images, replace=False, force=False):
        self.calls.append(("enroll", name))
        return Enrolment(name, 1, ("x",), (), ())

    def persons(self):
        return list(self.people.values())

    def names(self):
        return list(self.people)

    def remove(self, name):
        self.calls.append(("remove", name))
        return 1

    def set_access(self, name, allowed, schedule=None):
        self.calls.append(("access", name, allowed))


@pytest.fixture()
def app_parts(tmp_path):
    from realtime.config import load_config
    from realtime.serve.accounts import Accounts
    from realtime.serve.adminlog import AdminLog
    from realtime.serve.app import create_app

    config = load_config(None, [f"door.audit={tmp_path / 'audit.sqlite'}"])
    accounts = Accounts(tmp_path / "accounts.sqlite", hasher=_cheap_hasher())
    accounts.add_user("admin", PASSWORD)
    engine = FakeEngine()
    app = create_app(engine, accounts, AdminLog(config))
    return app, engine, accounts, AdminLog(config)


def _png() -> bytes:
    import cv2

    return cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()


def _login(client, user="admin", password=PASSWORD):
    page = client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post("/console/login", data={"username": user, "password": password, "csrf_token": token},
                       follow_redirects=False)


def _state_changing_routes(app):
    from starlette.routing import Route

    out = []
    routes = [route for router in app.state.routers for route in router.routes]
    schema_paths = set(app.openapi()["paths"])
    assert schema_paths <= {r.path for r in routes}  # nothing served outside the routers walked here
    for route in routes:
        if isinstance(route, Route):
            for method in sorted(route.methods or ()):
                if method in ("POST", "PUT", "PATCH", "DELETE") and route.path != "/console/login":
                    out.append((method, route.path.replace("{name}", "alice").replace("{door_id}", "door-1")))
    return out


def test_every_state_changing_route_refuses_without_authentication_or_csrf(app_parts):
    from fastapi.testclient import TestClient

    app, engine, accounts, admin_log = app_parts
    routes = _state_changing_routes(app)
    assert len(routes) >= 10  # the DeepStack routes, the API's writes and the console's forms are all here
    files = {"image": ("a.png", _png(), "image/png")}
    with TestClient(app) as client:
        for method, path in routes:
            r = client.request(method, path, files=files if method == "POST" else None,
                               data={"userid": "alice", "name": "alice", "allowed": "0"} if method == "POST"
                               else None)
            deepstack_read = path in ("/v1/vision/detection", "/v1/vision/face", "/v1/vision/face/recognize",
                                      "/v1/vision/face/match", "/api/v1/detect", "/api/v1/faces",
                                      "/api/v1/identify")
            if deepstack_read:  # reads that change nothing: open while no key exists (DeepStack's default)
                continue
            assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert _login(client).status_code == 303
        for method, path in routes:  # a session cookie without the CSRF token is refused, on every route
            r = client.request(method, path, files=files if method == "POST" else None,
                               data={"userid": "alice", "name": "alice", "allowed": "0"} if method == "POST"
                               else None)
            assert r.status_code == 403, (method, path, r.status_code)
    assert engine.calls == []
    # once a key exists, the reads need one too
    accounts.add_key("viewer", "read")
    with TestClient(app) as client:
        r = client.post("/v1/vision/detection", files=files)
        assert r.status_code == 401


def test_session_with_csrf_changes_state_and_is_audited(app_parts):
    from fastapi.testclient import TestClient

    app, engine, accounts, admin_log = app_parts
    with TestClient(app) as client:
        assert _login(client).status_code == 303
        page = client.get("/console/gallery")
        assert page.status_code == 200 and "alice" in page.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = client.post("/console/gallery/access", data={"name": "alice", "allowed": "0", "csrf_token": token},
                        follow_redirects=False)
        assert r.status_code == 303
        r = client.delete("/api/v1/persons/alice", headers={"X-CSRF-Token": token})
        assert r.status_code == 200
    assert engine.calls == [("access", "alice", False), ("remove", "alice")]
    actions = [(r["detail"], r["person"]) for r in admin_log.records(kind="admin")][::-1]
    assert [a[0].split('"action":"')[1].split('"')[0] for a in actions] == ["sign-in", "deny", "remove"]
    assert all('"who":"session:admin"' in a[0] or '"who":"user:admin"' in a[0] for a in actions)
    assert admin_log.verify()[0]


def test_ten_wrong_passwords_lock_the_account(app_parts):
    from fastapi.testclient import TestClient

    app, engine, accounts, admin_log = app_parts
    with TestClient(app) as client:
        for _ in range(10):
            r = _login(client, password="wrong password!")
            assert r.status_code == 303 and "error=" in r.headers["location"]
        r = _login(client)  # the right password no longer opens it
        assert "locked" in r.headers["location"]
        assert client.get("/console/", follow_redirects=False).status_code == 303
    # the lock lifts after its time
    from realtime.serve.accounts import LOCKOUT_S, Accounts

    later = Accounts(accounts.path, clock=lambda: __import__("time").time() + LOCKOUT_S + 1, hasher=_cheap_hasher())
    assert later.login("admin", PASSWORD).session_token is not None


def test_login_without_csrf_is_refused_and_cookie_flags(app_parts):
    from fastapi.testclient import TestClient

    app, *_ = app_parts
    with TestClient(app) as client:
        r = client.post("/console/login", data={"username": "admin", "password": PASSWORD})
        assert r.status_code == 403
        r = _login(client)
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        page = client.get("/console/")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in page.text and " on" + "click=" not in page.text


def test_api_keys_are_stored_hashed_with_roles(tmp_path):
    from realtime.serve.accounts import Accounts

    accounts = Accounts(tmp_path / "a.sqlite", hasher=_cheap_hasher())
    secret = accounts.add_key("ha", "admin")
    accounts.add_user("root", PASSWORD)
    dump = "\n".join(sqlite3.connect(tmp_path / "a.sqlite").iterdump())
    assert secret not in dump and PASSWORD not in dump and "$argon2id$" in dump
    assert accounts.key(secret).role == "admin" and accounts.key(secret + "x") is None
    with pytest.raises(Exception, match="at least"):
        accounts.add_user("short", "2short")


def test_uploads_are_sniffed_and_bombs_refused():
    import cv2
    import zlib
    import struct

    from realtime.serve.uploads import UploadError, UploadLimits, decode_image

    png = _png()
    assert decode_image(png).shape == (8, 8, 3)
    with pytest.raises(UploadError) as e:
        decode_image(b"GIF89a....")
    assert e.value.status == 415
    with pytest.raises(UploadError) as e:
        decode_image(png, limits=UploadLimits(max_bytes=10))
    assert e.value.status == 413

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # a 30000 x 30000 PNG of zeros: a few hundred kilobytes that would decode to 2.7 GB
    raw = zlib.compress(b"\x00" * (30000 * 3 + 1) * 200, 9)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", raw) + chunk(b"IEND", b"")
    with pytest.raises(UploadError) as e:
        decode_image(bomb)
    assert e.value.status == 413 and "pixels" in e.value.message
    truncated = cv2.imencode(".jpg", np.full((64, 64, 3), 90, np.uint8))[1].tobytes()[:40]
    with pytest.raises(UploadError) as e:
        decode_image(truncated)
    assert e.value.status == 400


def test_native_api_answers_and_openapi_schema(app_parts):
    from fastapi.testclient import TestClient

    from realtime.serialize import SCHEMA_VERSION

    app, *_ = app_parts
    files = {"image": ("a.png", _png(), "image/png")}
    with TestClient(app) as client:  # no key exists yet: reads are open
        r = client.post("/api/v1/identify", files=files).json()
        assert r["schema_version"] == SCHEMA_VERSION and r["threshold"] == 0.6
        assert r["faces"] == [{"box": [1.0, 2.0, 30.0, 40.0], "score": 0.9, "identity": "alice", "distance": 0.2,
                               "second_distance": 0.7, "confidence": 0.83}]
        assert client.post("/api/v1/detect", files=files).json()["objects"][0]["label"] == "cup"
        ds = client.post("/v1/vision/face/recognize", files=files).json()
        assert ds["success"] is True and ds["predictions"][0] | {"confidence": 0} == {
            "userid": "alice", "confidence": 0, "x_min": 1, "y_min": 2, "x_max": 30, "y_max": 40}
        assert client.post("/v1/vision/face/recognize", files=files, data={"min_confidence": "0.9"}).json()[
            "predictions"][0]["userid"] == "unknown"  # min_confidence above the face's confidence: not named
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/api/v1/identify", "/api/v1/persons/{name}", "/v1/vision/detection", "/api/v1/audit.csv"} <= set(paths)
