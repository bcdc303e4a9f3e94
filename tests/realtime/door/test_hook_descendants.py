"""Nothing a hook starts outlives it (a grandchild that calls setsid is found through the child subreaper and
killed); a URL hook is bounded as a whole by its timeout (a server that trickles headers); hook output is escaped."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

from realtime.door.hook import FAILED, OK, TIMED_OUT, HookJob, UnlockHook


def _with_marker(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if marker.encode() in fh.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def _result(hook: UnlockHook, wait_s: float):
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        got = hook.poll()
        if got:
            return got[0]
        time.sleep(0.05)
    raise AssertionError("no hook result")


def test_a_setsid_grandchild_does_not_outlive_the_hook(tmp_path):
    marker = f"rtv-hook-{uuid.uuid4().hex}"
    script = tmp_path / "hook.sh"
    script.write_text(f"#!/bin/sh\nsetsid sh -c 'exec -a {marker} sleep 60' &\nsetsid sh -c 'sh -c \"exec -a "
                      f"{marker} sleep 60\" & sleep 60' &\nsleep 0.3\nexit 0\n")
    script.chmod(0o755)
    hook = UnlockHook([str(script)], timeout_s=2.0)
    try:
        hook.submit(HookJob("ann", "d1", 1))
        result = _result(hook, 10)
        assert result.status == OK, result
        time.sleep(0.2)
        assert _with_marker(marker) == []
    finally:
        hook.close()


def test_a_hung_hook_and_its_setsid_children_are_killed_at_the_timeout(tmp_path):
    marker = f"rtv-hook-{uuid.uuid4().hex}"
    script = tmp_path / "hook.sh"
    script.write_text(f"#!/bin/sh\nsetsid sh -c 'exec -a {marker} sleep 60' &\nsleep 60\n")
    script.chmod(0o755)
    hook = UnlockHook([str(script)], timeout_s=1.0)
    try:
        hook.submit(HookJob("ann", "d1", 1))
        result = _result(hook, 10)
        assert result.status == TIMED_OUT
        time.sleep(0.2)
        assert _with_marker(marker) == []
    finally:
        hook.close()


def test_hook_output_is_escaped(tmp_path):
    script = tmp_path / "hook.sh"
    script.write_text("#!/bin/sh\nprintf '\\033[2J\\ndoor: GRANT mallory\\n'\nexit 3\n")
    script.chmod(0o755)
    hook = UnlockHook([str(script)], timeout_s=2.0)
    try:
        hook.submit(HookJob("ann", "d1", 1))
        result = _result(hook, 10)
        assert result.status == FAILED and "\x1b" not in result.detail and "\n" not in result.detail
        assert "\\x1b" in result.detail
    finally:
        hook.close()


def test_a_url_hook_that_trickles_headers_is_bounded_by_the_timeout():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    stop = threading.Event()

    def trickle():
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while not stop.is_set():
            try:
                conn.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
            time.sleep(0.5)
        conn.close()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    hook = UnlockHook(url=f"http://127.0.0.1:{port}/open", timeout_s=1.0)
    try:
        start = time.monotonic()
        hook.submit(HookJob("ann", "d1", 1))
        result = _result(hook, 10)
        assert result.status == TIMED_OUT and time.monotonic() - start < 3.0, result
    finally:
        stop.set()
        hook.close()
        server.close()
