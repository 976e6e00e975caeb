"""`ticker feed`: the feed as its own process, publishing to a shared broker (Redis) for any
number of `ticker serve --broker ...` nodes. Seqs and epochs are assigned here, once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.config
import signal
import sys

from ticker.brokers import broker_from_url
from ticker.config import Config
from ticker.errors import TickerError
from ticker.logs import log_config
from ticker.pump import run_feed
from ticker.sources import feed_factory_for

log = logging.getLogger("ticker.feed")


def run(config: Config) -> int:
    logging.config.dictConfig(log_config(config.server.log_level, config.server.log_format))
    if config.broker.url.startswith("memory://"):
        print("ticker: `ticker feed` publishes to a shared broker: add --broker "
              "redis://host:port/db (a memory:// feed would reach no one)", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_main(config))
    except TickerError as error:
        print(f"ticker: {error}", file=sys.stderr)
        return 2


async def _main(config: Config) -> int:
    open_feed = feed_factory_for(config.feed)
    broker = broker_from_url(config.broker.url, config.broker.prefix, config.broker.window,
                             config.broker.wait_at_start)
    await broker.connect()
    recorder = None
    if config.recordings.record:
        from feeds.recorder import Recorder

        first = open_feed()
        settings = config.recordings
        recorder = Recorder(settings.dir, first.kind, first.symbols,
                            rotate_bytes=settings.rotate_bytes,
                            rotate_seconds=settings.rotate_seconds, gzip=settings.gzip)
        pending = [first]
        factory = open_feed
        open_feed = lambda: pending.pop() if pending else factory()  # noqa: E731
    pump = asyncio.current_task()
    assert pump is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, pump.cancel)
    log.info("publishing the %s feed to %s", config.feed.kind, config.broker.url.split("@")[-1])
    try:
        await run_feed(open_feed, broker, config.feed.restart_delay, recorder)
    except asyncio.CancelledError:
        log.info("feed stopped")
    finally:
        with contextlib.suppress(Exception):
            await broker.disconnect()
        if recorder is not None:
            await asyncio.to_thread(recorder.close)
    return 0
