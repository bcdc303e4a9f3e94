"""The unlock hook: on GRANT, run a command or POST to a URL, on a worker thread, with a timeout.

Command: ``argv = [*command, person, door_id]``, run without a shell (the person's name is one argv item, never
part of a shell string), stdin closed, output captured (the first 200 characters are kept for the audit log).
URL: a JSON POST ``{"event": "grant", "person", "door_id", "audit_seq", "ts"}`` with ``urllib``.

The pipeline never waits: :meth:`UnlockHook.submit` puts a job on a small bounded queue (a full queue is itself
reported as a failed hook), one worker thread runs the jobs, and outcomes come back as :class:`HookResult` values
through :meth:`UnlockHook.poll`, which the main thread calls each frame to write them into the audit log.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence
from urllib.parse import urlparse

from realtime.errors import ConfigError

OUTPUT_CHARS = 200


@dataclass(frozen=True)
class HookJob:
    person: str
    door_id: str
    audit_seq: int


@dataclass(frozen=True)
class HookResult:
    """Outcome of one job: ``ok``; ``detail`` (exit status, HTTP status, or the error); ``seconds`` it took."""

    job: HookJob
    ok: bool
    detail: str
    seconds: float
    action: str


def check_hook(command: Sequence[str], url: str, timeout_s: float) -> None:
    """Validate the hook settings; :class:`ConfigError` naming the key."""
    if command and url:
        raise ConfigError("door.hook_command and door.hook_url are both set; set one of them")
    if command and (not all(isinstance(c, str) and c for c in command)):
        raise ConfigError(f"door.hook_command={list(command)!r}: must be a list of non-empty strings "
                          "(argv; the person and door id are appended)")
    if url:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"door.hook_url={url!r}: must be an http:// or https:// URL")
    if not timeout_s > 0:
        raise ConfigError(f"door.hook_timeout_s={timeout_s!r}: must be > 0")


class UnlockHook:
    """Runs the configured action for each GRANT on one worker thread. ``close()`` is safe twice.

    With neither a command nor a URL, :meth:`submit` does nothing (``enabled`` is False).
    """

    def __init__(self, command: Sequence[str] = (), url: str = "", timeout_s: float = 3.0,
                 max_pending: int = 8) -> None:
        check_hook(command, url, timeout_s)
        self.command = tuple(command)
        self.url = url
        self.timeout_s = float(timeout_s)
        self.enabled = bool(self.command or self.url)
        self.action = (f"command {self.command[0]}" if self.command else f"POST {self.url}") if self.enabled else ""
        self._jobs: queue.Queue = queue.Queue(maxsize=max_pending)
        self._results: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, job: HookJob) -> None:
        """Queue ``job``; never blocks. A full queue yields a failed :class:`HookResult` at once."""
        if not self.enabled or self._closed:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="door-hook", daemon=True)
            self._thread.start()
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            self._results.put(HookResult(job, False, f"not run: {self._jobs.maxsize} hook calls already pending",
                                         0.0, self.action))

    def poll(self) -> list[HookResult]:
        """Outcomes finished since the last call (never blocks)."""
        out = []
        while True:
            try:
                out.append(self._results.get_nowait())
            except queue.Empty:
                return out

    def close(self, wait_s: float | None = None) -> list[HookResult]:
        """Stop taking jobs, give pending ones up to ``wait_s`` (default: the timeout plus 1 s), return the
        outcomes not yet polled."""
        if not self._closed:
            self._closed = True
            if self._thread is not None:
                self._jobs.put(None)
                self._thread.join(timeout=self.timeout_s + 1.0 if wait_s is None else wait_s)
        return self.poll()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            t0 = time.perf_counter()
            try:
                ok, detail = self._run_command(job) if self.command else self._post(job)
            except Exception as exc:  # noqa: BLE001 - any failure is a value for the audit log, never a crash
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            self._results.put(HookResult(job, ok, detail, time.perf_counter() - t0, self.action))

    def _run_command(self, job: HookJob) -> tuple[bool, str]:
        argv = [*self.command, job.person, job.door_id]
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=self.timeout_s,
                                  shell=False, check=False)
        except subprocess.TimeoutExpired:
            return False, f"timed out after {self.timeout_s:g} s (killed)"
        except OSError as exc:
            return False, f"cannot run {self.command[0]!r}: {exc}"
        output = (done.stdout + done.stderr).decode("utf-8", "replace").strip()[:OUTPUT_CHARS]
        detail = f"exit status {done.returncode}" + (f": {output}" if output else "")
        return done.returncode == 0, detail

    def _post(self, job: HookJob) -> tuple[bool, str]:
        body = json.dumps({"event": "grant", "person": job.person, "door_id": job.door_id,
                           "audit_seq": job.audit_seq,
                           "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}).encode("utf-8")
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - scheme checked
                status = response.status
        except urllib.error.HTTPError as exc:
            return False, f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return False, f"POST failed: {reason}"
        return 200 <= status < 300, f"HTTP {status}"
