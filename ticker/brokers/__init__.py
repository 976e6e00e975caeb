"""Brokers carry feed events from the one process that runs the feed to every hub.

Picked by URL scheme; a backend's dependencies are imported only when its scheme is used.
"""

from __future__ import annotations

from ticker.brokers.base import Broker
from ticker.errors import BrokerError

__all__ = ["Broker", "broker_from_url"]


def broker_from_url(url: str) -> Broker:
    scheme = url.partition("://")[0]
    if scheme == "memory":
        from ticker.brokers.memory import MemoryBroker

        return MemoryBroker()
    raise BrokerError(f"unsupported broker URL {url!r}: expected memory://")
