"""Recording a feed to one file, for ``ticker record --out FILE --duration 60s [--fast]``.

Both ways give the same ticks for the same seed and start time: ``record_fast`` runs the simulated
market in simulated time (as fast as the CPU goes), ``record_feed`` paces any feed on its clock.
A recording keeps the ticks with start <= ts < start + duration.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from itertools import takewhile
from pathlib import Path

from feeds.base import Clock, Feed, WallClock
from feeds.catalog import RecordingInfo, recording_info
from feeds.recorder import Recorder
from feeds.recording import Header, StrPath, symbol_infos
from feeds.simulated import SimulatedFeed
from feeds.writer import RecordingWriter
from ticker.model import SymbolInfo, Tick

FLUSH_EVERY = 10_000  # ticks between flushes when writing as fast as possible


def record_ticks(path: StrPath, source: str, symbols: Sequence[SymbolInfo | str],
                 ticks: Iterable[Tick]) -> RecordingInfo:
    """Writes a whole recording synchronously (blocking); gzip if ``path`` ends in .gz."""
    header = Header(source, symbol_infos(symbols), round(time.time() * 1000.0, 3))
    writer = RecordingWriter(path, header)
    try:
        pending = 0
        for tick in ticks:
            writer.write_tick(tick)
            pending += 1
            if pending >= FLUSH_EVERY:
                writer.flush(fsync=False)
                pending = 0
    finally:
        writer.close(fsync=True)
    return recording_info(path)


def record_fast(feed: SimulatedFeed, path: StrPath, duration_s: float,
                start_ms: float | None = None) -> RecordingInfo:
    """``--fast``: the simulated market from ``start_ms`` (default: now) for ``duration_s`` of
    simulated time, without waiting for it."""
    start = time.time() * 1000.0 if start_ms is None else start_ms
    end = start + duration_s * 1000.0
    ticks = takewhile(lambda tick: tick.ts < end, feed.ticks(start))
    return record_ticks(path, feed.kind, feed.symbols, ticks)


async def record_feed(feed: Feed, path: StrPath, duration_s: float,
                      clock: Clock | None = None) -> RecordingInfo:
    """Records ``feed`` as it plays, paced by its own ``batches()``, for ``duration_s`` of the
    clock (pass the clock the feed uses). Writes through a :class:`Recorder`: flushed every
    second, so a killed recording keeps all but its last second. Ends early if the feed does."""
    clock = clock if clock is not None else WallClock()
    end = clock.now_ms() + duration_s * 1000.0
    recorder = Recorder.to_file(path, feed.kind, feed.symbols)
    batches = feed.batches()
    try:
        async for batch in batches:
            keep = [tick for tick in batch if tick.ts < end]
            recorder.write(keep)
            if len(keep) < len(batch):  # the first tick past the end: all before it are in
                break
    finally:
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            await aclose()
        await asyncio.to_thread(recorder.close)
    return await asyncio.to_thread(recording_info, Path(path))
