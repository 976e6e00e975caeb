"""Brokers carry feed events from the one process that runs the feed to every hub.

Picked by URL scheme; a backend's dependencies are imported only when its scheme is used.
"""

from __future__ import annotations

from ticker.brokers.base import Broker
from ticker.errors import BrokerError

__all__ = ["Broker", "broker_from_url"]


def broker_from_url(url: str, prefix: str = "ticker", window: float = 600.0,
                    wait_at_start: bool = False) -> Broker:
    scheme = url.partition("://")[0]
    if scheme == "memory":
        from ticker.brokers.memory import MemoryBroker

        return MemoryBroker()
    if scheme in ("redis", "rediss", "unix"):
        try:
            from ticker.brokers.redis import RedisBroker
        except ImportError:
            raise BrokerError("the redis broker needs the redis package: "
                              "pip install 'ticker[redis]'") from None
        return RedisBroker(url, prefix, window, wait_at_start)
    raise BrokerError(f"unsupported broker URL {url!r}: expected memory:// or redis://host:port/db")
