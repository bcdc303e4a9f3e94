"""SIGTERM and SIGHUP end a run the way Ctrl-C does, and nothing interrupts the finalising that follows.

Inside :func:`stop_signals`, the first SIGINT, SIGTERM or SIGHUP raises :class:`Stopped` (a ``KeyboardInterrupt``,
so every ``except KeyboardInterrupt`` and ``finally`` that finalises outputs, writes the JSONL end line or the door's
stop record runs as for Ctrl-C). Later signals only print that outputs are being finalised: a second Ctrl-C cannot
abandon a half-written MP4. The exit code is 128 + the first signal's number (130, 143, 129), as shells report it.
A signal that arrives while a writer finalises (inside :func:`finalising`) is held until it is done; the run loop
also hands each frame to all its outputs inside :func:`finalising`, so a stop never leaves a frame in one output
and not in another (or not counted in the end line).
SIGKILL cannot be caught: outputs then stay as ``.partial`` files and the audit log keeps its last committed record.

The CLI enters :func:`stop_signals` once around a command; library code only marks its finalising sections.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator

HANDLED = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None),
                            getattr(signal, "SIGHUP", None)) if s is not None)

_first: list[int] = []
_pending: list[int] = []
_finalising = [0]


class Stopped(KeyboardInterrupt):
    """Raised on the main thread by the first stop signal; ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def first_signal() -> int | None:
    """The signal that stopped this run, or None."""
    return _first[0] if _first else None


def exit_code_for_interrupt() -> int:
    """128 + the stopping signal's number; 130 (SIGINT) when the interrupt came some other way."""
    return 128 + (first_signal() or int(signal.SIGINT))


def stop_reason(exc: BaseException) -> str:
    """The run's end reason for a ``KeyboardInterrupt``: "terminated" for SIGTERM/SIGHUP, else "interrupted"
    (the values of ``realtime.types.EndReason``)."""
    signum = getattr(exc, "signum", None)
    return "terminated" if signum is not None and signum != signal.SIGINT else "interrupted"


def _handler(signum: int, _frame) -> None:
    if _first:
        print(f"rtv: {signal.Signals(signum).name} again: still finalising outputs, please wait", file=sys.stderr)
        return
    _first.append(signum)
    if _finalising[0]:
        _pending.append(signum)
        return
    raise Stopped(signum)


@contextlib.contextmanager
def finalising() -> Iterator[None]:
    """Hold a stop signal while the block runs (closing an MP4, renaming a file, writing an end line) and raise
    it after the block, so finalising is never cut in half. Nests; safe on any thread (holds nothing there)."""
    _finalising[0] += 1
    try:
        yield
    finally:
        _finalising[0] -= 1
    if _finalising[0] == 0 and _pending and threading.current_thread() is threading.main_thread():
        raise Stopped(_pending.pop())


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Handle SIGINT/SIGTERM/SIGHUP as above while the block runs. After it, the previous handlers come back,
    unless a stop signal came: then these signals stay ignored while the process exits (a third Ctrl-C would
    otherwise kill it with a traceback after it finalised). Does nothing outside the main thread (Python
    delivers signals only there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _first.clear()
    _pending.clear()
    previous = {}
    for signum in HANDLED:
        try:
            previous[signum] = signal.signal(signum, _handler)
        except (OSError, ValueError):
            pass
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, signal.SIG_IGN if _first else old)
