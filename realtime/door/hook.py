"""The unlock hook: on GRANT, run a command or POST to a URL, on a worker thread, with a timeout.

Command: ``argv = [*command, "--", person, door_id]``, run without a shell (the person's name is one argv item,
never part of a shell string, and comes after ``--`` so no option parser reads it as an option; names are also
validated, see :mod:`realtime.gallery.names`). The same values are in the environment: ``RTV_EVENT=grant``,
``RTV_PERSON``, ``RTV_DOOR_ID``, ``RTV_AUDIT_SEQ``. stdin is closed, stdout and stderr go to a temporary file (the
first 200 characters are kept for the audit log). The command runs in a new session (its own process group); at
its timeout, and whenever it exits, the whole group is killed, so nothing it started outlives it.
URL: a JSON POST ``{"event": "grant", "person", "door_id", "audit_seq", "ts"}`` with ``urllib``.

Timing (``timeout_s``): a job not started within ``timeout_s`` of its GRANT is dropped and reported as expired (an
unlock long after the face was seen is worse than none); a command still running ``timeout_s`` after it started is
killed. So an unlock happens within twice ``timeout_s`` of its GRANT, or not at all.

The pipeline never waits: :meth:`UnlockHook.submit` puts a job on a small bounded queue (a full queue is itself
reported as a failed hook), one worker thread runs the jobs, and outcomes come back as :class:`HookResult` values
through :meth:`UnlockHook.poll`, which the main thread calls each frame to write them into the audit log.
:meth:`UnlockHook.close` reports every job still queued as not run, gives the running one until its timeout and
then kills its process group.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Sequence
from urllib.parse import urlparse

from realtime.errors import ConfigError
from realtime.gallery.names import escape_text, name_problem

OUTPUT_CHARS = 200
OK = "ok"
FAILED = "failed"
TIMED_OUT = "timed out"
EXPIRED = "expired"
NOT_RUN = "not run"
REFUSED = "refused"


@dataclass(frozen=True)
class HookJob:
    """One GRANT to act on. ``granted_at``: ``time.monotonic()`` when the GRANT was decided."""

    person: str
    door_id: str
    audit_seq: int
    granted_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class HookResult:
    """Outcome of one job: ``ok``; ``status`` (:data:`OK`, :data:`FAILED`, :data:`TIMED_OUT`, :data:`EXPIRED`,
    :data:`NOT_RUN`, :data:`REFUSED`); ``detail`` (exit status, HTTP status, or the error); ``seconds`` it ran."""

    job: HookJob
    ok: bool
    detail: str
    seconds: float
    action: str
    status: str = OK


def check_hook(command: Sequence[str], url: str, timeout_s: float) -> None:
    """Validate the hook settings; :class:`ConfigError` naming the key."""
    if command and url:
        raise ConfigError("door.hook_command and door.hook_url are both set; set one of them")
    if command and (not all(isinstance(c, str) and c for c in command)):
        raise ConfigError(f"door.hook_command={list(command)!r}: must be a list of non-empty strings "
                          "(argv; '--', the person and the door id are appended)")
    if url:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"door.hook_url={url!r}: must be an http:// or https:// URL")
    if not (isinstance(timeout_s, (int, float)) and 0 < timeout_s <= 300):
        raise ConfigError(f"door.hook_timeout_s={timeout_s!r}: must be a number of seconds > 0 and <= 300")


def hook_argv(command: Sequence[str], job: HookJob) -> list[str]:
    """The argv a command hook gets: ``[*command, "--", person, door_id]``."""
    return [*command, "--", job.person, job.door_id]


def hook_environment(job: HookJob) -> dict[str, str]:
    """The environment a command hook gets: this process's, plus ``RTV_EVENT``, ``RTV_PERSON``, ``RTV_DOOR_ID``
    and ``RTV_AUDIT_SEQ``."""
    return {**os.environ, "RTV_EVENT": "grant", "RTV_PERSON": job.person, "RTV_DOOR_ID": job.door_id,
            "RTV_AUDIT_SEQ": str(job.audit_seq)}


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
        self._lock = threading.Lock()
        self._running: subprocess.Popen | None = None
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
                                         0.0, self.action, NOT_RUN))

    def poll(self) -> list[HookResult]:
        """Outcomes finished since the last call (never blocks)."""
        out = []
        while True:
            try:
                out.append(self._results.get_nowait())
            except queue.Empty:
                return out

    def close(self, wait_s: float | None = None) -> list[HookResult]:
        """Stop taking jobs; report every queued job as not run; give the running one up to ``wait_s`` (default:
        the timeout plus 1 s), then kill its process group; return the outcomes not yet polled."""
        if not self._closed:
            self._closed = True
            self._drain_pending("not run: the door stopped before it started")
            if self._thread is not None:
                self._jobs.put(None)
                self._thread.join(timeout=self.timeout_s + 1.0 if wait_s is None else wait_s)
                with self._lock:
                    running = self._running
                if running is not None:
                    _kill_group(running)
                    self._thread.join(timeout=2.0)
        return self.poll()

    def _drain_pending(self, why: str) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                self._results.put(HookResult(job, False, why, 0.0, self.action, NOT_RUN))

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self._closed:
                self._results.put(HookResult(job, False, "not run: the door stopped before it started", 0.0,
                                             self.action, NOT_RUN))
                continue
            waited = time.monotonic() - job.granted_at
            if waited > self.timeout_s:
                self._results.put(HookResult(job, False, f"expired: not started within {self.timeout_s:g} s of its "
                                             f"GRANT (waited {waited:.1f} s); not run", 0.0, self.action, EXPIRED))
                continue
            problem = name_problem(job.person)
            if problem is not None:
                self._results.put(HookResult(job, False, f"refused: person name {escape_text(job.person)!r}: "
                                             f"{problem}", 0.0, self.action, REFUSED))
                continue
            t0 = time.perf_counter()
            try:
                status, detail = self._run_command(job) if self.command else self._post(job)
            except Exception as exc:  # noqa: BLE001 - any failure is a value for the audit log, never a crash
                status, detail = FAILED, f"{type(exc).__name__}: {exc}"
            self._results.put(HookResult(job, status == OK, detail, time.perf_counter() - t0, self.action, status))

    def _run_command(self, job: HookJob) -> tuple[str, str]:
        become_subreaper()
        known = child_pids()
        with tempfile.TemporaryFile() as output:
            try:
                proc = subprocess.Popen(hook_argv(self.command, job), stdin=subprocess.DEVNULL, stdout=output,
                                        stderr=subprocess.STDOUT, env=hook_environment(job), shell=False,
                                        start_new_session=True)
            except OSError as exc:
                return FAILED, f"cannot run {self.command[0]!r}: {exc}"
            with self._lock:
                self._running = proc
            try:
                proc.wait(timeout=self.timeout_s)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                leftover = _kill_group(proc)
                leftover = kill_orphans(known) or leftover  # what it started in another session (setsid)
                with self._lock:
                    self._running = None
            output.seek(0)
            # escaped: a hook's output must not reach the terminal as control sequences or forged lines
            text = escape_text(output.read(4 * OUTPUT_CHARS).decode("utf-8", "replace").strip())[:OUTPUT_CHARS]
        if timed_out:
            return TIMED_OUT, f"timed out after {self.timeout_s:g} s (its process group was killed)"
        detail = f"exit status {proc.returncode}" + (f": {text}" if text else "")
        if leftover:
            detail += " (processes it left running were killed)"
        return (OK if proc.returncode == 0 else FAILED), detail

    def _post(self, job: HookJob) -> tuple[str, str]:
        """The POST on a helper thread, waited for at most ``timeout_s`` as a whole (urllib's own timeout is per
        socket operation: a server that sends a header line a second would never trip it)."""
        box: list[tuple[str, str]] = []
        helper = threading.Thread(target=lambda: box.append(self._post_once(job)), name="door-hook-post",
                                  daemon=True)
        helper.start()
        helper.join(self.timeout_s)
        if not box:
            return TIMED_OUT, f"timed out after {self.timeout_s:g} s (the request was abandoned)"
        return box[0]

    def _post_once(self, job: HookJob) -> tuple[str, str]:
        body = json.dumps({"event": "grant", "person": job.person, "door_id": job.door_id,
                           "audit_seq": job.audit_seq,
                           "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}).encode("utf-8")
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - scheme checked
                status = response.status
        except urllib.error.HTTPError as exc:
            return FAILED, f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return FAILED, f"POST failed: {reason}"
        return (OK if 200 <= status < 300 else FAILED), f"HTTP {status}"


PR_SET_CHILD_SUBREAPER = 36
_subreaper = False


def become_subreaper() -> bool:
    """Linux: make this process the child subreaper of everything it starts, so a hook's grandchild that left its
    process group (``setsid``) is reparented here instead of to init, and :func:`kill_orphans` can find it."""
    global _subreaper
    if not _subreaper:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            _subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        except (OSError, AttributeError):
            _subreaper = False
    return _subreaper


def child_pids() -> set[int]:
    """PIDs of this process's children (from /proc; empty where there is none)."""
    me = os.getpid()
    found = set()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                text = fh.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[1].isdigit() and int(fields[1]) == me:
            found.add(int(entry))
    return found


def kill_orphans(known: set[int], rounds: int = 20) -> bool:
    """SIGKILL and reap every child of this process not in ``known`` (a hook's descendants, reparented here by
    the subreaper), round after round until none is left (a killed one's own children are reparented next).
    True when there was one."""
    killed = False
    for _ in range(rounds):
        extra = child_pids() - known
        if not extra:
            break
        for pid in extra:
            try:
                os.kill(pid, signal.SIGKILL)
                killed = True
            except (ProcessLookupError, PermissionError):
                pass
        for pid in extra:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
    return killed


def _kill_group(proc: subprocess.Popen) -> bool:
    """SIGKILL the process group of ``proc`` (made with ``start_new_session``) and reap ``proc``. True when some
    process of the group was still there to kill."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
        found = True
    except (ProcessLookupError, PermissionError):
        found = False
    try:
        proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        pass
    return found
