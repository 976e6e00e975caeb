"""The Alpaca-compatible stream through a real uvicorn server: the official alpaca-py SDK, plain
JSON and msgpack WebSocket clients, every documented error from a real bad input, and a replay
seen the same through protocol v1 and /v2/{feed}."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from feeds.capture import record_fast
from feeds.recording import read_recording
from feeds.simulated import SimulatedFeed
from tests.scripted_feed import ScriptedFeed
from tests.servers import UNIT, RunningServer, make_config, running_server
from tests.wsclient import TickerClient
from ticker.app import create_app
from ticker.config import load_config

with warnings.catch_warnings():
    # alpaca-py's stream client is built on websockets' legacy API, which warns on import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from alpaca.data.live import StockDataStream
    from alpaca.data.models import Bar, Quote, Trade

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

T0 = 1_763_880_000_000.0  # a whole minute: 2025-11-23T06:40:00Z
MINUTE = 60_000.0


def utc(ms: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout * UNIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def followed_symbols(server: RunningServer) -> list[set[str]]:
    """What each connection's hub subscription covers, read on the server's loop."""
    hub = server.node.hub
    result: list[set[str]] = server.call(lambda: [box.symbols for box in hub.subscribers()])
    return result


# -- alpaca-py --------------------------------------------------------------------------------


@contextlib.contextmanager
def running_bot(stream: StockDataStream, nudge: Callable[[], None]) -> Iterator[None]:
    """The SDK's own blocking ``run()`` in a thread, stopped with its own ``stop()``. alpaca-py
    looks at its stop request only between messages (or every 5 s), so ``nudge`` sends one."""
    thread = threading.Thread(target=stream.run, name="alpaca-py", daemon=True)
    thread.start()
    try:
        yield
    finally:
        # alpaca-py sets its loop as run() starts; stop() before that would fail.
        wait_for(lambda: stream._loop is not None, 5, "alpaca-py to start")
        stream.stop()
        nudge()
        thread.join(timeout=10 * UNIT)
        assert not thread.is_alive(), "alpaca-py did not stop"


def test_alpaca_py_gets_its_trades_quotes_and_minute_bars_and_nothing_else() -> None:
    feed = ScriptedFeed(["AAPL", "MSFT", "JPM"])
    config = make_config(**{"alpaca.keys": ["PKTEST:s3cret"]})
    trades: list[Trade] = []
    quotes: list[Quote] = []
    bars: list[Bar] = []

    async def on_trade(trade: Trade) -> None:
        trades.append(trade)

    async def on_quote(quote: Quote) -> None:
        quotes.append(quote)

    async def on_bar(bar: Bar) -> None:
        bars.append(bar)

    with running_server(config, feed_factory=lambda: feed) as server:
        stream = StockDataStream("PKTEST", "s3cret",
                                 url_override=f"ws://127.0.0.1:{server.port}/v2/iex")
        stream.subscribe_trades(on_trade, "AAPL")
        stream.subscribe_quotes(on_quote, "MSFT")
        stream.subscribe_bars(on_bar, "AAPL", "MSFT")
        with running_bot(stream, nudge=lambda: feed.push("AAPL", ts=T0 + 3 * MINUTE)):
            wait_for(lambda: {"AAPL", "MSFT"} in followed_symbols(server), 10,
                     "alpaca-py to subscribe")
            pushed = [
                *feed.push("AAPL", price=100.0, size=100, ts=T0 + 1_000.5),
                *feed.push("MSFT", price=400.0, size=50, ts=T0 + 2_000, spread=0.02),
                *feed.push("JPM", price=220.0, ts=T0 + 3_000),
                *feed.push("AAPL", price=102.0, size=200, ts=T0 + 20_000),
                *feed.push("MSFT", price=401.0, size=150, ts=T0 + 30_000, spread=0.03),
                *feed.push("AAPL", price=99.0, size=300, ts=T0 + 59_999),
                # The next minute's first trade closes the minute (for every symbol).
                *feed.push("JPM", price=221.0, ts=T0 + MINUTE + 1),
            ]
            wait_for(lambda: len(trades) >= 3 and len(bars) >= 2, 10, "trades and bars")
            time.sleep(0.2 * UNIT)  # anything more that was going to arrive
            got_trades, got_quotes, got_bars = list(trades), list(quotes), list(bars)

    apple = [tick for tick in pushed if tick.symbol == "AAPL"]
    assert [(t.symbol, t.id, t.price, t.size, t.timestamp) for t in got_trades] == \
        [("AAPL", tick.seq, tick.price, tick.size, utc(tick.ts)) for tick in apple]
    assert all(t.exchange == "V" and t.conditions == ["@"] for t in got_trades)
    assert [(q.symbol, q.bid_price, q.ask_price, q.timestamp) for q in got_quotes] == [
        ("MSFT", 399.98, 400.02, utc(T0 + 2_000)), ("MSFT", 400.97, 401.03, utc(T0 + 30_000))]
    by_symbol = {bar.symbol: bar for bar in got_bars}
    assert len(got_bars) == 2 and set(by_symbol) == {"AAPL", "MSFT"}
    assert by_symbol["AAPL"].model_dump() == {
        "symbol": "AAPL", "timestamp": utc(T0), "open": 100.0, "high": 102.0, "low": 99.0,
        "close": 99.0, "volume": 600.0, "trade_count": 3.0,
        "vwap": round((100.0 * 100 + 102.0 * 200 + 99.0 * 300) / 600, 6)}
    assert (by_symbol["MSFT"].open, by_symbol["MSFT"].close, by_symbol["MSFT"].volume,
            by_symbol["MSFT"].trade_count) == (400.0, 401.0, 200.0, 2.0)


# -- plain WebSocket clients ------------------------------------------------------------------


class AlpacaClient:
    """A bare Alpaca-protocol client: JSON text frames, or msgpack both ways."""

    def __init__(self, ws: ClientConnection, packed: bool) -> None:
        self.ws = ws
        self.packed = packed

    @classmethod
    async def open(cls, url: str, packed: bool = False, **options: Any) -> AlpacaClient:
        headers = {"Content-Type": "application/msgpack"} if packed else {}
        client = cls(await connect(url, additional_headers=headers, max_queue=None,
                                   **options), packed)
        assert await client.recv() == [{"T": "success", "msg": "connected"}]
        return client

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(msgpack.packb(message) if self.packed
                           else orjson.dumps(message).decode())

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def recv(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        frame = await asyncio.wait_for(self.ws.recv(), timeout * UNIT)
        if self.packed:
            assert isinstance(frame, bytes), "msgpack frames are binary"
            messages: list[dict[str, Any]] = msgpack.unpackb(frame)
        else:
            assert isinstance(frame, str), "JSON frames are text"
            messages = orjson.loads(frame)
        return messages

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send, and return the one control message that answers."""
        await self.send(message)
        while True:  # trades and quotes of earlier subscriptions may come first
            control = [m for m in await self.recv() if m["T"] in ("success", "error",
                                                                 "subscription")]
            if control:
                [reply] = control
                return reply

    async def auth(self, key: str = "PK", secret: str = "s") -> dict[str, Any]:
        return await self.request({"action": "auth", "key": key, "secret": secret})

    async def close(self) -> None:
        await self.ws.close()


def error(code: int, msg: str) -> dict[str, Any]:
    return {"T": "error", "code": code, "msg": msg}


async def test_a_plain_json_client_gets_text_frames_and_rfc3339_times() -> None:
    feed = ScriptedFeed(["AAPL", "MSFT"])
    with running_server(make_config(), feed_factory=lambda: feed) as server:
        client = await AlpacaClient.open(f"ws://127.0.0.1:{server.port}/v2/sip")
        try:
            assert await client.auth() == {"T": "success", "msg": "authenticated"}
            reply = await client.request({"action": "subscribe", "trades": ["aapl"],
                                          "bars": ["*"]})
            assert reply["trades"] == ["AAPL"] and reply["bars"] == ["*"]
            feed.push("MSFT", price=400.0, ts=T0 + 5)
            feed.push("AAPL", price=101.5, size=700, ts=T0 + 1_234.567)
            feed.push("AAPL", price=101.0, size=100, ts=T0 + MINUTE)
            received: list[dict[str, Any]] = []
            while len(received) < 4:
                received += await client.recv()
        finally:
            await client.close()
    assert received == [
        {"T": "t", "S": "AAPL", "i": 1, "x": "V", "p": 101.5, "s": 700, "c": ["@"], "z": "C",
         "t": "2025-11-23T06:40:01.234567Z"},
        {"T": "t", "S": "AAPL", "i": 2, "x": "V", "p": 101.0, "s": 100, "c": ["@"], "z": "C",
         "t": "2025-11-23T06:41:00Z"},
        {"T": "b", "S": "AAPL", "o": 101.5, "h": 101.5, "l": 101.5, "c": 101.5, "v": 700,
         "n": 1, "vw": 101.5, "t": "2025-11-23T06:40:00Z"},
        {"T": "b", "S": "MSFT", "o": 400.0, "h": 400.0, "l": 400.0, "c": 400.0, "v": 100,
         "n": 1, "vw": 400.0, "t": "2025-11-23T06:40:00Z"},
    ]


# -- every documented error, from a real bad input ---------------------------------------------


@pytest.fixture(scope="module")
def strict_server() -> Iterator[RunningServer]:
    config = make_config(**{"alpaca.keys": ["PK1:one", "PK2:two", "PK3:three", "PK4:four"],
                            "alpaca.max_symbols": 2, "alpaca.max_connections_per_key": 1,
                            "alpaca.auth_timeout": 1.0 * UNIT})
    with running_server(config) as running:
        yield running


def url_of(server: RunningServer, feed: str = "iex") -> str:
    return f"ws://127.0.0.1:{server.port}/v2/{feed}"


async def test_bad_syntax_and_unknown_actions_get_400(strict_server: RunningServer) -> None:
    client = await AlpacaClient.open(url_of(strict_server))
    try:
        await client.send_raw("{not json")
        assert await client.recv() == [error(400, "invalid syntax")]
        assert await client.request({"action": "listen", "data": {}}) == \
            error(400, "invalid syntax")
        assert await client.auth("PK1", "one") == {"T": "success", "msg": "authenticated"}
        assert await client.request({"action": "subscribe", "trades": "AAPL"}) == \
            error(400, "invalid syntax")
        assert await client.request({"action": "subscribe", "orderbooks": ["BTC/USD"]}) == \
            error(410, "invalid subscribe action for this feed")
        # The connection goes on after every one of them.
        assert (await client.request({"action": "subscribe", "trades": ["AAPL"]}))["trades"] \
            == ["AAPL"]
    finally:
        await client.close()


async def test_credentials_in_the_upgrade_headers_authenticate_at_once(
        strict_server: RunningServer) -> None:
    async def connect_with(key: str, secret: str) -> list[dict[str, Any]]:
        async with connect(url_of(strict_server), additional_headers={
                "APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret}) as ws:
            return [orjson.loads(await asyncio.wait_for(ws.recv(), 5 * UNIT))[0]
                    for _ in range(2)]

    assert await connect_with("PK2", "two") == [{"T": "success", "msg": "connected"},
                                                {"T": "success", "msg": "authenticated"}]
    assert await connect_with("PK2", "nope") == [{"T": "success", "msg": "connected"},
                                                 error(402, "auth failed")]


async def test_subscribing_before_auth_gets_401(strict_server: RunningServer) -> None:
    client = await AlpacaClient.open(url_of(strict_server))
    try:
        assert await client.request({"action": "subscribe", "trades": ["AAPL"]}) == \
            error(401, "not authenticated")
        assert await client.request({"action": "unsubscribe", "trades": ["AAPL"]}) == \
            error(401, "not authenticated")
    finally:
        await client.close()


async def test_wrong_credentials_get_402_and_the_client_may_try_again(
        strict_server: RunningServer) -> None:
    client = await AlpacaClient.open(url_of(strict_server), packed=True)
    try:
        assert await client.auth("PK2", "wrong") == error(402, "auth failed")
        assert await client.auth("nobody", "two") == error(402, "auth failed")
        assert await client.auth("PK2", "two") == {"T": "success", "msg": "authenticated"}
    finally:
        await client.close()


async def test_a_second_auth_gets_403(strict_server: RunningServer) -> None:
    client = await AlpacaClient.open(url_of(strict_server))
    try:
        await client.auth("PK3", "three")
        assert await client.auth("PK3", "three") == error(403, "already authenticated")
    finally:
        await client.close()


async def test_no_auth_in_time_gets_404_and_the_connection_ends(
        strict_server: RunningServer) -> None:
    client = await AlpacaClient.open(url_of(strict_server))
    started = time.monotonic()
    assert await client.recv(timeout=5) == [error(404, "auth timeout")]
    assert time.monotonic() - started >= 0.8 * UNIT
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_too_many_symbols_get_405_and_leave_the_subscription_as_it_was(
        strict_server: RunningServer) -> None:
    client = await AlpacaClient.open(url_of(strict_server))
    try:
        await client.auth("PK4", "four")
        await client.request({"action": "subscribe", "trades": ["AAPL"], "quotes": ["MSFT"]})
        assert await client.request({"action": "subscribe", "quotes": ["JPM"]}) == \
            error(405, "symbol limit exceeded")
        assert await client.request({"action": "subscribe", "trades": ["*"]}) == \
            error(405, "symbol limit exceeded")
        reply = await client.request({"action": "subscribe", "bars": ["*"]})  # not limited
        assert (reply["trades"], reply["quotes"], reply["bars"]) == (["AAPL"], ["MSFT"], ["*"])
        assert {"AAPL", "MSFT"} in followed_symbols(strict_server)
    finally:
        await client.close()


async def test_a_second_connection_with_the_same_key_gets_406(
        strict_server: RunningServer) -> None:
    first = await AlpacaClient.open(url_of(strict_server))
    second = await AlpacaClient.open(url_of(strict_server, "test"))
    try:
        await first.auth("PK1", "one")
        assert await second.auth("PK1", "one") == error(406, "connection limit exceeded")
        await first.close()
        # As the Go SDK does: retry auth on the same connection once the other one is gone.
        deadline = time.monotonic() + 5 * UNIT
        while (reply := await second.auth("PK1", "one"))["T"] == "error":
            assert reply["code"] == 406 and time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert reply == {"T": "success", "msg": "authenticated"}
    finally:
        await first.close()
        await second.close()


def test_the_endpoint_can_be_turned_off() -> None:
    def paths(enabled: bool) -> set[str]:
        app = create_app(make_config(**{"alpaca.enabled": enabled}))
        return {getattr(route, "path", "") for route in app.routes}

    assert "/v2/{feed}" in paths(True)
    assert "/v2/{feed}" not in paths(False)


async def test_an_unknown_feed_is_refused_at_the_handshake(strict_server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(url_of(strict_server, "crypto"))
    assert refused.value.response.status_code == 404


async def test_a_client_that_stops_reading_gets_407_and_is_disconnected() -> None:
    feed = ScriptedFeed(["AAPL"])
    config = make_config(**{"hub.history_size": 4000, "server.max_lag_fraction": 0.5})
    with running_server(config, feed_factory=lambda: feed) as server:
        # A tiny receive window and a client-side queue of one message: while this client
        # does not read, the server's send to it soon blocks.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        ws = await connect(url_of(server), sock=sock, max_queue=1, max_size=2**24)
        client = AlpacaClient(ws, packed=False)
        assert await client.recv() == [{"T": "success", "msg": "connected"}]
        await client.auth()
        await client.request({"action": "subscribe", "trades": ["AAPL"]})
        box = next(box for box in server.node.hub.subscribers() if box.symbols == {"AAPL"})

        def stuck_for() -> float:
            """How long the server has been in one send to this client (its loop's clock)."""
            since = box.sending_since
            return asyncio.get_running_loop().time() - since if since else 0.0

        ts = T0
        while server.call(stuck_for) < 0.5:  # until the server's writer is stuck in a send
            assert ts < T0 + 500_000, "the server never blocked on this client"
            for _ in range(10):
                feed.push("AAPL", count=1000, ts=ts)
                ts += 1
            await asyncio.sleep(0.1)
        feed.push("AAPL", count=5000, ts=ts)  # more than max_lag while it is stuck
        await asyncio.sleep(0.3 * UNIT)
        last, close_code = await read_to_the_end(client)  # reads again: the backlog, the verdict
        assert last == [error(407, "slow client")]
        assert close_code == 4008


async def read_to_the_end(client: AlpacaClient) -> tuple[list[dict[str, Any]], int | None]:
    """The last message before the server closed, and its close code."""
    last: list[dict[str, Any]] = []
    try:
        while True:
            last = await client.recv(timeout=10)
    except ConnectionClosed as closed:
        return last, closed.rcvd.code if closed.rcvd is not None else None


# -- a replay through both protocols ------------------------------------------------------------


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    defaults = load_config().feed
    stocks = [s for s in defaults.universe if s.symbol in ("AAPL", "MSFT", "JPM")]
    path = tmp_path_factory.mktemp("alpaca") / "session.jsonl"
    record_fast(SimulatedFeed(stocks, defaults.market, 20.0, seed=5), path, 150.0, T0)
    return path


async def test_a_replay_gives_the_same_prices_through_protocol_v1_and_alpaca(
        recording: Path) -> None:
    recorded = list(read_recording(recording)[1])
    last_seq = {tick.symbol: tick.seq for tick in recorded}
    config = make_config(**{"feed.source": "replay", "feed.replay.source": str(recording),
                            "feed.replay.speed": 20.0 / UNIT})
    with running_server(config) as server:
        alpaca = await AlpacaClient.open(url_of(server), packed=True)
        v1 = await TickerClient.open(server.ws_url)
        try:
            await alpaca.auth()
            await alpaca.request({"action": "subscribe", "trades": ["AAPL", "MSFT"],
                                  "bars": ["AAPL"]})
            await v1.send({"op": "subscribe", "symbols": ["AAPL", "MSFT"],
                           "resume": {"epoch": v1.hello["epoch"],
                                      "seqs": {"AAPL": 0, "MSFT": 0}}})
            trades: dict[tuple[str, int], dict[str, Any]] = {}
            bars: list[dict[str, Any]] = []
            while not all((symbol, last_seq[symbol]) in trades for symbol in ("AAPL", "MSFT")):
                for item in await alpaca.recv(timeout=15):
                    if item["T"] == "t":
                        trades[item["S"], item["i"]] = item
                    else:
                        bars.append(item)
            for symbol in ("AAPL", "MSFT"):
                await v1.until_ticks(symbol, last_seq[symbol])
        finally:
            await alpaca.close()
            await v1.close()

    by_seq = {(tick.symbol, tick.seq): tick for tick in recorded}
    through_v1 = {(tick["symbol"], tick["seq"]): tick for symbol in ("AAPL", "MSFT")
                  for tick in v1.ticks[symbol]}
    assert len(trades) > 100  # most of the 150 s: it subscribed within the first few
    for key, trade in trades.items():
        tick, v1_tick = by_seq[key], through_v1[key]
        assert (trade["p"], trade["s"]) == (tick.price, tick.size) == \
            (v1_tick["price"], v1_tick["size"])
        assert trade["t"].to_unix_nano() == round(tick.ts * 1000) * 1000
        assert v1_tick["ts"] == tick.ts
    # Minutes 0 and 1 closed while it was subscribed (minute 2 never closes: the replay ends
    # in it). Each bar is exactly the recording's trades of that minute.
    assert [(bar["T"], bar["S"], bar["t"].to_unix_nano()) for bar in bars] == \
        [("b", "AAPL", int(T0 + m * MINUTE) * 1_000_000) for m in (0, 1)]
    for bar in bars:
        start = bar["t"].to_unix_nano() / 1e6
        minute = [t for t in recorded if t.symbol == "AAPL" and start <= t.ts < start + MINUTE]
        assert (bar["o"], bar["h"], bar["l"], bar["c"], bar["v"], bar["n"]) == (
            minute[0].price, max(t.price for t in minute), min(t.price for t in minute),
            minute[-1].price, sum(t.size for t in minute), len(minute))
        assert bar["vw"] == pytest.approx(sum(t.price * t.size for t in minute)
                                          / bar["v"], abs=1e-6)
