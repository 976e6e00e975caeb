"""Commands that work on recordings without a server: ``ticker record``, ``ticker import``."""

from __future__ import annotations

import asyncio
import sys
import time

from feeds.capture import record_fast, record_feed
from feeds.catalog import RecordingInfo
from feeds.csv_import import import_csv
from feeds.simulated import SimulatedFeed, synthetic_universe
from feeds.times import parse_duration
from ticker.config import Config
from ticker.errors import ConfigError


def record(config: Config, out: str, duration: str, only: tuple[str, ...], fast: bool) -> int:
    seconds = parse_duration(duration)
    feed_config = config.feed
    seed = feed_config.seed if isinstance(feed_config.seed, int) else int(time.time()) % 2**31
    stocks = (list(feed_config.universe) if feed_config.symbols == "universe"
              else synthetic_universe(int(feed_config.symbols), seed))
    if only:
        known = {stock.symbol: stock for stock in stocks}
        unknown = [symbol for symbol in only if symbol not in known]
        if unknown:
            raise ConfigError("--symbols", f"not in the simulated universe: {', '.join(unknown)}")
        stocks = [known[symbol] for symbol in only]
    # The same seed and tick rate share out among fewer stocks: keep the configured total rate.
    feed = SimulatedFeed(stocks, feed_config.market, feed_config.tick_rate, seed)
    print(f"recording {len(stocks)} symbols at {feed_config.tick_rate:g} ticks/s, seed {seed}, "
          f"for {seconds:g} s{' of simulated time' if fast else ''} -> {out}", file=sys.stderr)
    info = (record_fast(feed, out, seconds) if fast
            else asyncio.run(record_feed(feed, out, seconds)))
    _describe(info)
    return 0


def import_(source: str, out: str, skip_bad: bool, symbol: str | None,
            dayfirst: bool | None) -> int:
    report = import_csv(source, out, skip_bad, symbol=symbol, dayfirst=dayfirst)
    print(f"{source}: {report.layout} layout, {report.rows} rows -> {report.ticks} ticks of "
          f"{len(report.symbols)} symbols in {report.out_path}", file=sys.stderr)
    for note in report.notes:
        print(f"  note: {note}", file=sys.stderr)
    if report.skipped:
        print(f"  skipped {report.skipped} bad rows:", file=sys.stderr)
        for problem in report.problems:
            print(f"    {problem}", file=sys.stderr)
    return 0


def _describe(info: RecordingInfo) -> None:
    span = ((info.last_ts or 0) - (info.first_ts or 0)) / 1000.0
    print(f"wrote {info.tick_count} ticks of {len(info.symbols)} symbols over {span:.1f} s "
          f"({info.size} bytes) to {info.name}", file=sys.stderr)

