"""The gallery as a running door sees it: checked between frames, so a revocation takes effect on the next frame.

:class:`LiveGallery` holds one connection to the gallery file and, on each :meth:`LiveGallery.check`, looks at

* the file's identity ``(st_dev, st_ino)``: a file that disappeared or was replaced by another file (a copy moved
  over it, a restore) is an alarm; the door stays locked until the path holds a readable gallery again, which is
  then opened and read (a recovery);
* its size and modification time, and SQLite's ``PRAGMA data_version``: any commit by another process
  (``rtv gallery remove``, ``rtv enroll --replace``, ``rtv gallery access --deny``, an import) re-reads the
  embeddings and names;
* readability: an error while reading (corrupt, locked past the busy timeout, another model, an invalid name) is an
  alarm, and no GRANT until it reads again.

:class:`GalleryWatch` is the door pipeline's first stage: it runs the check, hands new embeddings to the recognition
stage (and forgets its tracks, so no vote cast against the old gallery counts) and puts the alarm (standing, while
locked) or the recovery into ``packet.decisions``; :class:`realtime.door.policy.DoorPolicy` grants nothing while a
gallery alarm stands. Access rules are read through :meth:`LiveGallery.access` at decision time, from the same
connection.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from realtime.door.events import DoorAlarm, DoorRecovery
from realtime.door.policy import Access
from realtime.errors import GalleryError
from realtime.face.recognition import FaceRecognition
from realtime.gallery.store import Gallery
from realtime.types import FramePacket

log = logging.getLogger(__name__)

REOPEN_EVERY_S = 0.25


@dataclass(frozen=True)
class GalleryEvent:
    """What a check found: ``kind`` "changed" (new embeddings), "alarm" (locked from now) or "recovered"."""

    kind: str
    reason: str


class LiveGallery:
    """A gallery file watched between frames. ``close()`` is safe twice. Use from one thread."""

    def __init__(self, path: str | os.PathLike, model_sha256: str, clock: Callable[[], float] = time.monotonic):
        self.path = Path(path)
        self.model_sha256 = model_sha256
        self._clock = clock
        self._gallery: Gallery | None = None
        self._identity: tuple[int, int] | None = None
        self._signature: tuple[int, int] | None = None
        self._version: int | None = None
        self.vectors: np.ndarray = np.zeros((0, 0), np.float32)
        self.labels: np.ndarray = np.zeros(0, dtype=str)
        self.problem: str | None = None
        self._next_reopen = 0.0

    @property
    def locked(self) -> bool:
        """True while the gallery is missing, replaced or unreadable (no GRANT)."""
        return self.problem is not None

    def open(self) -> None:
        """Open and read the gallery; :class:`GalleryError` when it cannot be (door mode does not start)."""
        self._open()

    def _open(self) -> None:
        self._close_gallery()
        st = os.stat(self.path)
        gallery = Gallery.open(self.path, model_sha256=self.model_sha256, create=False)
        try:
            gallery.check_names()
            vectors, labels = gallery.vectors(refresh=True)
            version = gallery.data_version()
        except BaseException:
            gallery.close()
            raise
        self._gallery = gallery
        self._identity = (st.st_dev, st.st_ino)
        self._signature = (st.st_size, st.st_mtime_ns)
        self._version = version
        self.vectors, self.labels = vectors, labels

    def check(self) -> list[GalleryEvent]:
        """Look at the file once (cheap: one ``stat`` and one pragma when nothing changed); what changed."""
        if self.locked:
            return self._try_recover()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return [self._lock(f"gallery {self.path} disappeared")]
        except OSError as exc:
            return [self._lock(f"gallery {self.path} cannot be looked at ({exc.strerror or exc})")]
        if (st.st_dev, st.st_ino) != self._identity:
            events = [self._lock(f"gallery {self.path} was replaced by another file")]
            return events + self._try_recover(force=True)
        signature = (st.st_size, st.st_mtime_ns)
        try:
            gallery = self._require()
            version = gallery.data_version()
            if version == self._version and signature == self._signature:
                return []
            if signature != self._signature:
                # The file itself changed (a checkpoint, or a write that did not go through SQLite): open it
                # afresh, so its header and pages are read from disk and checked.
                self._open()
            else:
                gallery.check_names()
                self.vectors, self.labels = gallery.vectors(refresh=True)
                self._version = version
        except (GalleryError, OSError) as exc:
            return [self._lock(f"gallery unreadable: {exc}")]
        labels = self.labels
        return [GalleryEvent("changed", f"gallery changed: {len(set(labels.tolist()))} person(s), "
                                        f"{len(labels)} embedding(s)")]

    def access(self, name: str) -> Access:
        """``name``'s access now (allowed, schedule); :class:`GalleryError` while locked or when not enrolled."""
        if self.locked:
            raise GalleryError(f"gallery unavailable ({self.problem})")
        for person in self._require().persons():
            if person.name == name:
                return Access(person.allowed, person.schedule)
        raise GalleryError(f"{name!r} is no longer in the gallery")

    def close(self) -> None:
        self._close_gallery()

    # -- internals
    def _require(self) -> Gallery:
        if self._gallery is None:
            raise GalleryError(f"gallery {self.path} is not open")
        return self._gallery

    def _lock(self, reason: str) -> GalleryEvent:
        self.problem = reason
        self.vectors = np.zeros((0, self.vectors.shape[1] if self.vectors.ndim == 2 else 0), np.float32)
        self.labels = np.zeros(0, dtype=str)
        self._close_gallery()
        self._next_reopen = self._clock()
        log.info("door locked: %s", reason)
        return GalleryEvent("alarm", f"{reason}; door locked (no GRANT) until it is readable again")

    def _try_recover(self, force: bool = False) -> list[GalleryEvent]:
        now = self._clock()
        if not force and now < self._next_reopen:
            return []
        self._next_reopen = now + REOPEN_EVERY_S
        try:
            self._open()
        except (GalleryError, OSError) as exc:
            log.debug("gallery still unavailable: %s", exc)
            return []
        was, self.problem = self.problem, None
        return [GalleryEvent("recovered", f"gallery readable again ({len(set(self.labels.tolist()))} person(s), "
                                          f"{len(self.labels)} embedding(s)) after: {was}")]

    def _close_gallery(self) -> None:
        gallery, self._gallery = self._gallery, None
        if gallery is not None:
            gallery.close()


class GalleryWatch:
    """Stage "gallery", first in the door pipeline: :meth:`LiveGallery.check` between frames, new embeddings into
    the recognition stage, the alarm (``new`` on the frame it starts, standing after) or recovery into the packet."""

    name = "gallery"

    pure = False
    fail_soft = False

    def __init__(self, live: LiveGallery, recognizer: FaceRecognition) -> None:
        self.live = live
        self.recognizer = recognizer
        self._standing: DoorAlarm | None = None

    def __call__(self, packet: FramePacket) -> FramePacket:
        events = self.live.check()
        items: list = []
        for event in events:
            if event.kind == "alarm":
                self._standing = DoorAlarm("gallery", event.reason, packet.index, new=True)
                items.append(self._standing)
            elif event.kind == "recovered":
                self._standing = None
                items.append(DoorRecovery("gallery", event.reason, packet.index))
        if events:
            self._load()
        if self._standing is not None and not any(isinstance(i, DoorAlarm) for i in items):
            items.append(dataclasses.replace(self._standing, frame_index=packet.index, new=False))
        if not items:
            return packet
        return dataclasses.replace(packet, decisions=tuple(packet.decisions) + tuple(items))

    def _load(self) -> None:
        """Give the recognition stage the current embeddings (it forgets its tracks: votes start over)."""
        self.recognizer.replace_gallery(self.live.vectors, self.live.labels)

    def reset(self) -> None:
        """Nothing per video to forget: a standing alarm is about the gallery, and stays until it reads again."""

    def close(self) -> None:
        self.live.close()
