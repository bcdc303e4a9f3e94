"""Doors inside the service: each runs door mode (:func:`realtime.door.mode.run_door`: the same policy, gallery
watch and audit log as ``rtv door``) on its own thread, without a window.

The service taps each door's frames (the latest one, for the console's snapshot) and can stop it (the door then
writes its stop record). ``loop``: a video file starts again at its end (a stand-in camera for trials and tests).
Committed audit records of the doors are handed to :class:`EventsOut` (MQTT, webhooks) by one tail thread.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from realtime.config import Config

log = logging.getLogger(__name__)


class DoorStopped(KeyboardInterrupt):
    """The service stops a door that is waiting for its camera: raised where the door reopens the camera, so the
    door ends as on Ctrl-C (its stop record says "interrupted") instead of retrying forever."""


class TapReader:
    """Wraps a frame reader: keeps the latest frame, ends when stopped (raises :class:`DoorStopped` when asked to
    reopen after the stop), optionally loops a file."""

    def __init__(self, reader, stop: threading.Event, loop: bool = False) -> None:
        self.reader = reader
        self.kind, self.live, self.description = reader.kind, reader.live, reader.description
        self._stop = stop
        self._loop = loop
        self._offset = 0.0
        self._last_t = 0.0
        self.latest: np.ndarray | None = None
        self.frames = 0
        self._lock = threading.Lock()

    # the rest of the FrameReader protocol: what the wrapped reader knows once open (a looped file has no end)
    @property
    def fps(self) -> float:
        return self.reader.fps

    @property
    def expected_frames(self) -> int:
        return 0 if self._loop else self.reader.expected_frames

    @property
    def size_wh(self) -> tuple[int, int]:
        return self.reader.size_wh

    def open(self) -> None:
        if self._stop.is_set():
            raise DoorStopped("the service is stopping")
        self.reader.open()

    def read(self):
        from realtime.io.capture import RawFrame

        if self._stop.is_set():
            return None
        raw = self.reader.read()
        if raw is None and self._loop and not self._stop.is_set() and self.frames:
            self.reader.close()
            self.reader.open()
            self._offset = self._last_t + 0.1
            raw = self.reader.read()
        if raw is None:
            return None
        t = raw.t_source + self._offset
        self._last_t = t
        with self._lock:
            self.latest = raw.frame_bgr
            self.frames += 1
        return RawFrame(raw.frame_bgr, t)

    def close(self) -> None:
        self.reader.close()

    def latest_frame(self) -> tuple[int, np.ndarray | None]:
        """``(frames read so far, the latest frame)``; the frame is never written to, so no copy is needed."""
        with self._lock:
            return self.frames, self.latest

    def snapshot_jpeg(self) -> bytes | None:
        import cv2

        with self._lock:
            frame = self.latest
        if frame is None:
            return None
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
        return data.tobytes() if ok else None


@dataclass
class Door:
    door_id: str
    source: str
    thread: threading.Thread | None = None
    tap: TapReader | None = None
    state: str = "starting"
    error: str = ""
    decisions: deque = dataclasses.field(default_factory=lambda: deque(maxlen=10))


class DoorRunner:
    """Runs ``specs`` (``(door_id, source)``) as doors; :meth:`stop` ends them and waits for their stop records."""

    def __init__(self, config: Config, specs, loop: bool = False, events=None) -> None:
        from realtime.serve.adminlog import door_log_path

        ids = [d for d, _ in specs]
        if len(set(ids)) != len(ids):
            from realtime.errors import ConfigError

            raise ConfigError(f"door ids must differ, got {ids}")
        if "admin" in ids:
            from realtime.errors import ConfigError

            raise ConfigError("a door cannot be called 'admin' (the name of the service's own audit log)")
        self.config = config
        self.audit_paths = {d: door_log_path(config, d, len(ids)) for d in ids}  # a door owns its log
        self.loop = loop
        self.doors = {d: Door(d, s) for d, s in specs}
        self.events = events
        self._stop = threading.Event()
        self._tail: threading.Thread | None = None
        self._start_seq: dict[str, int] = {}

    def _key(self):
        from realtime.door.audit import load_key

        return load_key(self.config.door.audit_key_file) if self.config.door.audit_key_file else None

    def _last_seq(self, path) -> int:
        from pathlib import Path

        from realtime.door.audit import AuditLog

        if not Path(path).exists():
            return 0
        with AuditLog.open(path, create=False, key=self._key()) as audit:
            return max((r["seq"] for r in audit.records()), default=0)

    def start(self) -> None:
        self._start_seq = {d: self._last_seq(p) for d, p in self.audit_paths.items()}
        for door in self.doors.values():
            door.thread = threading.Thread(target=self._run, args=(door,), name=f"door-{door.door_id}", daemon=True)
            door.thread.start()
        self._tail = threading.Thread(target=self._tail_audit, name="door-events", daemon=True)
        self._tail.start()

    def _run(self, door: Door) -> None:
        from realtime.door.mode import run_door
        from realtime.io.capture import Source, make_reader

        config = dataclasses.replace(self.config, door=dataclasses.replace(
            self.config.door, door_id=door.door_id, audit=str(self.audit_paths[door.door_id])))
        try:
            reader = make_reader(door.source, config.source)
            door.tap = TapReader(reader, self._stop, loop=self.loop)
            door.state = "running"
            if self.events is not None:
                self.events.availability(door.door_id, True)
            outcome = run_door(config, source=Source(door.tap, config.source), show_window=False,
                               echo=lambda text: log.info("door %s: %s", door.door_id, text))
            door.state = "stopped" if self._stop.is_set() else f"ended ({outcome.result.reason})"
        except DoorStopped:
            door.state = "stopped"
        except Exception as exc:  # noqa: BLE001 - the door's error is shown on the console and logged
            door.state, door.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("door %s failed: %s", door.door_id, door.error)
        finally:
            if self.events is not None:
                self.events.availability(door.door_id, False)

    def _tail_audit(self) -> None:
        """Hand every new record of each door's log to the events (once committed), and keep its decisions."""
        from pathlib import Path

        from realtime.door.audit import AuditLog

        key = self._key()
        last = {d: (self._start_seq.get(d, 0), None) for d in self.doors}
        while True:
            stopping = self._stop.is_set() and not any(d.thread and d.thread.is_alive() for d in self.doors.values())
            for door_id, path in self.audit_paths.items():
                if not Path(path).exists():
                    continue
                seq, ts = last[door_id]
                try:
                    with AuditLog.open(path, create=False, key=key) as audit:
                        records = list(audit.records(since=ts, with_faces=True))  # only the tail, by time
                except Exception as exc:  # noqa: BLE001 - a busy log is read again on the next round
                    log.debug("audit tail %s: %s", path, exc)
                    continue
                door = self.doors[door_id]
                for rec in records:
                    if rec["seq"] <= seq:
                        continue
                    seq, ts = rec["seq"], rec["ts"]
                    face = rec.pop("face_jpeg", None)
                    if rec["kind"] == "decision":
                        door.decisions.appendleft(dict(rec, has_face=bool(face)))
                    if self.events is not None:
                        self.events.publish(rec)
                last[door_id] = (seq, ts)
            if stopping:
                return
            time.sleep(0.2)

    def status(self) -> list[dict]:
        return [{"id": d.door_id, "source": d.source, "state": d.state, "error": d.error,
                 "frames": 0 if d.tap is None else d.tap.frames,
                 "decisions": [{"seq": r["seq"], "ts": r["ts"], "decision": r["decision"], "person": r["person"],
                                "reason": r["reason"], "has_face": r.get("has_face", False)}
                               for r in list(d.decisions)]}
                for d in self.doors.values()]

    def capture(self, door_id: str, usable, shots: int = 3, gap_s: float = 0.4, timeout_s: float = 20.0
                ) -> tuple[list, str]:
        """Up to ``shots`` frames of the door's camera, at least ``gap_s`` apart, that ``usable(frame)`` accepts
        (it returns None, or why not), within ``timeout_s``: ``([(source, frame)], last reason)``."""
        from realtime.errors import ConfigError

        door = self.doors.get(door_id)
        if door is None or door.tap is None:
            raise ConfigError(f"no running door {door_id!r}")
        kept, reason, last_index = [], "no frame yet", -1
        deadline = time.monotonic() + timeout_s
        while len(kept) < shots and time.monotonic() < deadline:
            index, frame = door.tap.latest_frame()
            if frame is None or index == last_index:
                time.sleep(0.05)
                continue
            last_index = index
            why = usable(frame)
            if why is None:
                kept.append((f"door {door_id} frame {index}", frame))
                time.sleep(gap_s)
            else:
                reason = why
        return kept, reason

    def snapshot(self, door_id: str) -> bytes | None:
        door = self.doors.get(door_id)
        return None if door is None or door.tap is None else door.tap.snapshot_jpeg()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        for door in self.doors.values():
            if door.thread is not None:
                door.thread.join(timeout_s)
        if self._tail is not None:
            self._tail.join(timeout_s)
        if self.events is not None:
            self.events.close()
