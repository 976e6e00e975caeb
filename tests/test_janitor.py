"""The janitor's bookkeeping (ticker/transport/janitor.py) with a real Hub and Subscribers, no
sockets: each turn looks only at connections in a send and at those not yet subscribed, oldest
first, so 10,000 quiet subscribed connections cost it nothing."""

from __future__ import annotations

import asyncio

import pytest

from ticker.hub import Hub
from ticker.model import FeedStart, SymbolInfo
from ticker.protocol import CLOSE_IDLE
from ticker.stats import Stats
from ticker.subscriber import Subscriber
from ticker.transport.janitor import Janitor


def hub_with(symbols: tuple[str, ...] = ("AAA",)) -> Hub:
    hub = Hub(10, 100, 10)
    hub.ingest(FeedStart("e1", "test", tuple(SymbolInfo(s, s, "x", 10.0) for s in symbols)))
    return hub


def connected(hub: Hub, opened_at: float) -> Subscriber:
    subscriber = Subscriber(100, 100)
    subscriber.opened_at = opened_at
    hub.connect(subscriber)
    return subscriber


def test_idle_connections_close_oldest_first_and_subscribed_ones_are_let_go() -> None:
    hub = hub_with()
    janitor = Janitor(hub, send_timeout=10.0, idle_timeout=30.0, stats=Stats())
    subscribed = [connected(hub, 0.0) for _ in range(10_000)]
    for subscriber in subscribed:
        hub.subscribe(subscriber, ("AAA",))
    idle = [connected(hub, float(t)) for t in (1, 2, 3)]
    janitor.turn(32.5)  # past the first two's deadline only
    assert [s.close_request is not None for s in idle] == [True, True, False]
    assert idle[0].close_request is not None and idle[0].close_request.code == CLOSE_IDLE
    assert all(s.close_request is None for s in subscribed)
    # What is left to watch: the third only (the subscribed ones were let go on the way).
    assert list(hub.awaiting_subscription) == [idle[2]]
    janitor.turn(40.0)
    assert idle[2].close_request is not None and not hub.awaiting_subscription


@pytest.mark.anyio
async def test_only_a_send_that_outlasts_send_timeout_is_dropped() -> None:
    hub = hub_with()
    stats = Stats()
    janitor = Janitor(hub, send_timeout=10.0, idle_timeout=30.0, stats=stats)
    slow, quick = connected(hub, 0.0), connected(hub, 0.0)
    for subscriber in (slow, quick):
        subscriber.writer = asyncio.create_task(asyncio.sleep(60))
    slow.begin_send(100.0)
    quick.begin_send(100.0)
    quick.end_send()
    assert hub.sending == {slow}
    janitor.turn(109.0)
    assert not slow.writer.cancelling()  # type: ignore[union-attr]
    janitor.turn(110.5)
    assert slow.writer.cancelling() and not quick.writer.cancelling()  # type: ignore[union-attr]
    assert stats.stalled == 1 and not hub.sending
    hub.disconnect(quick)
    quick.begin_send(200.0)  # after it left the hub: no longer watched (nor kept)
    assert not hub.sending
    for subscriber in (slow, quick):
        subscriber.writer.cancel()  # type: ignore[union-attr]
