"""The Recorder (rotation, flushing, never blocking, surviving kill -9) and recording a feed to a
file, fast or paced."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from itertools import takewhile
from pathlib import Path

import pytest

from feeds.capture import record_fast, record_feed, record_ticks
from feeds.catalog import RecordingSource, list_recordings
from feeds.recorder import Recorder, RecordingFeed, rotated_name
from feeds.recording import RecordingError, read_header, read_ticks
from feeds.replay import ReplayFeed
from feeds.simulated import SimulatedFeed
from tests.clocks import FakeClock
from tests.test_recording import (
    INFOS,
    PARAMS,
    START_MS,
    STOCKS,
    market,
    simulated,
    simulated_for,
    warnings_of,
)
from ticker.model import Tick

ROOT = Path(__file__).resolve().parents[1]
UNIT = float(os.environ.get("TICKER_TEST_TIMEOUT_UNIT", "1.0"))
HOUR_MS = 3_600_000.0


def batches_of(ticks: list[Tick], size: int) -> list[list[Tick]]:
    return [ticks[k:k + size] for k in range(0, len(ticks), size)]


def replay_all(source: Path) -> list[Tick]:
    async def run() -> list[Tick]:
        return [t async for batch in ReplayFeed(source, speed="max").batches() for t in batch]
    return asyncio.run(run())


def test_rotated_names_are_utc_milliseconds_and_sort_by_time() -> None:
    assert rotated_name(START_MS, "ticker", False) == "ticker-20251123T064000.000Z.jsonl"
    assert rotated_name(START_MS + 1.7, "ticker", True) == "ticker-20251123T064000.001Z.jsonl.gz"
    stamps = [START_MS + k for k in (0, 999, 1000, 59_000, 3_600_000, 86_400_000)]
    names = [rotated_name(ts, "ticker", False) for ts in stamps]
    assert names == sorted(names) and len(set(names)) == len(names)


def test_what_is_written_is_what_is_read(tmp_path: Path) -> None:
    ticks = simulated(3000)
    with Recorder(tmp_path, "simulated", INFOS) as recorder:
        for batch in batches_of(ticks, 7):
            recorder.write(batch)
        recorder.write([])
    assert len(recorder.files) == 1 and recorder.written == len(ticks) and not recorder.dropped
    header, first = read_header(recorder.files[0])
    assert header.source == "simulated" and header.symbols == INFOS and first == ticks[0]
    assert recorder.files[0].name == rotated_name(ticks[0].ts, "ticker", False)
    assert list(read_ticks(recorder.files[0])) == ticks
    with pytest.raises(RecordingError, match="closed"):
        recorder.write(ticks[:1])
    recorder.close()  # idempotent


@pytest.mark.parametrize("gz", [False, True])
def test_size_rotation_gives_files_that_replay_as_one_stream(tmp_path: Path, gz: bool) -> None:
    ticks = simulated(20_000 if gz else 4000)
    limit = 50_000 if gz else 60_000
    with Recorder(tmp_path, "simulated", INFOS, rotate_bytes=limit, gzip=gz) as recorder:
        for batch in batches_of(ticks, 50):
            recorder.write(batch)
    files = recorder.files
    assert len(files) >= 4
    assert [f.name for f in files] == sorted(f.name for f in files)
    assert all(f.name.endswith(".jsonl.gz" if gz else ".jsonl") for f in files)
    # A plain file passes the limit by one line at most (a tick line is about 100 bytes); a
    # compressed one by what zlib still held when its size was checked.
    for f in files[:-1]:
        assert limit <= f.stat().st_size <= (limit * 1.5 if gz else limit + 120), f
    parts = [list(read_ticks(f)) for f in files]
    assert [t for part in parts for t in part] == ticks
    assert all(read_header(f)[0].symbols == INFOS for f in files)
    assert replay_all(tmp_path) == ticks


def test_time_rotation_starts_a_file_on_every_hour_of_tick_time(tmp_path: Path) -> None:
    start = 1_763_881_500_000.0  # 07:05 UTC
    ticks = simulated_for(3 * 3600, start_ms=start, rate=0.5)
    with Recorder(tmp_path, "simulated", INFOS, rotate_bytes=None, rotate_seconds=3600) as rec:
        for batch in batches_of(ticks, 10):
            rec.write(batch)
    parts = [list(read_ticks(f)) for f in rec.files]
    assert [t for part in parts for t in part] == ticks
    hours = [{int(t.ts // HOUR_MS) for t in part} for part in parts]
    assert len(parts) == 4 and all(len(h) == 1 for h in hours)  # 07:05-08, 8-9, 9-10, 10-10:05
    assert [f.name[7:18] for f in rec.files] == ["20251123T07", "20251123T08", "20251123T09",
                                                 "20251123T10"]


def test_a_file_being_written_is_readable(tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    ticks = simulated(500)
    for gz in (False, True):
        directory = tmp_path / ("gz" if gz else "plain")
        recorder = Recorder(directory, "simulated", INFOS, gzip=gz, flush_interval=3600)
        try:
            recorder.write(ticks[:200])
            assert recorder.flush(timeout=10 * UNIT)
            path = recorder.path
            assert path is not None
            assert list(RecordingSource(directory).ticks()) == ticks[:200]
            recorder.write(ticks[200:])
            assert recorder.flush(timeout=10 * UNIT)
            with caplog.at_level(logging.WARNING):
                assert list(read_ticks(path)) == ticks
            assert list_recordings(directory)[0].tick_count == len(ticks)
        finally:
            recorder.close()
        assert list(read_ticks(path)) == ticks


def test_ticks_reach_the_file_within_the_flush_interval_without_asking(tmp_path: Path) -> None:
    ticks = simulated(100)
    with Recorder(tmp_path, "simulated", INFOS, flush_interval=0.05) as recorder:
        recorder.write(ticks)
        deadline = time.monotonic() + 5 * UNIT
        got: list[Tick] = []
        while time.monotonic() < deadline and len(got) < len(ticks):
            time.sleep(0.01)  # inherent: the writer thread flushes on its own clock
            if recorder.path is not None:
                got = list(read_ticks(recorder.path))
        assert got == ticks


def test_write_never_waits_for_the_disk_and_drops_beyond_the_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    entered = threading.Event()
    original = Recorder._write

    def stalled(self: Recorder, ticks: tuple[Tick, ...]) -> None:
        entered.set()
        gate.wait(30 * UNIT)  # a disk that hangs
        original(self, ticks)

    monkeypatch.setattr(Recorder, "_write", stalled)
    ticks = simulated(4000)
    recorder = Recorder(tmp_path, "simulated", INFOS, max_pending=1000)
    try:
        recorder.write(ticks[:100])
        assert entered.wait(10 * UNIT)
        began = time.perf_counter()
        for batch in batches_of(ticks[100:], 100):
            recorder.write(batch)
        elapsed = time.perf_counter() - began
    finally:
        gate.set()
        recorder.close()
    assert elapsed < 0.5 * UNIT, elapsed
    assert recorder.dropped == len(ticks) - 100 - 1000
    assert list(read_ticks(recorder.files[0])) == ticks[:1100]


def test_a_failed_writer_surfaces_on_the_next_write_and_on_close(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken(self: Recorder, ticks: tuple[Tick, ...]) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Recorder, "_write", broken)
    recorder = Recorder(tmp_path, "simulated", INFOS)
    with caplog.at_level(logging.ERROR):
        recorder.write(simulated(5))
        assert not recorder.flush(timeout=10 * UNIT)
    with pytest.raises(RecordingError, match="No space left"):
        recorder.write(simulated(5))
    with pytest.raises(RecordingError, match="No space left"):
        recorder.close()
    assert any("writer failed" in r.getMessage() for r in caplog.records)


# -- kill -9 -----------------------------------------------------------------------------------

CHILD = """
import asyncio, sys
from feeds.base import WallClock
from feeds.recorder import Recorder
from feeds.simulated import SimulatedFeed
from tests.test_recording import PARAMS, STOCKS

class AnnouncingClock(WallClock):
    announced = False
    def now_ms(self):
        now = super().now_ms()
        if not self.announced:
            self.announced = True
            print(repr(now), flush=True)
        return now

async def main():
    feed = SimulatedFeed(STOCKS, PARAMS, float(sys.argv[3]), int(sys.argv[4]),
                         clock=AnnouncingClock())
    recorder = Recorder(sys.argv[1], "simulated", feed.symbols, gzip=sys.argv[2] == "gz")
    async for batch in feed.batches():
        recorder.write(batch)

asyncio.run(main())
"""
KILL_RATE = 200.0
RUN_S = 2.5
SLACK_MS = 500.0  # scheduling and fsync time on a loaded machine, beyond the 1 s flush period


@pytest.mark.parametrize("mode", ["plain", "gz"])
def test_after_kill_9_every_tick_flushed_before_it_is_there(
        tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), mode, str(KILL_RATE),
                           "11"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            start = float(child.stdout.readline())
            time.sleep(RUN_S)  # inherent: the recorder runs in real time
            killed_at = time.time() * 1000
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait(timeout=10 * UNIT)
    assert child.returncode == -signal.SIGKILL
    with caplog.at_level(logging.WARNING):
        got = list(RecordingSource(tmp_path).ticks())
    expected = list(takewhile(lambda t: t.ts < killed_at, market(KILL_RATE, 11).ticks(start)))
    flushed = [t for t in expected if t.ts <= killed_at - 1000.0 - SLACK_MS]
    assert len(flushed) >= KILL_RATE * 0.5, "the test recorded too little to mean anything"
    assert got == expected[:len(got)]
    assert len(got) >= len(flushed), (len(got), len(flushed))
    if mode == "gz":
        assert any("gzip stream is truncated" in m for m in warnings_of(caplog))


# -- recording a feed to one file --------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz"])
def test_fast_and_paced_recording_give_the_same_ticks(tmp_path: Path, name: str) -> None:
    fast = record_fast(market(), tmp_path / f"fast-{name}", 20.0, START_MS)
    clock = FakeClock(START_MS)
    feed = SimulatedFeed(STOCKS, PARAMS, 50.0, 7, clock=clock)
    paced = asyncio.run(record_feed(feed, tmp_path / f"paced-{name}", 20.0, clock))
    expected = simulated_for(20.0)
    assert list(read_ticks(tmp_path / f"fast-{name}")) == expected
    assert list(read_ticks(tmp_path / f"paced-{name}")) == expected
    assert fast.tick_count == paced.tick_count == len(expected)
    assert (fast.first_ts, fast.last_ts) == (expected[0].ts, expected[-1].ts)
    assert fast.symbols == ("AAPL", "JPM", "XOM") and fast.source == "simulated"
    assert START_MS + 19_000 < expected[-1].ts < START_MS + 20_000
    assert clock.sleeps, "the paced recording waited for its ticks on the clock"


def test_paced_recording_stops_when_the_feed_ends(tmp_path: Path) -> None:
    source = tmp_path / "source.jsonl"
    ticks = simulated(40)
    record_ticks(source, "simulated", INFOS, ticks)
    clock = FakeClock(START_MS)
    feed = ReplayFeed(source, speed=1.0, clock=clock)
    info = asyncio.run(record_feed(feed, tmp_path / "copy.jsonl", 3600.0, clock))
    assert info.tick_count == 40 and list(read_ticks(tmp_path / "copy.jsonl")) == ticks
    assert read_header(tmp_path / "copy.jsonl")[0].source == "replay"


def test_a_recording_feed_passes_batches_through_and_records_them(tmp_path: Path) -> None:
    clock = FakeClock(START_MS)
    inner = SimulatedFeed(STOCKS, PARAMS, 50.0, 7, clock=clock)
    recorder = Recorder(tmp_path, inner.kind, inner.symbols)
    feed = RecordingFeed(inner, recorder)
    assert feed.kind == "simulated"
    assert [(s.symbol, s.name, s.sector) for s in feed.symbols] == [
        (s.symbol, s.name, s.sector) for s in INFOS]

    async def consume() -> list[list[Tick]]:
        got = []
        batches = feed.batches()
        async for batch in batches:
            got.append(batch)
            if len(got) == 200:
                break
        await batches.aclose()  # type: ignore[attr-defined]
        return got

    got = asyncio.run(consume())
    recorder.close()
    ticks = [t for batch in got for t in batch]
    assert ticks == simulated(len(ticks))
    assert list(RecordingSource(tmp_path).ticks()) == ticks
