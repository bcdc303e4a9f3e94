"""Door access schedules stored with a person: ``[{"days": "mon-fri", "start": "07:00", "end": "20:00"}, ...]``."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Mapping, Sequence

from realtime.errors import GalleryError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM_RE = re.compile(r"^(\d{2}):(\d{2})$")


def parse_days(spec: str) -> frozenset[int]:
    """Day set of a schedule's ``days``: ``"mon-fri"``, ``"sat,sun"``, ``"fri-mon"`` (wraps), ``"daily"``.

    Returns weekday numbers as :meth:`datetime.weekday` gives them (Monday 0 .. Sunday 6).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise GalleryError(f"schedule days must be text like 'mon-fri' or 'sat,sun', got {spec!r}")
    text = spec.strip().lower()
    if text in ("daily", "all", "*"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        ends = [p.strip()[:3] for p in part.split("-")]
        if len(ends) not in (1, 2) or any(e not in DAY_NAMES for e in ends):
            raise GalleryError(f"schedule days {spec!r}: cannot read {part.strip()!r}; use names "
                               f"{', '.join(DAY_NAMES)}, ranges like 'mon-fri', commas, or 'daily'")
        first, last = DAY_NAMES.index(ends[0]), DAY_NAMES.index(ends[-1])
        days.update((first + i) % 7 for i in range((last - first) % 7 + 1))
    return frozenset(days)


def _minutes(value: Any, field: str, allow_24: bool) -> int:
    match = _HHMM_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise GalleryError(f"schedule {field} must be 'HH:MM', got {value!r}")
    hours, minutes = int(match.group(1)), int(match.group(2))
    total = hours * 60 + minutes
    if minutes > 59 or total > (1440 if allow_24 else 1439):
        raise GalleryError(f"schedule {field} {value!r} is not a time of day (00:00 to 23:59"
                           + (", or 24:00" if allow_24 else "") + ")")
    return total


def validate_schedule(schedule: Any) -> list[dict[str, str]] | None:
    """Check a schedule and return it as a list of ``{"days", "start", "end"}`` dicts (None stays None).

    A window allows ``start <= t < end`` on its days, local time; when ``end`` is earlier than ``start`` the window
    runs past midnight into the next day (``{"days": "fri", "start": "22:00", "end": "02:00"}`` is Friday 22:00 to
    Saturday 02:00). ``end`` may be ``"24:00"``. An empty list allows no time at all.
    """
    if schedule is None:
        return None
    if not isinstance(schedule, (list, tuple)):
        raise GalleryError(f"a schedule must be a list of windows like "
                           f"[{{\"days\": \"mon-fri\", \"start\": \"07:00\", \"end\": \"20:00\"}}], got {schedule!r}")
    windows = []
    for window in schedule:
        if not isinstance(window, Mapping) or set(window) != {"days", "start", "end"}:
            raise GalleryError(f"schedule window {window!r} must have exactly the keys days, start, end")
        parse_days(window["days"])
        start = _minutes(window["start"], "start", allow_24=False)
        end = _minutes(window["end"], "end", allow_24=True)
        if start == end:
            raise GalleryError(f"schedule window {dict(window)!r} is empty (start equals end)")
        windows.append({"days": window["days"].strip().lower(), "start": window["start"], "end": window["end"]})
    return windows


def schedule_allows(schedule: Sequence[Mapping[str, str]] | None, when: datetime) -> bool:
    """Whether local time ``when`` falls in one of the windows of a (validated) schedule. None allows any time."""
    if schedule is None:
        return True
    day = when.weekday()
    minute = when.hour * 60 + when.minute
    for window in schedule:
        days = parse_days(window["days"])
        start = _minutes(window["start"], "start", allow_24=False)
        end = _minutes(window["end"], "end", allow_24=True)
        if start < end:
            if day in days and start <= minute < end:
                return True
        elif (day in days and minute >= start) or ((day - 1) % 7 in days and minute < end):
            return True
    return False
