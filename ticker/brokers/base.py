"""The broker interface: publish feed events, listen to them. Small on purpose (broadcaster)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from ticker.model import FeedEvent


class Publisher(Protocol):
    """The side of a broker a feed sees (ticker.pump)."""

    async def publish(self, event: FeedEvent) -> None: ...


class Broker(Publisher, Protocol):
    connected: bool  # false while the broker is unreachable (readiness)

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def publish(self, event: FeedEvent) -> None: ...

    def listen(self) -> AsyncIterator[FeedEvent]:
        """Events in publish order, starting with the feed's latest FeedStart if there is one."""
        ...
