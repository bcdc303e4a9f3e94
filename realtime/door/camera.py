"""A door's camera that is allowed to come back: a lost live source is an alarm, then reopened until it returns.

The capture :class:`realtime.io.capture.Source` already retries a failing camera ``source.reconnect_attempts``
times. When it gives up (or stalls), :class:`ResilientSource` reports an alarm, keeps the door locked (no frames, so
nothing is decided), and goes on reopening with capped exponential backoff (``source.reconnect_backoff_s`` doubling
up to ``source.reconnect_backoff_max_s``) until frames come again (a recovery), or until the camera has been down
for ``door.max_camera_down_s`` (0: forever), when the door stops with the error. Files are not reopened: a file
that fails is damage, and the run ends as before.

Packets after a reconnect are renumbered so ``index`` and ``t_source`` keep increasing (the policy's votes and
cooldowns rely on that).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable

from realtime.errors import SourceError
from realtime.io.capture import Source, SourceStats
from realtime.types import FramePacket, SourceInfo

log = logging.getLogger(__name__)


class ResilientSource:
    """Wraps a not-yet-started :class:`Source`; the same consumer interface (:class:`realtime.types.FrameSource`:
    ``policy``, ``info``, ``stats``, ``frame_ready``, ``next_packet``; a context manager). ``on_lost(reason)`` and ``on_back(reason)`` are called on the caller's thread (the audit
    log is written there)."""

    def __init__(self, source: Source, on_lost: Callable[[str], None], on_back: Callable[[str], None],
                 max_down_s: float = 0.0, make_source: Callable[[], Source] | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self._source = source
        self._make = make_source or (lambda: Source(source.reader, source.config))
        self._on_lost = on_lost
        self._on_back = on_back
        self.max_down_s = float(max_down_s)
        self._clock = clock
        self._sleep = sleep
        self.stats = SourceStats()
        self._base = SourceStats()
        self._index_offset = 0
        self._t_offset = 0.0
        self._last_index = -1
        self._last_t = 0.0
        self.outages = 0

    @property
    def reader(self):
        return self._source.reader

    def start(self) -> "ResilientSource":
        """Open the source (a failure at start raises here: the door does not start on a dead camera)."""
        self._source.start()
        return self

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> "ResilientSource":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def policy(self) -> str:
        """The wrapped source's hand-over policy (the run loop keeps one frame in flight for a live one)."""
        return self._source.policy

    @property
    def info(self) -> SourceInfo:
        """What the current source says about itself."""
        return self._source.info

    def frame_ready(self) -> bool:
        """Whether :meth:`next_packet` would return at once."""
        return self._source.frame_ready()

    def next_packet(self) -> FramePacket | None:
        try:
            packet = self._source.next_packet()
        except SourceError as exc:
            if not self.reader.live:
                raise
            packet = self._recover(str(exc))
        if packet is None:
            return None
        return self._renumber(packet)

    def _renumber(self, packet: FramePacket) -> FramePacket:
        packet = dataclasses.replace(packet, index=packet.index + self._index_offset,
                                     t_source=float(packet.t_source) + self._t_offset)
        self._last_index, self._last_t = packet.index, float(packet.t_source)
        inner = self._source.stats
        self.stats.read = self._base.read + inner.read
        self.stats.dropped = self._base.dropped + inner.dropped
        self.stats.reconnects = self._base.reconnects + inner.reconnects
        return packet

    def _recover(self, error: str) -> FramePacket:
        """Alarm, then reopen with capped backoff until a frame comes (recovery) or ``max_down_s`` runs out."""
        self.outages += 1
        down_since = self._clock()
        self._on_lost(f"camera lost: {error}; door locked, reconnecting"
                      + (f" for up to {self.max_down_s:g} s" if self.max_down_s > 0 else " until it is back"))
        self._retire()
        config = self._source.config
        delay = max(0.01, config.reconnect_backoff_s)
        cap = max(delay, config.reconnect_backoff_max_s)
        attempt = 0
        while True:
            down = self._clock() - down_since
            if self.max_down_s > 0 and down >= self.max_down_s:
                raise SourceError(f"camera down for {down:.0f} s, beyond door.max_camera_down_s="
                                  f"{self.max_down_s:g} (last error: {error})")
            wait = delay if self.max_down_s <= 0 else min(delay, max(0.0, self.max_down_s - down))
            self._sleep(wait)
            delay = min(delay * 2, cap)
            attempt += 1
            source = self._make()
            try:
                source.start()
                packet = source.next_packet()
            except SourceError as exc:
                source.close()
                error = str(exc)
                log.warning("camera still down (attempt %d): %s", attempt, exc)
                continue
            if packet is None:
                source.close()
                error = f"{source.reader.description}: ended right after reopening"
                continue
            self._source = source
            down = self._clock() - down_since
            # Continue the clocks: indices after the last one, source time advanced by the time it was down.
            self._index_offset = self._last_index + 1 - packet.index
            self._t_offset = self._last_t + down - float(packet.t_source)
            self._on_back(f"camera back after {down:.1f} s down ({attempt} reopen attempt(s))")
            return packet

    def _retire(self) -> None:
        old = self._source.stats
        self._base.read += old.read
        self._base.dropped += old.dropped
        self._base.reconnects += old.reconnects + 1
        self._source.close()
