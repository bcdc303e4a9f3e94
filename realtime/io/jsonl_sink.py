"""The JSONL sidecar: :class:`JsonlWriter` (one JSON object per line, crash- and disk-full-safe) and
:class:`JsonlSink` (one record per frame, then the end line). The records themselves are built in
:mod:`realtime.serialize`; this module only writes them."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from realtime.errors import SinkError
from realtime.io.interrupts import finalising
from realtime.io.sink import SinkBase, partial_path, why
from realtime.serialize import DEFAULT_DECIMALS, RunHeader, end_record, header_record, packet_record
from realtime.types import FramePacket, RunResult


class JsonlWriter:
    """One JSON object per line, written to ``<name>.partial`` and renamed on close; flushed every ``flush_every``
    records so a killed run keeps what it wrote.

    A write that fails (disk full) raises :class:`SinkError` and cuts the file back to its last whole line. A
    small reserve file (``<name>.partial.reserve``, :data:`RESERVE_BYTES`) is held while writing and given back
    for the last line (:meth:`write_last`), so the end line can still be written on a full disk.
    """

    RESERVE_BYTES = 64 * 1024

    def __init__(self, path: Path | str, flush_every: int = 30):
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            raise SinkError(f"output folder does not exist: {self.path.parent}")
        self._tmp = partial_path(self.path)
        self._reserve = self._tmp.with_name(self._tmp.name + ".reserve")
        try:
            self._handle = open(self._tmp, "wb")
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {why(exc)}") from exc
        try:
            _allocate(self._reserve, self.RESERVE_BYTES)
        except OSError as exc:
            self._handle.close()
            self._tmp.unlink(missing_ok=True)
            raise SinkError(f"cannot write {self.path}: {why(exc)} (no room for even {self.RESERVE_BYTES} "
                            "bytes)") from exc
        self._flush_every = flush_every
        self._pending: list[bytes] = []
        self._good = 0  # bytes of whole lines known to be written
        self.failed: str | None = None
        self.records = 0
        self._done = False

    def _flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        try:
            self._handle.write(data)
            self._handle.flush()
        except OSError as exc:
            self.failed = why(exc)
            self._cut_back()
            raise SinkError(f"writing {self.path} failed: {self.failed}") from exc
        self._good += len(data)

    def _cut_back(self) -> None:
        """Back to the last whole line: a failed write may leave half a line, in Python's buffer or on disk."""
        try:
            self._handle.close()
        except OSError:
            pass
        try:
            os.truncate(self._tmp, self._good)
            self._handle = open(self._tmp, "ab")
        except OSError:
            self._handle = None

    def write(self, record: dict[str, Any]) -> None:
        if self.failed is not None:
            raise SinkError(f"writing {self.path} failed: {self.failed}")
        self._pending.append((json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8"))
        self.records += 1
        if self.records % self._flush_every == 0:
            self._flush()

    def write_last(self, record: dict[str, Any]) -> None:
        """The last line (the end record): written even after a failed write when the reserve makes room for it.
        :class:`SinkError` when even that fails (the file then ends with its last whole line)."""
        with finalising():
            self._reserve.unlink(missing_ok=True)
            if self._handle is None:
                raise SinkError(f"writing {self.path} failed: {self.failed}")
            if self.failed is not None:
                self._pending.clear()
            self._pending.append((json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8"))
            self.records += 1
            failed_before, self.failed = self.failed, None
            try:
                self._flush()
            finally:
                self.failed = self.failed or failed_before

    def close(self) -> None:
        """Write what is pending, rename to the final name; safe twice. A failed flush here still publishes the
        whole lines written before it, then raises :class:`SinkError`."""
        if self._done:
            return
        self._done = True
        with finalising():
            error = None
            try:
                self._flush()
            except SinkError as exc:
                error = exc
            if self._handle is not None:
                try:
                    self._handle.close()
                except OSError:
                    pass
            self._handle = None
            self._reserve.unlink(missing_ok=True)
            os.replace(self._tmp, self.path)
            if error is not None:
                raise error

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _allocate(path: Path, size: int) -> None:
    """A file of ``size`` bytes whose blocks are really allocated (OSError when the disk cannot hold it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except (AttributeError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            os.write(fd, b"\0" * size)
            os.fsync(fd)
    except OSError:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


class JsonlSink(SinkBase):
    """The header line (:func:`realtime.serialize.header_record`, when a ``header`` is given), one
    :func:`realtime.serialize.packet_record` per frame (coordinates with ``header.decimals`` decimals, else
    ``decimals``: ``output.jsonl_decimals``), then :func:`realtime.serialize.end_record` when the run finishes.
    The header is written with the first frame (so it can give that frame's size) or at the end of a run without
    frames. ``source``: the file name every frame row carries (photos and many-input runs), none when None."""

    def __init__(self, path: Path | str, decimals: int = DEFAULT_DECIMALS, header: RunHeader | None = None,
                 source: str | None = None):
        self.writer = JsonlWriter(path)
        self.decimals = int(header.decimals if header is not None else decimals)
        self._header = header
        self._extra = None if source is None else {"source": source}

    def _write_header(self, frame_wh: tuple[int, int] | None) -> None:
        if self._header is not None:
            header, self._header = self._header, None
            self.writer.write(header_record(header, frame_wh))

    def write(self, packet: FramePacket, display_bgr: np.ndarray | None) -> None:
        self._write_header((packet.frame_bgr.shape[1], packet.frame_bgr.shape[0]))
        self.writer.write(packet_record(packet, self.decimals, self._extra))

    def finish(self, result: RunResult) -> None:
        try:
            self._write_header(None)
        finally:
            self.writer.write_last(end_record(result))

    def close(self) -> None:
        self.writer.close()
