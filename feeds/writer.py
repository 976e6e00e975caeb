"""One recording file being written: the header first (fsynced), then tick lines."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from feeds.recording import Header, RecordingError, StrPath, encode_header, encode_tick, is_gzip
from ticker.model import Tick

BUFFER_BYTES = 1 << 16
GZIP_LEVEL = 6  # zlib's default: level 9 costs twice the CPU for a few percent


class _Counting:
    """The raw file under a GzipFile, counting the compressed bytes that reach it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.written = 0

    def write(self, data: bytes) -> int:
        self.written += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


class RecordingWriter:
    """One recording file: the header goes out (and is fsynced) on open, ticks are appended.

    Not thread-safe: one thread owns it. ``size`` is the bytes on disk after the next flush
    (compressed bytes for ``.gz``, which lag while zlib buffers).
    """

    def __init__(self, path: StrPath, header: Header, *, exclusive: bool = False,
                 gz: bool | None = None) -> None:
        """``gz``: compress (default: if the name ends in .gz)."""
        self.path = Path(path)
        try:
            self._raw: IO[bytes] = open(self.path, "xb" if exclusive else "wb")  # noqa: SIM115
        except FileExistsError:
            raise
        except OSError as error:
            raise RecordingError(f"{self.path}: cannot write: {error.strerror or error}") from None
        self._counter: _Counting | None = None
        self._gzip: gzip.GzipFile | None = None
        self._plain_bytes = 0
        self._buffer: list[bytes] = []
        self._buffered = 0
        if is_gzip(self.path) if gz is None else gz:
            self._counter = _Counting(self._raw)
            self._gzip = gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL,
                                       fileobj=self._counter, mtime=0)
        self.ticks = 0
        self._write(encode_header(header))
        self.flush(fsync=True)
        _fsync_dir(self.path.parent)

    @property
    def size(self) -> int:
        if self._counter is not None:
            return self._counter.written
        return self._plain_bytes + self._buffered

    def write(self, ticks: Iterable[Tick]) -> None:
        for tick in ticks:
            self._write(encode_tick(tick))
            self.ticks += 1

    def write_tick(self, tick: Tick) -> None:
        self._write(encode_tick(tick))
        self.ticks += 1

    def _write(self, line: bytes) -> None:
        self._buffer.append(line)
        self._buffered += len(line)
        if self._buffered >= BUFFER_BYTES:
            self._drain()

    def _drain(self) -> None:
        """Hands the buffered lines over in one piece: one zlib call instead of one per line."""
        if not self._buffer:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        if self._gzip is not None:
            self._gzip.write(data)
        else:
            self._raw.write(data)
            self._plain_bytes += len(data)

    def flush(self, fsync: bool) -> None:
        """To the OS (a sync point in a gzip stream: readable up to here); to disk if fsync."""
        self._drain()
        if self._gzip is not None:
            self._gzip.flush()  # Z_SYNC_FLUSH, then flushes the raw file
        else:
            self._raw.flush()
        if fsync:
            os.fsync(self._raw.fileno())

    def close(self, fsync: bool = True) -> None:
        if self._raw.closed:
            return
        try:
            self._drain()
            if self._gzip is not None:
                self._gzip.close()  # writes the gzip trailer; leaves the raw file open
            self._raw.flush()
            if fsync:
                os.fsync(self._raw.fileno())
        finally:
            self._raw.close()


def _fsync_dir(directory: Path) -> None:
    """Makes a new file's directory entry durable too (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
