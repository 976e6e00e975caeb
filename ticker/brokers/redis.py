"""Redis broker: one feed process publishes, any number of server nodes listen.

Events go into one Redis stream (not pub/sub, which drops whatever a subscriber misses while it is
away), trimmed to the last ``window`` seconds. A node that starts, or comes back after Redis was
away, reads the stream from where it stands, so every node builds the same history from the same
ticks and a client can resume on any node. The latest FeedStart is also kept under its own key, so
a node that joins long after the feed started still learns the epoch and symbols.

Seqs and epochs are assigned once, by the feed; Redis only carries them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ticker.errors import BrokerError
from ticker.model import FeedEvent, FeedStart, SymbolInfo, Tick, TickBatch

log = logging.getLogger("ticker.redis")

BACKOFF_FIRST = 0.2
BACKOFF_MAX = 5.0
READ_BLOCK_MS = 1000
READ_COUNT = 1000


class RedisBroker:
    def __init__(self, url: str, prefix: str = "ticker", window: float = 600.0,
                 wait_at_start: bool = False) -> None:
        self.url = url
        self._stream = f"{prefix}:events"
        self._start_key = f"{prefix}:start"
        self._window_ms = int(window * 1000)
        self._wait_at_start = wait_at_start
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=2.0, socket_timeout=READ_BLOCK_MS / 1000 + 5)
        self._last_start: bytes | None = None
        self.connected = False

    async def connect(self) -> None:
        delay = BACKOFF_FIRST
        while True:
            try:
                await self._redis.ping()
                self.connected = True
                log.info("connected to redis at %s", _redact(self.url))
                return
            except (RedisError, OSError) as error:
                if not self._wait_at_start:
                    raise BrokerError(f"cannot reach redis at {_redact(self.url)}: {error} "
                                      "(start redis, or set broker.wait_at_start = true to "
                                      "wait for it)") from None
                log.warning("waiting for redis at %s: %s", _redact(self.url), error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)

    async def disconnect(self) -> None:
        await self._redis.aclose()
        self.connected = False

    async def publish(self, event: FeedEvent) -> None:
        """Add the event to the stream, retrying with backoff while Redis is away: the feed waits
        (its ticks keep their times and come out as one backlog), so nothing is lost."""
        payload = _encode(event)
        delay = BACKOFF_FIRST
        while True:
            try:
                if isinstance(event, FeedStart):
                    self._last_start = payload
                    await self._redis.set(self._start_key, payload)
                elif not self.connected and self._last_start is not None:
                    await self._redis.set(self._start_key, self._last_start)  # Redis restarted
                minid = int(time.time() * 1000) - self._window_ms
                await self._redis.xadd(self._stream, {b"e": payload}, minid=minid,
                                       approximate=True)
                if not self.connected:
                    log.info("redis is back: publishing again")
                self.connected = True
                return
            except (RedisError, OSError) as error:
                _stop_if_cancelled()  # redis-py can turn a cancellation into its own error
                if self.connected:
                    log.warning("redis unreachable (%s); holding the feed, retrying", error)
                self.connected = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)

    async def listen(self) -> AsyncIterator[FeedEvent]:
        """The current run's retained events, then new ones as they come; survives Redis going
        away and coming back (reading on from the last entry seen)."""
        last_id = b"0-0"
        epoch = ""
        delay = BACKOFF_FIRST
        started = False
        while True:
            try:
                if not started:
                    # redis-py's return types are unions over its decode modes: bytes here.
                    start_payload: Any = await self._redis.get(self._start_key)
                    if start_payload is None:
                        await asyncio.sleep(0.2)  # no feed yet
                        continue
                    start = _decode(start_payload)
                    assert isinstance(start, FeedStart)
                    epoch = start.epoch
                    started = True
                    yield start
                replies: Any = await self._redis.xread({self._stream: last_id}, count=READ_COUNT,
                                                  block=READ_BLOCK_MS)
                if not self.connected:
                    log.info("redis is back: reading from %s", last_id.decode())
                self.connected = True
                delay = BACKOFF_FIRST
                for _, entries in replies:
                    for entry_id, fields in entries:
                        last_id = entry_id
                        event = _decode(fields[b"e"])
                        if isinstance(event, FeedStart):
                            if event.epoch == epoch:
                                continue  # already announced from the start key
                            epoch = event.epoch
                        elif event.epoch != epoch:
                            continue  # ticks of an older run, still in the stream
                        yield event
            except (RedisError, OSError) as error:
                _stop_if_cancelled()
                if self.connected:
                    log.warning("redis unreachable (%s); clients stay connected, retrying",
                                error)
                self.connected = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)


def _stop_if_cancelled() -> None:
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _encode(event: FeedEvent) -> bytes:
    if isinstance(event, FeedStart):
        return orjson.dumps({"k": "start", "epoch": event.epoch, "feed": event.feed,
                             "symbols": [[s.symbol, s.name, s.sector, s.open]
                                         for s in event.symbols]})
    return orjson.dumps({"k": "ticks", "epoch": event.epoch,
                         "ticks": [[t.symbol, t.seq, t.ts, t.price, t.size, t.bid, t.ask]
                                   for t in event.ticks]})


def _decode(payload: bytes) -> FeedEvent:
    data: dict[str, Any] = orjson.loads(payload)
    if data["k"] == "start":
        return FeedStart(data["epoch"], data["feed"],
                         tuple(SymbolInfo(*fields) for fields in data["symbols"]))
    return TickBatch(data["epoch"], tuple(Tick(*fields) for fields in data["ticks"]))


def _redact(url: str) -> str:
    """redis://user:secret@host -> redis://user:***@host"""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"
