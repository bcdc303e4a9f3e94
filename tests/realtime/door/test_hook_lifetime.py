"""Unlock hook lifetime: jobs expire, a timed-out command dies with its whole process group, nothing outlives the
door, queued jobs at shutdown are reported as not run, and a name that could pass for an option is refused."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from realtime.door.hook import EXPIRED, NOT_RUN, OK, REFUSED, TIMED_OUT, HookJob, UnlockHook

# Starts a grandchild that would live for a minute, writes its pid, then (optionally) stays itself.
_SPAWNER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(sys.argv[1], "w").write(str(child.pid))
if sys.argv[2] == "stay":
    time.sleep(60)
"""


def _wait(hook, n=1, timeout=20.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got.extend(hook.poll())
        time.sleep(0.01)
    return got


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped is dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not _alive(pid)


def _spawner(tmp_path, mode):
    script = tmp_path / "spawner.py"
    script.write_text(_SPAWNER)
    pid_file = tmp_path / f"pid-{mode}"
    return [sys.executable, str(script), str(pid_file), mode], pid_file


def test_a_job_not_started_within_the_timeout_of_its_grant_expires(tmp_path):
    marker = tmp_path / "ran"
    hook = UnlockHook([sys.executable, "-c", f"open({str(marker)!r}, 'w')"], timeout_s=1.0)
    hook.submit(HookJob("ann", "d1", 5, granted_at=time.monotonic() - 30))
    (r,) = _wait(hook)
    hook.close()
    assert r.status == EXPIRED and not r.ok and "not started within 1 s" in r.detail
    assert not marker.exists()


def test_a_timed_out_command_is_killed_with_its_whole_process_group(tmp_path):
    argv, pid_file = _spawner(tmp_path, "stay")
    hook = UnlockHook(argv, timeout_s=1.5)
    hook.submit(HookJob("ann", "d1", 1))
    (r,) = _wait(hook)
    hook.close()
    assert r.status == TIMED_OUT and "process group was killed" in r.detail
    assert _gone(int(pid_file.read_text()))


def test_what_a_finished_command_left_running_is_killed(tmp_path):
    argv, pid_file = _spawner(tmp_path, "leave")
    hook = UnlockHook(argv, timeout_s=10)
    hook.submit(HookJob("ann", "d1", 1))
    (r,) = _wait(hook)
    hook.close()
    assert r.status == OK and r.ok and "left running were killed" in r.detail
    assert _gone(int(pid_file.read_text()))


def test_shutdown_reports_queued_jobs_and_leaves_no_child(tmp_path):
    argv, pid_file = _spawner(tmp_path, "stay")
    hook = UnlockHook(argv, timeout_s=30)
    for seq in (1, 2, 3):
        hook.submit(HookJob("ann", "d1", seq))
    deadline = time.monotonic() + 20
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    results = hook.close(wait_s=0.2)
    by_seq = {r.job.audit_seq: r for r in results}
    assert sorted(by_seq) == [1, 2, 3]
    assert by_seq[2].status == by_seq[3].status == NOT_RUN and "door stopped" in by_seq[2].detail
    assert not by_seq[1].ok
    assert _gone(int(pid_file.read_text()))
    assert hook.close() == []


def test_a_name_that_reads_as_an_option_or_forges_lines_is_never_passed(tmp_path):
    marker = tmp_path / "ran"
    hook = UnlockHook([sys.executable, "-c", f"open({str(marker)!r}, 'w')"], timeout_s=5)
    for seq, name in enumerate(["-rf", "--help", "ann\nGRANT bob", "eve\u202egnp", "x\u2028y"]):
        hook.submit(HookJob(name, "d1", seq))
    results = _wait(hook, 5)
    hook.close()
    assert [r.status for r in results] == [REFUSED] * 5
    assert not marker.exists() and not any(ch in r.detail for r in results for ch in "\n\u202e\u2028")
