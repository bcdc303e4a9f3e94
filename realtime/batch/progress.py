"""The batch's progress on the terminal: one tqdm bar (frames, with the inputs finished as its postfix and an ETA)
and a line per finished input."""

from __future__ import annotations

import sys
from typing import Any

from realtime.batch.run import Reporter
from realtime.batch.worker import Job


def format_record(record: dict[str, Any]) -> str:
    """One line for a finished input: status, name, frames, seconds, and the error if any."""
    status = record["status"]
    text = f"{status:<11} {record['name']}"
    if status in ("done", "skipped", "interrupted", "failed") and record.get("frames"):
        text += f"  {record['frames']} frames"
    if record.get("seconds"):
        text += f"  {record['seconds']:.1f} s"
    if record.get("error"):
        text += f"  ({record['error']})"
    return text


class ProgressBar(Reporter):
    """tqdm on stderr; ``enabled`` False prints only the per-input lines."""

    def __init__(self, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr  # looked up now, not when the module loaded
        self._bar = None
        self._inputs = 0
        self._finished = 0
        self._started: set[str] = set()

    def begin(self, inputs: int, to_run: int, frames: int) -> None:
        self._inputs = inputs
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=frames or None, unit="frame", desc="batch", dynamic_ncols=True,
                             file=self.stream, leave=True)
            self._postfix()

    def _postfix(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self._finished}/{self._inputs} inputs", refresh=True)

    def started(self, job: Job, worker: Any) -> None:
        self._started.add(job.name)

    def frames(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def finished(self, record: dict[str, Any]) -> None:
        self._finished += 1
        short = (record.get("expected_frames") or 0) - record["frames"]
        if self._bar is not None and self._bar.total and record["name"] in self._started and short > 0:
            self._bar.total -= short  # an input that ended early: keep the ETA honest
        self.note(format_record(record))
        self._postfix()

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
