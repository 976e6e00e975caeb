"""ReplayFeed: exact ticks, pacing against a fake clock, controls, runs, loops and filters; and
the command-line parsers for times, durations and speeds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from feeds.capture import record_ticks
from feeds.recorder import Recorder
from feeds.replay import MAX_SPEED_BATCH, ReplayFeed, parse_speed
from feeds.times import parse_duration, parse_instant
from tests.clocks import FakeClock
from tests.test_recording import INFOS, START_MS, simulated, simulated_for
from ticker.errors import FeedError
from ticker.model import Tick

T0 = 5_000_000.0  # the fake clock's start: unrelated to the recorded times, on purpose


def flat(batches: list[list[Tick]]) -> list[Tick]:
    return [t for batch in batches for t in batch]


async def take_all(feed: ReplayFeed) -> list[list[Tick]]:
    return [batch async for batch in feed.batches()]


def play(feed: ReplayFeed) -> list[list[Tick]]:
    return asyncio.run(take_all(feed))


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "r.jsonl"
    record_ticks(path, "simulated", INFOS, simulated_for(30.0))
    return path


# -- exact ticks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["r.jsonl", "r.jsonl.gz"])
def test_a_recorded_simulation_replays_exactly_at_max_speed(tmp_path: Path, name: str) -> None:
    ticks = simulated(5000)
    with Recorder.to_file(tmp_path / name, "simulated", INFOS) as recorder:
        for k in range(0, len(ticks), 13):
            recorder.write(ticks[k:k + 13])
    feed = ReplayFeed(tmp_path / name, speed="max")
    assert feed.kind == "replay" and tuple(feed.symbols) == INFOS and feed.source == "simulated"
    batches = play(feed)
    assert flat(batches) == ticks  # symbol, seq, recorded ts, price, size, bid, ask; in order
    assert all(0 < len(b) <= MAX_SPEED_BATCH for b in batches)
    assert feed.ended and feed.position == ticks[-1].ts


def test_at_max_speed_the_loop_runs_between_batches(recording: Path) -> None:
    async def main() -> tuple[int, int]:
        turns = 0
        stop = asyncio.Event()

        async def other_task() -> None:
            nonlocal turns
            while not stop.is_set():
                turns += 1
                await asyncio.sleep(0)

        task = asyncio.ensure_future(other_task())
        feed = ReplayFeed(recording, speed="max")
        count = 0
        async for _ in feed.batches():
            count += 1
        stop.set()
        await task
        return count, turns

    count, turns = asyncio.run(main())
    assert count >= 2 and turns >= count


# -- pacing ----------------------------------------------------------------------------------------


async def timed(feed: ReplayFeed, clock: FakeClock) -> list[tuple[float, list[Tick]]]:
    return [(clock.now, batch) async for batch in feed.batches()]


async def stamped(it: AsyncIterator[list[Tick]], clock: FakeClock) -> tuple[float, list[Tick]]:
    batch = await anext(it)
    return clock.now, batch


def assert_paced(got: list[tuple[float, list[Tick]]], t0: float, ts0: float,
                 speed: float) -> None:
    """Each batch holds exactly the ticks due by its time, the schedule anchored at (t0, ts0)."""
    def due(tick: Tick) -> float:
        return t0 + (tick.ts - ts0) / speed

    for k, (now, batch) in enumerate(got):
        assert all(due(t) <= now + 1e-6 for t in batch), k
        assert now <= max(due(batch[0]), got[k - 1][0] + 1.0 if k else t0) + 1e-6, k
        if k + 1 < len(got):
            assert due(got[k + 1][1][0]) > now - 1e-6, f"batch {k + 1} was held back"


def test_pacing_follows_the_recorded_gaps_divided_by_the_speed(recording: Path) -> None:
    clock = FakeClock(T0)
    feed = ReplayFeed(recording, speed=10, clock=clock)
    got = asyncio.run(timed(feed, clock))
    ticks = simulated_for(30.0)
    assert flat([b for _, b in got]) == ticks
    assert_paced(got, T0, ticks[0].ts, 10.0)
    assert got[0][0] == T0, "the first tick plays at once"
    assert clock.now == pytest.approx(T0 + (ticks[-1].ts - ticks[0].ts) / 10, abs=1.0)
    assert all(seconds > 0 for _, seconds in clock.sleeps)
    # Sleeps end where the next tick is due (or at the 1 ms floor): no drift, no busy loop.
    dues = sorted(T0 + (t.ts - ticks[0].ts) / 10 for t in ticks)
    for before, seconds in clock.sleeps:
        after = before + seconds * 1000
        nxt = next(d for d in dues if d > before + 1e-6)
        assert after == pytest.approx(max(nxt, before + 1.0), abs=1e-6)


def test_pause_holds_and_resume_shifts_the_rest_by_the_pause(recording: Path) -> None:
    clock = FakeClock(T0)
    feed = ReplayFeed(recording, speed=10, clock=clock)
    ticks = simulated_for(30.0)

    async def main() -> list[tuple[float, list[Tick]]]:
        it = feed.batches()
        got = [await stamped(it, clock) for _ in range(20)]
        feed.pause()
        assert feed.paused
        waiting = asyncio.ensure_future(anext(it))
        for _ in range(50):
            await asyncio.sleep(0)
        assert not waiting.done(), "a paused replay produced a batch"
        clock.now += 60_000.0  # a minute passes while paused
        feed.resume()
        resumed = await waiting
        got.append((clock.now, resumed))
        got.extend([(clock.now, b) async for b in it])
        return got

    got = asyncio.run(main())
    assert flat([b for _, b in got]) == ticks
    assert_paced(got[:20], T0, ticks[0].ts, 10.0)
    assert_paced(got[20:], T0 + 60_000.0, ticks[0].ts, 10.0)
    assert got[20][0] > T0 + 60_000.0, "no catch-up burst on resume"


def test_a_speed_change_re_anchors_where_playback_stands(recording: Path) -> None:
    clock = FakeClock(T0)
    feed = ReplayFeed(recording, speed=10, clock=clock)
    ticks = simulated_for(30.0)

    async def main() -> tuple[list[tuple[float, list[Tick]]], float, float]:
        it = feed.batches()
        got = [await stamped(it, clock) for _ in range(30)]
        changed_at = clock.now
        here = ticks[0].ts + (changed_at - T0) * 10  # recorded time reached at the change
        feed.set_speed(2)
        assert feed.speed == 2.0
        got.extend([(clock.now, b) async for b in it])
        return got, changed_at, here

    got, changed_at, here = asyncio.run(main())
    assert flat([b for _, b in got]) == ticks
    assert_paced(got[:30], T0, ticks[0].ts, 10.0)
    assert_paced(got[30:], changed_at, here, 2.0)
    assert clock.now == pytest.approx(changed_at + (ticks[-1].ts - here) / 2, abs=1.0)


def test_switching_to_max_stops_waiting(recording: Path) -> None:
    clock = FakeClock(T0)
    feed = ReplayFeed(recording, speed=1, clock=clock)

    async def main() -> list[Tick]:
        it = feed.batches()
        got = list(await anext(it))
        feed.set_speed("max")
        sleeps = len(clock.sleeps)
        got.extend(flat([b async for b in it]))
        assert len(clock.sleeps) == sleeps
        return got

    assert asyncio.run(main()) == simulated_for(30.0)


def test_seek_jumps_both_ways_as_a_new_run_paced_from_there(recording: Path) -> None:
    clock = FakeClock(T0)
    feed = ReplayFeed(recording, speed=5, clock=clock)
    ticks = simulated_for(30.0)
    ahead, back = ticks[0].ts + 20_000.0, ticks[0].ts + 5_000.0

    async def main() -> list[list[tuple[float, list[Tick]]]]:
        runs: list[list[tuple[float, list[Tick]]]] = []
        async for run in feed.runs():
            runs.append([])
            async for batch in run:
                runs[-1].append((clock.now, batch))
                if len(runs) == 1 and len(runs[0]) == 10:
                    feed.seek(ahead)
                elif len(runs) == 2 and len(runs[1]) == 10:
                    feed.seek(back)
                    feed.pause()
                    asyncio.get_running_loop().call_soon(feed.resume)
        return runs

    runs = asyncio.run(main())
    assert len(runs) == 3 and feed.runs_started == 3
    first_ahead = next(t for t in ticks if t.ts >= ahead)
    first_back = next(t for t in ticks if t.ts >= back)
    assert runs[1][0][1][0] == first_ahead and runs[2][0][1][0] == first_back
    assert runs[1][0][0] == runs[0][-1][0], "a seek plays its first tick at once"
    assert flat([b for _, b in runs[2]]) == [t for t in ticks if t.ts >= back]
    assert_paced(runs[1], runs[1][0][0], first_ahead.ts, 5.0)
    assert_paced(runs[2], runs[2][0][0], first_back.ts, 5.0)


def test_a_seek_while_paused_stays_paused(recording: Path) -> None:
    clock = FakeClock(T0)
    feed = ReplayFeed(recording, speed=1, clock=clock)
    ticks = simulated_for(30.0)

    async def main() -> None:
        it = feed.batches()
        await anext(it)
        feed.pause()
        feed.seek(ticks[100].ts)
        waiting = asyncio.ensure_future(anext(it))
        for _ in range(50):
            await asyncio.sleep(0)
        assert not waiting.done()
        feed.resume()
        assert (await waiting)[0] == ticks[100]
        await it.aclose()  # type: ignore[attr-defined]

    asyncio.run(main())


# -- runs, loops, ends -----------------------------------------------------------------------------


def test_loop_starts_over_as_a_new_run_each_time(recording: Path) -> None:
    ticks = simulated_for(30.0)
    feed = ReplayFeed(recording, speed="max", loop=True)

    async def main() -> list[list[Tick]]:
        runs = []
        async for run in feed.runs():
            runs.append(flat([b async for b in run]))
            if len(runs) == 3:
                break
        return runs

    runs = asyncio.run(main())
    assert runs == [ticks, ticks, ticks]
    assert not feed.ended


def test_a_directory_of_two_sessions_is_two_runs(tmp_path: Path) -> None:
    first = simulated_for(10.0)
    second = simulated_for(10.0, start_ms=START_MS + 60_000.0, seed=8)  # seqs start again at 1
    record_ticks(tmp_path / "a.jsonl", "simulated", INFOS, first)
    record_ticks(tmp_path / "b.jsonl", "simulated", INFOS, second)

    async def runs(feed: ReplayFeed) -> list[list[Tick]]:
        return [flat([b async for b in run]) async for run in feed.runs()]

    assert asyncio.run(runs(ReplayFeed(tmp_path, speed="max"))) == [first, second]
    assert flat(play(ReplayFeed(tmp_path, speed="max"))) == first + second


def test_a_seq_gap_starts_a_new_run(tmp_path: Path) -> None:
    ticks = simulated(300)
    gap = [t for k, t in enumerate(ticks) if k != 150]
    record_ticks(tmp_path / "g.jsonl", "simulated", INFOS, gap)

    async def runs() -> list[list[Tick]]:
        feed = ReplayFeed(tmp_path / "g.jsonl", speed="max")
        return [flat([b async for b in run]) async for run in feed.runs()]

    got = asyncio.run(runs())
    assert len(got) == 2 and got[0] + got[1] == gap
    broken = ticks[150].symbol
    assert got[1][0].symbol == broken and got[1][0].seq == ticks[150].seq + 1


def test_the_end_is_known_and_a_new_iteration_starts_over(recording: Path) -> None:
    ticks = simulated_for(30.0)
    feed = ReplayFeed(recording, speed="max")
    assert not feed.ended
    assert flat(play(feed)) == ticks and feed.ended
    assert flat(play(feed)) == ticks
    feed.seek(ticks[-5].ts)
    assert flat(play(feed)) == ticks[-5:]


def test_a_new_iteration_takes_over_and_the_old_one_stops(recording: Path) -> None:
    ticks = simulated_for(30.0)
    feed = ReplayFeed(recording, speed="max")

    async def main() -> None:
        first = feed.batches()
        assert (await anext(first))[0] == ticks[0]
        second = feed.batches()
        assert (await anext(second))[0] == ticks[0]
        with pytest.raises(StopAsyncIteration):
            await anext(first)
        rest = [t async for batch in second for t in batch]
        assert rest == ticks[MAX_SPEED_BATCH:] and feed.ended

    asyncio.run(main())


def test_a_paused_iteration_that_is_abandoned_wakes_and_stops(recording: Path) -> None:
    clock = FakeClock(T0)
    feed = ReplayFeed(recording, speed=1, clock=clock)

    async def main() -> None:
        first = feed.batches()
        await anext(first)
        feed.pause()
        waiting = asyncio.ensure_future(anext(first))
        await asyncio.sleep(0)
        second = feed.batches()
        feed.resume()
        assert (await anext(second))[0] == simulated_for(30.0)[0]
        with pytest.raises(StopAsyncIteration):
            await waiting
        await second.aclose()  # type: ignore[attr-defined]

    asyncio.run(main())


# -- filters ---------------------------------------------------------------------------------------


def test_from_and_to_keep_the_recorded_times_between(recording: Path) -> None:
    ticks = simulated_for(30.0)
    lo, hi = ticks[40].ts, ticks[200].ts
    assert flat(play(ReplayFeed(recording, "max", from_ts=lo, to_ts=hi))) == ticks[40:201]
    assert flat(play(ReplayFeed(recording, "max", from_ts=lo + 0.001))) == ticks[41:]
    iso = "2025-11-23T06:40:10Z"
    after = [t for t in ticks if t.ts >= START_MS + 10_000]
    assert flat(play(ReplayFeed(recording, "max", from_ts=iso))) == after
    with pytest.raises(ValueError, match="after"):
        ReplayFeed(recording, from_ts=hi, to_ts=lo)


def test_from_and_to_apply_again_on_every_loop(recording: Path) -> None:
    ticks = simulated_for(30.0)
    feed = ReplayFeed(recording, "max", loop=True, from_ts=ticks[10].ts, to_ts=ticks[20].ts)

    async def main() -> list[list[Tick]]:
        got = []
        async for run in feed.runs():
            got.append(flat([b async for b in run]))
            if len(got) == 2:
                break
        return got

    assert asyncio.run(main()) == [ticks[10:21], ticks[10:21]]


def test_a_range_without_ticks_ends_at_once_even_when_looping(recording: Path) -> None:
    feed = ReplayFeed(recording, "max", loop=True, from_ts=START_MS + 3_600_000)
    assert play(feed) == [] and feed.ended


def test_a_symbol_filter_keeps_those_symbols(recording: Path) -> None:
    ticks = simulated_for(30.0)
    feed = ReplayFeed(recording, "max", symbols=["jpm", "XOM"])
    assert [info.symbol for info in feed.symbols] == ["JPM", "XOM"]
    assert flat(play(feed)) == [t for t in ticks if t.symbol in ("JPM", "XOM")]
    with pytest.raises(FeedError, match="not in the recording: NOPE"):
        ReplayFeed(recording, symbols=["AAPL", "NOPE"])


# -- parsers for the command line ------------------------------------------------------------------


def test_parse_speed() -> None:
    assert parse_speed("max") == "max" and parse_speed(" MAX ") == "max"
    assert parse_speed("10") == 10.0 and parse_speed("0.5x") == 0.5 and parse_speed(3) == 3.0
    for bad in ("0", "-1", "fast", "inf", "nan", ""):
        with pytest.raises(ValueError, match="speed"):
            parse_speed(bad)


def test_parse_instant_takes_milliseconds_or_iso_8601() -> None:
    assert parse_instant(1_763_880_000_000) == 1_763_880_000_000.0
    assert parse_instant("1763880000000.5") == 1_763_880_000_000.5
    assert parse_instant("2025-11-23T06:40:00Z") == START_MS
    assert parse_instant("2025-11-23T07:40:00+01:00") == START_MS
    assert parse_instant("2025-11-23 06:40") == START_MS  # naive = UTC
    assert parse_instant("2025-11-23") == START_MS - (6 * 60 + 40) * 60_000
    for bad in ("yesterday", "2025-13-01", "", "nan"):
        with pytest.raises(ValueError, match="not a time"):
            parse_instant(bad)


def test_parse_duration() -> None:
    assert parse_duration("60s") == 60.0 and parse_duration("90") == 90.0
    assert parse_duration("1.5m") == 90.0 and parse_duration("2h") == 7200.0
    assert parse_duration("500ms") == 0.5 and parse_duration("1h30m") == 5400.0
    assert parse_duration("1d") == 86_400.0
    for bad in ("", "s", "10x", "-5s", "0", "1h30"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)

