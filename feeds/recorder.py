"""The server's Recorder, which never makes the event loop wait, and RecordingFeed, a tee.

Durability: ticks handed to :meth:`Recorder.write` reach the file, flushed to the OS and fsynced,
at most ``flush_interval`` (1 s) later. A killed process (``kill -9``) therefore loses at most the
last second; with ``fsync`` (the default) so does a power cut. See docs/recording.md.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from feeds.base import Feed
from feeds.recording import Header, RecordingError, StrPath, is_gzip, symbol_infos
from feeds.writer import RecordingWriter
from ticker.model import SymbolInfo, Tick

log = logging.getLogger("feeds.recorder")

FLUSH_INTERVAL = 1.0
WAKE_TICKS = 50_000  # queued ticks that wake the writer before its flush deadline
MAX_PENDING = 500_000  # queued ticks beyond which write() drops (and counts) rather than grow


def rotated_name(ts_ms: float, prefix: str, gz: bool) -> str:
    """``ticker-20261123T061500.123Z.jsonl``: UTC, millisecond resolution, sorts by time."""
    moment = datetime.fromtimestamp(ts_ms / 1000.0, UTC)
    stamp = moment.strftime("%Y%m%dT%H%M%S") + f".{moment.microsecond // 1000:03d}Z"
    return f"{prefix}-{stamp}.jsonl" + (".gz" if gz else "")


class Recorder:
    """Appends every batch the server publishes to rotating files in ``directory``.

    ``write`` only queues (it never touches the disk, so the event loop never waits on it); a
    writer thread encodes, writes, and flushes + fsyncs at most ``flush_interval`` after a tick was
    queued. A file is named after its first tick (:func:`rotated_name`) and rotates before the
    tick that would take it past ``rotate_bytes`` or across a multiple of ``rotate_seconds`` of
    tick time (3600: on the hour, UTC); None turns either off. If the disk cannot keep up and
    ``max_pending`` ticks are queued, further batches are dropped and counted in ``dropped``. If
    the writer thread fails, the next ``write`` (and ``close``) raises RecordingError.
    """

    def __init__(self, directory: StrPath, source: str,
                 symbols: Sequence[SymbolInfo | str], rotate_bytes: int | None = 100_000_000,
                 rotate_seconds: float | None = 3600.0, gzip: bool = False, *,
                 flush_interval: float = FLUSH_INTERVAL, fsync: bool = True,
                 max_pending: int = MAX_PENDING, prefix: str = "ticker") -> None:
        if rotate_bytes is not None and rotate_bytes <= 0:
            raise ValueError(f"rotate_bytes must be > 0, got {rotate_bytes}")
        if rotate_seconds is not None and not (0 < rotate_seconds < math.inf):
            raise ValueError(f"rotate_seconds must be > 0, got {rotate_seconds}")
        if not flush_interval > 0:
            raise ValueError(f"flush_interval must be > 0, got {flush_interval}")
        self.directory = Path(directory)
        self.source = source
        self.symbols = symbol_infos(symbols)
        self.gzip = gzip
        self.rotate_bytes = rotate_bytes
        self.rotate_ms = rotate_seconds * 1000.0 if rotate_seconds is not None else None
        self.flush_interval = flush_interval
        self.fsync = fsync
        self.max_pending = max_pending
        self.prefix = prefix
        self.files: list[Path] = []  # every file opened, oldest first
        self.written = 0  # ticks handed to the files
        self.dropped = 0
        self._writer: RecordingWriter | None = None
        self._rotate_at = math.inf
        self._cond = threading.Condition()
        self._queue: list[tuple[Tick, ...]] = []
        self._pending = 0
        self._closing = False
        self._flush_wanted = 0
        self._flush_done = 0
        self._error: BaseException | None = None
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="ticker-recorder", daemon=True)
        self._started = False

    @classmethod
    def to_file(cls, path: StrPath, source: str, symbols: Sequence[SymbolInfo | str], *,
                flush_interval: float = FLUSH_INTERVAL, fsync: bool = True) -> Recorder:
        """One file, no rotation, created (or truncated) now; gzip if the name ends in .gz."""
        path = Path(path)
        recorder = cls(path.parent, source, symbols, None, None, is_gzip(path),
                       flush_interval=flush_interval, fsync=fsync)
        recorder._writer = RecordingWriter(path, recorder._header())
        recorder.files.append(path)
        return recorder

    @property
    def path(self) -> Path | None:
        """The file being written (None before the first tick)."""
        return self._writer.path if self._writer is not None else None

    @property
    def failure(self) -> BaseException | None:
        """Why the recorder stopped writing, if it did (the disk filled up...)."""
        return self._error

    def write(self, ticks: Sequence[Tick]) -> None:
        """Queues a batch; never blocks on the disk. Ticks keep their order across calls."""
        if not ticks:
            return
        with self._cond:
            if self._error is not None:
                raise RecordingError(f"the recorder failed: {self._error}") from self._error
            if self._closing:
                raise RecordingError("the recorder is closed")
            if not self._started:
                self._started = True
                self._thread.start()
            if self._pending + len(ticks) > self.max_pending:
                if not self.dropped:
                    log.warning("recording falls behind: over %d ticks queued; dropping batches "
                                "(counted in Recorder.dropped)", self.max_pending)
                self.dropped += len(ticks)
                return
            wake = not self._queue
            self._queue.append(tuple(ticks))
            self._pending += len(ticks)
            if wake or self._pending >= WAKE_TICKS:
                self._cond.notify()

    def flush(self, timeout: float | None = None) -> bool:
        """Blocks until everything queued before the call is flushed (and fsynced); False on
        timeout. For tests and shutdown: async code runs it in a thread."""
        with self._cond:
            if not self._started:
                return self._error is None
            self._flush_wanted += 1
            target = self._flush_wanted
            self._cond.notify()
            return self._cond.wait_for(
                lambda: self._flush_done >= target or self._error is not None
                or not self._thread.is_alive(), timeout) and self._error is None

    def close(self) -> None:
        """Writes and flushes everything queued, closes the file; idempotent. Blocks: async code
        calls it with ``await asyncio.to_thread(recorder.close)``."""
        with self._cond:
            self._closing = True
            started = self._started
            self._cond.notify()
        if started:
            self._thread.join()
        elif self._writer is not None:
            self._writer.close(self.fsync)
            self._writer = None
        if self._error is not None:
            raise RecordingError(f"the recorder failed: {self._error}") from self._error

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        deadline: float | None = None  # when the oldest unflushed tick must be flushed
        cond = self._cond
        try:
            while True:
                with cond:
                    while not self._due(deadline):
                        cond.wait(None if deadline is None
                                  else max(0.0, deadline - time.monotonic()))
                    queue, self._queue, self._pending = self._queue, [], 0
                    closing, wanted = self._closing, self._flush_wanted
                for ticks in queue:
                    self._write(ticks)
                if queue and deadline is None:
                    deadline = time.monotonic() + self.flush_interval
                if closing or wanted != self._flush_done or (
                        deadline is not None and time.monotonic() >= deadline):
                    if self._writer is not None:
                        self._writer.flush(self.fsync)
                    deadline = None
                    with cond:
                        self._flush_done = wanted
                        cond.notify_all()
                if closing:
                    break
        except BaseException as error:
            log.exception("the recorder's writer failed; recording stops")
            with cond:
                self._error = error
                cond.notify_all()
        finally:
            if self._writer is not None:
                try:
                    self._writer.close(self.fsync)
                except OSError:
                    log.exception("closing %s failed", self._writer.path)
                self._writer = None

    def _due(self, deadline: float | None) -> bool:
        """Whether the writer has work now (called holding the lock)."""
        if deadline is None:
            return bool(self._queue) or self._closing or self._flush_wanted != self._flush_done
        return (self._closing or self._flush_wanted != self._flush_done
                or self._pending >= WAKE_TICKS or time.monotonic() >= deadline)

    def _write(self, ticks: tuple[Tick, ...]) -> None:
        writer = self._writer
        limit = self.rotate_bytes
        for tick in ticks:
            if writer is None or tick.ts >= self._rotate_at or (
                    limit is not None and writer.size >= limit and writer.ticks):
                writer = self._rotate(tick.ts)
            writer.write_tick(tick)
        self.written += len(ticks)

    def _rotate(self, ts: float) -> RecordingWriter:
        if self._writer is not None:
            self._writer.close(self.fsync)
            self._writer = None
        stamp_ms = ts
        while True:
            path = self.directory / rotated_name(stamp_ms, self.prefix, self.gzip)
            try:
                writer = RecordingWriter(path, self._header(), exclusive=True)
                break
            except FileExistsError:
                stamp_ms += 1.0  # same millisecond: the name takes the next one
        self._writer = writer
        self.files.append(path)
        if self.rotate_ms is not None:
            self._rotate_at = (math.floor(ts / self.rotate_ms) + 1) * self.rotate_ms
        log.info("recording to %s", path)
        return writer

    def describe(self, symbols: Sequence[SymbolInfo]) -> None:
        """The symbols of the feed run now starting: files opened from now on name them (a
        live feed learns them from its upstream only once connected, after the recorder
        opened). A run with no symbols leaves them as they were."""
        if symbols:
            with self._cond:
                self.symbols = symbol_infos(symbols)

    def _header(self) -> Header:
        return Header(self.source, self.symbols, round(time.time() * 1000.0, 3))


class RecordingFeed:
    """Another feed's batches, passed through unchanged and written to a :class:`Recorder` as
    they go by: ``serve --record`` wraps each feed the pump opens, sharing one Recorder."""

    def __init__(self, feed: Feed, recorder: Recorder) -> None:
        self.feed = feed
        self.recorder = recorder
        self.kind = feed.kind
        self.symbols: Sequence[SymbolInfo] = feed.symbols

    async def batches(self) -> AsyncIterator[list[Tick]]:
        async for batch in self.feed.batches():
            self.recorder.write(batch)
            yield batch
