"""A client's session logic against a real hub, no sockets."""

from __future__ import annotations

import orjson

from ticker.hub import Hub
from ticker.model import FeedStart, SymbolInfo, Tick, TickBatch
from ticker.session import Session
from ticker.subscriber import Subscriber


def session(max_symbols: int = 3) -> tuple[Session, Hub]:
    hub = Hub(snapshot_size=10, history_size=100, bars_kept=10)
    hub.ingest(FeedStart("e1", "simulated", tuple(SymbolInfo(s) for s in
                                                  ("AAPL", "MSFT", "JPM", "BAC", "XOM"))))
    client = Session(hub, Subscriber(1000, 1000), max_symbols, lambda: 1234.5)
    client.open()
    client.subscriber.drain()
    return client, hub


def replies(client: Session) -> list[dict[str, object]]:
    return [orjson.loads(frame) for frame in client.subscriber.drain()]


def test_subscribe_replies_then_snapshots_in_request_order() -> None:
    client, _ = session()
    client.handle('{"op":"subscribe","symbols":["msft","AAPL"],"id":1}')
    messages = replies(client)
    assert messages[0] == {"type": "subscribed", "symbols": ["MSFT", "AAPL"], "resumed": [],
                           "id": 1}
    assert [(m["type"], m["symbol"]) for m in messages[1:]] == [("snapshot", "MSFT"),
                                                                 ("snapshot", "AAPL")]


def test_too_many_symbols_subscribes_nothing() -> None:
    client, hub = session(max_symbols=3)
    client.handle('{"op":"subscribe","symbols":["AAPL","MSFT"]}')
    replies(client)
    client.handle('{"op":"subscribe","symbols":["JPM","BAC"],"id":2}')
    (error,) = replies(client)
    assert error["code"] == "too_many_symbols"
    assert error["id"] == 2
    assert "at most 3" in str(error["message"])
    assert client.symbols == {"AAPL", "MSFT"}
    hub.ingest(TickBatch("e1", (Tick("JPM", 1, 1.0, 1.0, 100, 1.0, 1.0),)))
    assert replies(client) == []


def test_resubscribing_counts_nothing_twice() -> None:
    client, _ = session(max_symbols=2)
    client.handle('{"op":"subscribe","symbols":["AAPL","MSFT"]}')
    replies(client)
    client.handle('{"op":"subscribe","symbols":["AAPL","MSFT"],"id":3}')
    assert replies(client) == [{"type": "subscribed", "symbols": ["AAPL", "MSFT"],
                                "resumed": [], "id": 3}]


def test_only_unknown_symbols_get_an_error_and_no_subscribed_reply() -> None:
    client, _ = session()
    client.handle('{"op":"subscribe","symbols":["NOPE"],"id":4}')
    (error,) = replies(client)
    assert error["code"] == "unknown_symbol"
    assert "NOPE" in str(error["message"])
    assert client.symbols == set()


def test_close_leaves_the_hub() -> None:
    client, hub = session()
    client.handle('{"op":"subscribe","symbols":["AAPL"]}')
    client.close()
    assert hub.connections == 0
    hub.ingest(TickBatch("e1", (Tick("AAPL", 1, 1.0, 1.0, 100, 1.0, 1.0),)))
    assert [m["type"] for m in replies(client)] == ["subscribed", "snapshot"]


def test_ping_uses_the_server_clock() -> None:
    client, _ = session()
    client.handle('{"op":"ping","id":7}')
    assert replies(client) == [{"type": "pong", "ts": 1234.5, "id": 7}]
