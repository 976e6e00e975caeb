"""`ticker bench replay`: how closely a replay keeps the recorded timing at a given speed.

Records the simulated market in simulated time, replays it through ReplayFeed on the wall clock,
and measures, for every tick, when it came out against when it was due: the recorded gap since the
first tick divided by the speed. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from feeds.capture import record_fast
from feeds.replay import ReplayFeed
from feeds.simulated import SimulatedFeed
from ticker.bench import command_options
from ticker.config import load_config

DESCRIPTION = __doc__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--speeds", default="1,10,100", help="comma-separated replay speeds")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="wall-clock length of each replay (default 3)")
    parser.add_argument("--tick-rate", type=float, default=200.0,
                        help="ticks/s of the recorded market time (default 200)")
    parser.add_argument("--out", default="bench-replay.json")


def main(args: argparse.Namespace) -> int:
    speeds = [float(s) for s in args.speeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        market = load_config().feed
        for speed in speeds:
            path = Path(directory) / f"speed{speed:g}.jsonl"
            feed = SimulatedFeed(market.universe, market.market, args.tick_rate, seed=1)
            record_fast(feed, path, args.seconds * speed, start_ms=1_763_880_000_000.0)
            errors = asyncio.run(_measure(path, speed))
            rows.append(_row(speed, errors))
    print(f"\n{'speed':>6} {'ticks':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'mean ms':>8} {'drift ms':>9}")
    for row in rows:
        print(f"{row['speed']:>6g} {row['ticks']:>7} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
              f"{row['max_ms']:>8.2f} {row['mean_ms']:>8.2f} {row['drift_ms']:>9.2f}")
    print("\nerror = when a tick came out - when it was due (recorded gap / speed); late > 0."
          "\ndrift = error of the last tick minus error of the first.")
    Path(args.out).write_text(json.dumps({"workload": command_options(args), "rows": rows},
                                         indent=2))
    print(f"wrote {args.out}")
    return 0


async def _measure(path: Path, speed: float) -> list[float]:
    feed = ReplayFeed(path, speed)
    errors: list[float] = []
    start_wall = first_ts = None
    async for batch in feed.batches():
        now = time.perf_counter()
        for tick in batch:
            if start_wall is None or first_ts is None:
                start_wall, first_ts = now, tick.ts
            due = start_wall + (tick.ts - first_ts) / 1000.0 / speed
            errors.append((now - due) * 1000.0)
    return errors


def _row(speed: float, errors: list[float]) -> dict[str, float]:
    ordered = sorted(errors)
    return {"speed": speed, "ticks": len(errors), "p50_ms": statistics.median(ordered),
            "p99_ms": ordered[int(len(ordered) * 0.99)], "max_ms": ordered[-1],
            "mean_ms": statistics.fmean(ordered), "drift_ms": errors[-1] - errors[0]}

