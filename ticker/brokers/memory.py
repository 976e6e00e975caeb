"""In-process broker: the default, for a single server process. Events pass as objects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ticker.model import FeedEvent, FeedStart


class MemoryBroker:
    def __init__(self, max_pending: int = 1024) -> None:
        self._max_pending = max_pending
        self._listeners: list[asyncio.Queue[FeedEvent]] = []
        self._last_start: FeedStart | None = None
        self.connected = True

    async def connect(self) -> None:
        pass

    async def disconnect(self) -> None:
        self._listeners.clear()

    async def publish(self, event: FeedEvent) -> None:
        if isinstance(event, FeedStart):
            self._last_start = event
        # Waiting on a full queue slows the feed down to what the hub can ingest, rather than
        # letting events pile up without bound.
        for queue in self._listeners:
            await queue.put(event)

    async def listen(self) -> AsyncIterator[FeedEvent]:
        queue: asyncio.Queue[FeedEvent] = asyncio.Queue(self._max_pending)
        if self._last_start is not None:
            queue.put_nowait(self._last_start)
        self._listeners.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._listeners.remove(queue)
