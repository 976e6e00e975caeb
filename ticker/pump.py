"""The one place a feed meets a broker: each run of the feed gets a fresh epoch."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable

from feeds.base import Feed
from ticker.brokers.base import Broker
from ticker.model import FeedStart, TickBatch

log = logging.getLogger("ticker.pump")


def new_epoch() -> str:
    """Unique per feed run; the time prefix makes epochs sort by start in logs."""
    return f"{int(time.time() * 1000):x}-{secrets.token_hex(3)}"


async def run_feed(open_feed: Callable[[], Feed], broker: Broker, restart_delay: float) -> None:
    """Publish the feed until it ends; a crashed feed restarts, after a pause, as a new epoch."""
    while True:
        feed = open_feed()
        epoch = new_epoch()
        await broker.publish(FeedStart(epoch, feed.kind, tuple(feed.symbols)))
        try:
            async for ticks in feed.batches():
                await broker.publish(TickBatch(epoch, tuple(ticks)))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("feed %s failed; restarting in %.1f s", feed.kind, restart_delay)
            await asyncio.sleep(restart_delay)
        else:
            log.info("feed %s ended", feed.kind)
            return
