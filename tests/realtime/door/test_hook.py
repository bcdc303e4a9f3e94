"""Unlock hook: argv command (no shell), HTTP POST to a local server, timeouts and failures as values."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from realtime.door.hook import HookJob, UnlockHook, check_hook
from realtime.errors import ConfigError


def _wait(hook, n=1, timeout=10.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got.extend(hook.poll())
        time.sleep(0.01)
    return got


def test_command_gets_person_and_door_as_separate_argv_items(tmp_path):
    out = tmp_path / "argv.json"
    script = tmp_path / "hook.py"
    script.write_text("import json, os, sys\n"
                      f"open({str(out)!r}, 'w').write(json.dumps([sys.argv[1:], os.environ['RTV_PERSON'], "
                      "os.environ['RTV_DOOR_ID'], os.environ['RTV_AUDIT_SEQ'], os.environ['RTV_EVENT']]))\n")
    hook = UnlockHook([sys.executable, str(script)], timeout_s=20)
    evil = "Ann; touch pwned $(id) `x` 'q'"
    hook.submit(HookJob(evil, "door 1", 7))
    results = _wait(hook)
    hook.close()
    assert len(results) == 1 and results[0].ok, results
    assert json.loads(out.read_text()) == [["--", evil, "door 1"], evil, "door 1", "7", "grant"]
    assert not (tmp_path / "pwned").exists()


def test_failing_slow_and_missing_commands_are_reported_not_raised(tmp_path):
    fail = UnlockHook([sys.executable, "-c", "import sys; print('jammed'); sys.exit(3)"], timeout_s=20)
    fail.submit(HookJob("ann", "d1", 1))
    (r,) = _wait(fail)
    fail.close()
    assert not r.ok and "exit status 3" in r.detail and "jammed" in r.detail

    slow = UnlockHook([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.5)
    t0 = time.perf_counter()
    slow.submit(HookJob("ann", "d1", 2))
    assert time.perf_counter() - t0 < 0.5  # submit never waits for the command
    (r,) = _wait(slow)
    slow.close()
    assert not r.ok and "timed out" in r.detail

    missing = UnlockHook([str(tmp_path / "no-such-program")], timeout_s=5)
    missing.submit(HookJob("ann", "d1", 3))
    (r,) = _wait(missing)
    missing.close()
    assert not r.ok and "cannot run" in r.detail


def test_full_queue_is_a_failed_hook_and_close_is_bounded():
    hook = UnlockHook([sys.executable, "-c", "import time; time.sleep(2)"], timeout_s=5, max_pending=1)
    for seq in range(4):
        hook.submit(HookJob("ann", "d1", seq))
    refused = [r for r in hook.poll() if "pending" in r.detail]
    assert refused and not any(r.ok for r in refused)
    t0 = time.perf_counter()
    hook.close(wait_s=0.2)
    assert time.perf_counter() - t0 < 2.0
    hook.close()  # twice is safe


class _Recorder(BaseHTTPRequestHandler):
    bodies: list = []
    status = 200

    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length", 0))
        type(self).bodies.append((self.headers.get("Content-Type"), json.loads(self.rfile.read(length))))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    _Recorder.bodies = []
    _Recorder.status = 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/unlock", _Recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_http_post_carries_person_door_and_audit_seq(http_server):
    url, recorder = http_server
    hook = UnlockHook(url=url, timeout_s=5)
    hook.submit(HookJob("ann", "door-1", 12))
    (r,) = _wait(hook)
    hook.close()
    assert r.ok and r.detail == "HTTP 200"
    ((ctype, body),) = recorder.bodies
    assert ctype == "application/json"
    assert {k: body[k] for k in ("event", "person", "door_id", "audit_seq")} == \
        {"event": "grant", "person": "ann", "door_id": "door-1", "audit_seq": 12}


def test_http_errors_and_refused_connections_are_failures(http_server):
    url, recorder = http_server
    recorder.status = 503
    hook = UnlockHook(url=url, timeout_s=5)
    hook.submit(HookJob("ann", "door-1", 1))
    (r,) = _wait(hook)
    hook.close()
    assert not r.ok and "HTTP 503" in r.detail
    closed = UnlockHook(url="http://127.0.0.1:9/unlock", timeout_s=2)
    closed.submit(HookJob("ann", "door-1", 2))
    (r,) = _wait(closed)
    closed.close()
    assert not r.ok and "POST failed" in r.detail


@pytest.mark.parametrize("command, url, timeout, key", [
    (("a",), "http://x", 1.0, "both"), ((), "ftp://x/y", 1.0, "hook_url"), (("",), "", 1.0, "hook_command"),
    ((), "", 0.0, "hook_timeout_s")])
def test_bad_settings_are_config_errors(command, url, timeout, key):
    with pytest.raises(ConfigError, match=key):
        check_hook(command, url, timeout)


def test_no_action_configured_does_nothing():
    hook = UnlockHook()
    hook.submit(HookJob("ann", "d1", 1))
    assert not hook.enabled and hook.close() == []


def test_shell_string_is_one_argv_item_not_a_shell(tmp_path):
    """A command given as one string with spaces is a program name, not a shell line: it fails to run."""
    hook = UnlockHook([f"touch {tmp_path / 'pwned'}"], timeout_s=5)
    hook.submit(HookJob("ann", "d1", 1))
    (r,) = _wait(hook)
    hook.close()
    assert not r.ok and not (tmp_path / "pwned").exists()
