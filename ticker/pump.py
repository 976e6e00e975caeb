"""The one place a feed meets a broker: each run of the feed gets a fresh epoch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Protocol

from feeds.base import Feed
from ticker.brokers.base import Publisher
from ticker.guard import TickGuard
from ticker.model import FeedStart, SymbolInfo, Tick, TickBatch
from ticker.stats import Stats

log = logging.getLogger("ticker.pump")


class TickSink(Protocol):
    """Where published ticks are also written, e.g. a recorder; must not block."""

    def describe(self, symbols: Sequence[SymbolInfo]) -> None:
        """The symbols of the run that starts (a live feed knows them once connected)."""
        ...

    def write(self, ticks: Sequence[Tick]) -> None: ...


def new_epoch() -> str:
    """Unique per feed run; the time prefix makes epochs sort by start in logs."""
    return f"{int(time.time() * 1000):x}-{secrets.token_hex(3)}"


def feed_runs(feed: Feed) -> AsyncGenerator[AsyncIterator[list[Tick]], None]:
    """A feed's runs: a replay starts a new one at each loop and seek, a live feed when its
    upstream cannot be continued (their ``runs()``); any other feed is one run."""
    runs = getattr(feed, "runs", None)
    return runs() if runs is not None else _one_run(feed)


async def _one_run(feed: Feed) -> AsyncGenerator[AsyncIterator[list[Tick]], None]:
    yield feed.batches()


async def run_feed(open_feed: Callable[[], Feed], broker: Publisher, restart_delay: float,
                   sink: TickSink | None = None, stats: Stats | None = None) -> None:
    """Publish the feed until it ends; a crashed feed restarts, after a pause, as a new epoch."""
    while True:
        feed = open_feed()
        try:
            # Closed when the pump stops or fails, so a live feed's socket closes with it.
            async with contextlib.aclosing(feed_runs(feed)) as runs:
                async for run in runs:
                    # A relay runs under its upstream's epoch, so its clients' positions hold.
                    epoch = getattr(feed, "upstream_epoch", None) or new_epoch()
                    guard = TickGuard(stats)
                    if sink is not None:
                        sink.describe(feed.symbols)
                    await broker.publish(FeedStart(epoch, feed.kind, tuple(feed.symbols)))
                    async for batch in run:
                        ticks = guard.check(batch)
                        if not ticks:
                            continue
                        if sink is not None:
                            try:
                                sink.write(ticks)
                            except Exception:
                                # A recorder that fails (disk full...) must not stop the market.
                                log.exception("recording failed; the feed goes on unrecorded")
                                sink = None
                        await broker.publish(TickBatch(epoch, tuple(ticks)))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("feed %s failed; restarting in %.1f s", feed.kind, restart_delay)
            await asyncio.sleep(restart_delay)
        else:
            log.info("feed %s ended", feed.kind)
            return
