"""The Coinbase adapter: its message parsing and protocol without I/O, then LiveFeed over a fake
Coinbase (tests/coinbase_fake.py), then a real server fed by the fake."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from feeds.live.base import (
    Gap,
    LiveFeed,
    Skips,
    Trade,
    UpstreamError,
    UpstreamEvent,
    UpstreamRefused,
)
from feeds.live.coinbase import CoinbaseProtocol, CoinbaseUpstream, parse_products
from feeds.live.coinbase_messages import (
    BadMessage,
    Heartbeat,
    Match,
    Status,
    Subscriptions,
    Ticker,
    parse_message,
)
from feeds.live.times import rfc3339_ms
from tests.coinbase_fake import (
    FakeCoinbase,
    FakeConnection,
    status_message,
    threaded_fake,
)
from tests.servers import UNIT, RunningServer, make_config, running_server
from tests.wsclient import TickerClient
from ticker.client.backoff import Backoff
from ticker.errors import ConfigError
from ticker.model import SymbolInfo, Tick

BOTH = ("BTC-USD", "ETH-USD")
MATCH = {"type": "match", "trade_id": 10, "sequence": 50, "maker_order_id": "ac928c66",
         "taker_order_id": "132fb6ae", "time": "2014-11-07T08:19:27.028459Z",
         "product_id": "BTC-USD", "size": "5.23512", "price": "400.23", "side": "sell"}


def raw(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


# -- parse_products --------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "products"), [
    ("btc-usd, ETH-USD", ("BTC-USD", "ETH-USD")),
    ("BTC-USD", ("BTC-USD",)),
    ("BTC-USD,btc-usd,ETH-EUR,BTC-USD", ("BTC-USD", "ETH-EUR")),
    ("  1INCH-USDC ", ("1INCH-USDC",)),
    ("ABCDE-FGHIJK", ("ABCDE-FGHIJK",)),  # 12 characters: the longest symbol
])
def test_parse_products_normalises_and_drops_duplicates(args: str,
                                                        products: tuple[str, ...]) -> None:
    assert parse_products(args) == products


@pytest.mark.parametrize(("args", "named"), [
    ("", "an empty product"),
    ("BTC-USD,,ETH-USD", "an empty product"),
    ("BTC-USD, ", "an empty product"),
    ("BTCUSD", "'BTCUSD'"),
    ("BTC-USD,ETH_USD", "'ETH_USD'"),
    ("BTC-USD-X", "'BTC-USD-X'"),
    ("BTC/USD", "'BTC/USD'"),
    ("-USD", "'-USD'"),
    ("ABCDEF-GHIJKL", "'ABCDEF-GHIJKL'"),  # 13 characters
    ("ABCDEFGHIJK-U", "'ABCDEFGHIJK-U'"),  # a base of 11
    ("BTC-USDé", "'BTC-USDé'"),
])
def test_parse_products_refuses_naming_the_product(args: str, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_products(args)
    assert caught.value.key == "feed.source"
    assert named in caught.value.problem


# -- messages --------------------------------------------------------------------------------------


def test_a_match_is_read_exactly() -> None:
    match = parse_message(raw(MATCH))
    assert match == Match("BTC-USD", 10, rfc3339_ms("2014-11-07T08:19:27.028459Z"), 400.23,
                          5.23512, last=False)
    assert isinstance(match, Match) and match.ts == 1_415_348_367_028.459
    assert parse_message(raw({**MATCH, "type": "last_match"})) == Match(
        "BTC-USD", 10, match.ts, 400.23, 5.23512, last=True)
    small = parse_message(raw({**MATCH, "size": "0.0012"}))
    assert isinstance(small, Match) and small.size == 0.0012


def test_tickers_heartbeats_subscriptions_and_errors_are_read() -> None:
    ticker = {"type": "ticker", "sequence": 1, "product_id": "ETH-USD", "price": "3000.5",
              "open_24h": "2900", "volume_24h": "1", "low_24h": "1", "high_24h": "1",
              "best_bid": "3000.1", "best_bid_size": "1", "best_ask": "3000.9",
              "best_ask_size": "1", "side": "buy", "time": MATCH["time"], "trade_id": 3,
              "last_size": "1"}
    assert parse_message(raw(ticker)) == Ticker("ETH-USD", 3000.1, 3000.9, 2900.0)
    assert parse_message(raw({"type": "heartbeat", "sequence": 90, "last_trade_id": 20,
                              "product_id": "BTC-USD", "time": MATCH["time"]})) == Heartbeat(
        "BTC-USD", 20)
    subscriptions = parse_message(raw({"type": "subscriptions", "channels": [
        {"name": "matches", "product_ids": ["BTC-USD", "ETH-USD"]}, "status"]}))
    assert subscriptions == Subscriptions({"matches": frozenset(BOTH), "status": frozenset()})


def test_a_status_names_each_product_by_its_currencies() -> None:
    status = parse_message(raw(status_message()))
    assert isinstance(status, Status)
    assert status.names["BTC-USD"] == "Bitcoin / United States Dollar"
    assert status.names["ETH-EUR"] == "Ethereum / Euro"
    odd = parse_message(raw({"type": "status", "currencies": [], "products": [
        {"id": "ABC-XYZ", "base_currency": "ABC", "quote_currency": "XYZ"},
        {"id": "OLD-USD", "display_name": "OLD/USD"}, {"no": "id"}, "junk"]}))
    assert odd == Status({"ABC-XYZ": "ABC / XYZ", "OLD-USD": "OLD/USD"})


@pytest.mark.parametrize("message", [
    {"type": "l2update", "product_id": "BTC-USD", "changes": []},
    {"type": "snapshot"},
    {"type": "received", "order_id": "x"},
])
def test_messages_of_other_types_are_ignored(message: dict[str, Any]) -> None:
    assert parse_message(raw(message)) is None


@pytest.mark.parametrize("text", [
    "{not json", "", "[1, 2]", '"match"', "null", '{"no": "type"}', '{"type": 3}',
    raw({**MATCH, "price": 400.23}),  # a number, not the documented string
    raw({**MATCH, "price": "abc"}),
    raw({**MATCH, "price": "NaN"}),
    raw({**MATCH, "price": "-1"}),
    raw({**MATCH, "price": "0"}),
    raw({**MATCH, "price": "1e400"}),
    raw({**MATCH, "size": " 1"}),
    raw({**MATCH, "trade_id": "10"}),
    raw({**MATCH, "trade_id": 0}),
    raw({**MATCH, "trade_id": True}),
    raw({**MATCH, "time": "2014-11-07T08:19:27"}),  # no zone
    raw({**MATCH, "time": "yesterday"}),
    raw({**MATCH, "product_id": ""}),
    raw({key: value for key, value in MATCH.items() if key != "size"}),
    raw({"type": "ticker", "product_id": "BTC-USD", "best_bid": "1", "best_ask": "2"}),
    raw({"type": "heartbeat", "product_id": "BTC-USD", "last_trade_id": -1}),
    raw({"type": "subscriptions", "channels": {"matches": []}}),
    raw({"type": "subscriptions", "channels": [{"name": "matches", "product_ids": "BTC-USD"}]}),
    raw({"type": "status", "products": {}, "currencies": []}),
])
def test_unusable_messages_are_refused(text: str) -> None:
    with pytest.raises(BadMessage):
        parse_message(text)


# -- the protocol, without I/O ---------------------------------------------------------------------


def subscribed(products: tuple[str, ...] = BOTH) -> CoinbaseProtocol:
    protocol = CoinbaseProtocol(products)
    protocol.start()
    protocol.receive(raw({"type": "subscriptions", "channels": [
        {"name": name, "product_ids": list(products)} for name in ("matches", "ticker")]}),
        Skips("test"))
    assert protocol.subscribed
    return protocol


def match(trade_id: int, product: str = "BTC-USD", price: str = "400.23",
          kind: str = "match") -> str:
    return raw({**MATCH, "type": kind, "trade_id": trade_id, "product_id": product,
                "price": price})


def test_the_subscribe_message_asks_for_status_until_it_came() -> None:
    protocol = CoinbaseProtocol(BOTH)
    assert orjson.loads(protocol.start()) == {
        "type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"],
        "channels": ["matches", "ticker", "heartbeat", "status"]}
    protocol.receive(raw(status_message()), Skips("test"))
    assert [orjson.loads(text) for text in protocol.data_to_send()] == [
        {"type": "unsubscribe", "channels": ["status"]}]
    protocol.receive(raw(status_message()), Skips("test"))
    assert protocol.data_to_send() == []  # unsubscribed once
    assert "status" not in orjson.loads(protocol.start())["channels"]


def test_refusals_during_the_handshake_and_errors_after_it() -> None:
    protocol = CoinbaseProtocol(BOTH)
    protocol.start()
    with pytest.raises(UpstreamRefused, match=r"^BTC-USDX is not a valid product$"):
        protocol.receive(raw({"type": "error", "message": "Failed to subscribe",
                              "reason": "BTC-USDX is not a valid product"}), Skips("test"))
    with pytest.raises(UpstreamRefused, match=r"^Failed to subscribe$"):
        protocol.receive(raw({"type": "error", "message": "Failed to subscribe"}),
                         Skips("test"))
    with pytest.raises(UpstreamRefused, match="ETH-USD"):
        protocol.receive(raw({"type": "subscriptions", "channels": [
            {"name": "matches", "product_ids": ["BTC-USD"]},
            {"name": "ticker", "product_ids": ["BTC-USD", "ETH-USD"]}]}), Skips("test"))
    assert not protocol.subscribed
    protocol = subscribed()
    with pytest.raises(UpstreamError) as caught:
        protocol.receive(raw({"type": "error", "message": "overloaded"}), Skips("test"))
    assert not isinstance(caught.value, UpstreamRefused)
    assert "overloaded" in str(caught.value)


def trades(events: list[UpstreamEvent]) -> list[Trade]:
    return [trade for event in events if isinstance(event, list) for trade in event]


def test_bid_and_ask_come_from_the_ticker_and_bracket_the_price() -> None:
    protocol, skips = subscribed(), Skips("test")
    assert trades(protocol.receive(match(1, price="400"), skips)) == [
        Trade("BTC-USD", rfc3339_ms(MATCH["time"]), 400.0, 5.23512, 400.0, 400.0)]
    protocol.receive(raw({"type": "ticker", "product_id": "BTC-USD", "best_bid": "399.5",
                          "best_ask": "400.5", "open_24h": "380"}), skips)
    prices = {"400.1": (399.5, 400.5), "401": (399.5, 401.0), "399": (399.0, 400.5)}
    for trade_id, (price, (bid, ask)) in enumerate(prices.items(), start=2):
        [trade] = trades(protocol.receive(match(trade_id, price=price), skips))
        assert (trade.bid, trade.price, trade.ask) == (bid, float(price), ask)
    assert protocol.infos()[0] == SymbolInfo("BTC-USD", "", "Crypto", 380.0)
    assert protocol.infos()[1] == SymbolInfo("ETH-USD", "", "Crypto", None)
    assert skips.count == 0


def test_trade_ids_decide_duplicates_gaps_and_what_a_reconnect_missed() -> None:
    protocol, skips = subscribed(), Skips("test")

    def kinds(text: str) -> list[str]:
        events = protocol.receive(text, skips)
        return [event.reason if isinstance(event, Gap)
                else ",".join(f"{t.symbol}@{t.price:g}" for t in event) if isinstance(event, list)
                else "connected" for event in events]

    assert kinds(match(10, kind="last_match", price="1")) == ["BTC-USD@1"]
    assert kinds(match(11, price="2")) == ["BTC-USD@2"]
    assert kinds(match(11, price="3")) == [] and skips.count == 1
    assert kinds(match(9, price="4")) == [] and skips.count == 2
    assert kinds(match(14, price="5")) == ["trade ids 12..13 missed", "BTC-USD@5"]
    assert kinds(match(3, "ETH-USD", price="6")) == ["ETH-USD@6"]  # ids are per product
    heartbeat = {"type": "heartbeat", "product_id": "BTC-USD", "time": MATCH["time"]}
    assert kinds(raw({**heartbeat, "last_trade_id": 0})) == []
    assert kinds(raw({**heartbeat, "last_trade_id": 14})) == []
    # A heartbeat ahead of us: the match may be on its way, and comes before the next beat.
    assert kinds(raw({**heartbeat, "last_trade_id": 15})) == []
    assert kinds(match(15, price="7")) == ["BTC-USD@7"]
    assert kinds(raw({**heartbeat, "last_trade_id": 15})) == []
    # Two beats ahead of us: lost.
    assert kinds(raw({**heartbeat, "last_trade_id": 16})) == []
    assert kinds(raw({**heartbeat, "last_trade_id": 16})) == ["trade ids 16..16 missed"]
    assert kinds(match(16, price="7")) == [] and skips.count == 3  # given up already
    assert kinds(match(17, "DOGE-USD")) == [] and skips.count == 4
    # A reconnect: last_match repeats ours (nothing, no skip), follows it or is ahead of it.
    protocol.start()
    assert kinds(match(17, kind="last_match", price="8")) == ["BTC-USD@8"]
    assert kinds(match(3, "ETH-USD", kind="last_match")) == []
    protocol.start()
    assert kinds(match(20, kind="last_match", price="9")) == ["trade ids 18..19 missed",
                                                               "BTC-USD@9"]
    assert skips.count == 4


def test_a_connection_abandoned_before_connected_leaves_the_trade_ids_as_they_were() -> None:
    protocol, skips = subscribed(), Skips("test")
    protocol.receive(match(10, kind="last_match"), skips)
    protocol.start()
    protocol.receive(match(12, kind="last_match"), skips)
    protocol.abandon()
    protocol.start()
    events = protocol.receive(match(12, kind="last_match"), skips)
    assert [type(event) for event in events] == [Gap, list]


# -- LiveFeed over the fake ------------------------------------------------------------------------


class FeedReader:
    """Reads a LiveFeed in a task, as the pump does; each batch lands in a queue with the
    number of its run."""

    def __init__(self, feed: LiveFeed) -> None:
        self.feed = feed
        self.runs = 0
        self._queue: asyncio.Queue[tuple[int, list[Tick]] | Exception] = asyncio.Queue()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async with contextlib.aclosing(self.feed.runs()) as runs:
                async for run in runs:
                    self.runs += 1
                    async for batch in run:
                        await self._queue.put((self.runs, batch))
        except Exception as error:
            await self._queue.put(error)

    async def batch(self, timeout: float = 5.0) -> tuple[int, list[Tick]]:
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout * UNIT)
        except TimeoutError:
            raise AssertionError("timed out waiting for a batch") from None
        if isinstance(item, Exception):
            raise item
        return item

    async def ticks(self, count: int, run: int = 1) -> list[Tick]:
        ticks: list[Tick] = []
        while len(ticks) < count:
            got_run, batch = await self.batch()
            assert got_run == run, f"a tick of run {got_run}, expected run {run}"
            ticks += batch
        assert len(ticks) == count, ticks
        return ticks

    def nothing_pending(self) -> bool:
        return self._queue.empty()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.asynccontextmanager
async def reading(fake: FakeCoinbase, products: tuple[str, ...] = BOTH,
                  silence_timeout: float = 5.0,
                  info_wait: float = 0.0) -> AsyncIterator[FeedReader]:
    skipped: list[None] = []
    feed = LiveFeed(CoinbaseUpstream(products, fake.url, silence_timeout * UNIT, info_wait),
                    Backoff(0.05, 0.2), on_skip=lambda: skipped.append(None))
    reader = FeedReader(feed)
    try:
        yield reader
    finally:
        await reader.stop()
    assert len(skipped) == feed.skips.count


def seqs(ticks: list[Tick]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for tick in ticks:
        found.setdefault(tick.symbol, []).append(tick.seq)
    return found


@pytest.mark.anyio
async def test_trades_arrive_as_sent_with_our_seqs_quotes_names_and_opens() -> None:
    sent: list[dict[str, Any]] = []

    async def script(conn: FakeConnection) -> None:
        await conn.handshake()  # with the status and BTC's last_match
        await conn.ticker("BTC-USD", "400.10", "400.30", "390.50")
        await conn.ticker("ETH-USD", "3000.1", "3000.2", "2900")
        sent.append(await conn.trade("BTC-USD", "400.23", "0.0012"))
        sent.append(await conn.trade("ETH-USD", "3000.15", "1.5"))
        sent.append(await conn.trade("BTC-USD", "400.40", "0.5"))
        sent.append(await conn.trade("BTC-USD", "400.00", "2"))
        await conn.hold()

    async with FakeCoinbase(script) as fake:
        sent.append(fake.make_match("BTC-USD", "399.99", "0.1"))  # before we connect
        async with reading(fake, info_wait=3.0) as reader:
            ticks = await reader.ticks(5)
            await fake.wait_until(lambda: fake.connections[0].unsubscribed == ["status"],
                                  "the status channel unsubscribed")
            assert reader.feed.symbols == (
                SymbolInfo("BTC-USD", "Bitcoin / United States Dollar", "Crypto", 390.5),
                SymbolInfo("ETH-USD", "Ethereum / United States Dollar", "Crypto", 2900.0))
            assert reader.feed.skips.count == 0
    times = [rfc3339_ms(match["time"]) for match in sent]
    assert ticks == [
        Tick("BTC-USD", 1, times[0], 399.99, 0.1, 399.99, 399.99),  # last_match, no ticker yet
        Tick("BTC-USD", 2, times[1], 400.23, 0.0012, 400.10, 400.30),
        Tick("ETH-USD", 1, times[2], 3000.15, 1.5, 3000.1, 3000.2),
        Tick("BTC-USD", 3, times[3], 400.40, 0.5, 400.10, 400.40),
        Tick("BTC-USD", 4, times[4], 400.00, 2.0, 400.00, 400.30),
    ]
    assert sent[0]["time"] == "2025-11-23T06:40:00.001459Z"
    assert ticks[0].ts == 1_763_880_000_001.459  # to the microsecond
    assert fake.received[0] == {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"],
                                "channels": ["matches", "ticker", "heartbeat", "status"]}


@pytest.mark.anyio
async def test_the_first_connection_waits_a_while_for_names_and_opens_keeping_trades() -> None:
    async def script(conn: FakeConnection) -> None:
        await conn.handshake(status=False)
        await conn.trade("BTC-USD", "400", "1")  # while the feed waits: kept for after Connected
        await conn.ticker("BTC-USD", "399", "401", "390")
        await conn.hold()

    async with FakeCoinbase(script) as fake, reading(fake, info_wait=0.3) as reader:
        [tick] = await reader.ticks(1)
        assert (tick.seq, tick.price, tick.bid, tick.ask) == (1, 400.0, 400.0, 400.0)
        assert reader.feed.symbols == (SymbolInfo("BTC-USD", "", "Crypto", 390.0),
                                       SymbolInfo("ETH-USD", "", "Crypto", None))


@pytest.mark.anyio
async def test_unusable_and_out_of_order_messages_are_skipped_counted_and_never_passed_on() -> None:
    async def script(conn: FakeConnection) -> None:
        await conn.handshake()
        first = await conn.trade("BTC-USD", "400", "1")
        bad = [
            "{not json", '["a", "list"]', raw({"no": "type"}),
            raw({**first, "trade_id": 101, "price": "abc"}),
            raw({**first, "trade_id": 101, "price": "NaN"}),
            raw({key: value for key, value in first.items() if key != "price"} | {"trade_id": 101}),
            raw({**first, "trade_id": 101, "product_id": "DOGE-USD"}),  # not asked for
            raw(first),  # a duplicate
            raw({**first, "trade_id": 99}),  # out of order
        ]
        for text in bad:
            await conn.send_raw(text)
        await conn.send({"type": "l2update", "product_id": "BTC-USD", "changes": []})  # new type
        await conn.heartbeat("BTC-USD", 0)  # means nothing
        await conn.trade("BTC-USD", "401", "2")
        await conn.hold()

    async with FakeCoinbase(script) as fake, reading(fake) as reader:
        ticks = await reader.ticks(2)
        assert [(tick.seq, tick.price) for tick in ticks] == [(1, 400.0), (2, 401.0)]
        assert reader.feed.skips.count == 9
        assert reader.nothing_pending()


@pytest.mark.anyio
async def test_a_trade_id_gap_skips_one_seq_of_that_product_only() -> None:
    async def script(conn: FakeConnection) -> None:
        await conn.handshake()
        await conn.trade("BTC-USD", "400", "1")  # 100
        await conn.trade("ETH-USD", "3000", "1")  # 100
        await conn.trade("BTC-USD", "401", "1")  # 101
        await conn.trade("BTC-USD", "402", "1", trade_id=105)  # 102..104 missed
        await conn.trade("ETH-USD", "3001", "1")  # 101
        await conn.heartbeat("ETH-USD")  # in step: nothing
        await conn.heartbeat("ETH-USD", 102)  # ahead, but 102 comes before the next beat
        await conn.heartbeat("BTC-USD", 107)  # 106..107 may still come...
        await conn.heartbeat("BTC-USD", 107)  # ...but by the next beat they have not
        await conn.trade("BTC-USD", "403", "1", trade_id=108)
        await conn.trade("BTC-USD", "404", "1", trade_id=107)  # too late: given up
        await conn.trade("ETH-USD", "3002", "1")  # 102
        await conn.heartbeat("ETH-USD")
        await conn.trade("ETH-USD", "3003", "1")  # 103
        await conn.hold()

    async with FakeCoinbase(script) as fake, reading(fake) as reader:
        ticks = await reader.ticks(8)
        assert seqs(ticks) == {"BTC-USD": [1, 2, 4, 6], "ETH-USD": [1, 2, 3, 4]}
        assert [tick.price for tick in ticks if tick.symbol == "BTC-USD"] == [400, 401, 402, 403]
        assert reader.feed.skips.count == 1  # the late 107
        assert reader.runs == 1


@pytest.mark.anyio
async def test_a_reconnect_continues_the_run_without_a_duplicate_and_problem_tells_the_outage(
) -> None:
    release = asyncio.Event()

    async def first(conn: FakeConnection) -> None:
        await conn.handshake()
        await conn.trade("BTC-USD", "400", "1")
        await conn.trade("BTC-USD", "401", "1")
        await conn.trade("ETH-USD", "3000", "1")
        await release.wait()  # then closes

    async def second(conn: FakeConnection) -> None:
        await conn.handshake()  # last_match of BTC 101 and ETH 100: what we have
        await conn.trade("BTC-USD", "402", "1")
        await conn.trade("ETH-USD", "3001", "1")
        await conn.hold()

    async with FakeCoinbase(first, second) as fake, reading(fake) as reader:
        feed = reader.feed
        assert seqs(await reader.ticks(3)) == {"BTC-USD": [1, 2], "ETH-USD": [1]}
        assert feed.problem is None
        fake.down = True
        release.set()
        # The second refusal shows the first was seen (the feed retries after noting it).
        await fake.wait_until(lambda: fake.rejected >= 2, "two refused reconnects")
        assert feed.problem is not None and "HTTP 503" in feed.problem, feed.problem
        assert feed.away_since is not None
        fake.down = False
        ticks = await reader.ticks(2)  # still run 1
        assert [(t.symbol, t.seq, t.price) for t in ticks] == [("BTC-USD", 3, 402.0),
                                                               ("ETH-USD", 2, 3001.0)]
        assert feed.problem is None and feed.away_since is None
        assert feed.sessions == 2 and feed.skips.count == 0
        subscribes = [message for message in fake.received if message["type"] == "subscribe"]
        assert [message["channels"] for message in subscribes] == [
            ["matches", "ticker", "heartbeat", "status"], ["matches", "ticker", "heartbeat"]]


@pytest.mark.anyio
async def test_trades_missed_while_away_skip_a_seq_and_a_last_match_that_follows_does_not(
) -> None:
    async def first(conn: FakeConnection) -> None:
        await conn.handshake()
        await conn.trade("BTC-USD", "400", "1")  # 100
        await conn.trade("ETH-USD", "3000", "1")  # 100
        # Traded while we are away: BTC 101 and 102 (only 102 comes back, as last_match);
        # ETH 101, which its last_match brings back.
        conn.fake.make_match("BTC-USD", "401", "1")
        conn.fake.make_match("BTC-USD", "402", "1")
        conn.fake.make_match("ETH-USD", "3001", "1")

    async def second(conn: FakeConnection) -> None:
        await conn.handshake()
        await conn.trade("BTC-USD", "403", "1")
        await conn.hold()

    async with FakeCoinbase(first, second) as fake, reading(fake) as reader:
        ticks = await reader.ticks(5)
        assert seqs(ticks) == {"BTC-USD": [1, 3, 4], "ETH-USD": [1, 2]}
        assert [tick.price for tick in ticks if tick.symbol == "BTC-USD"] == [400, 402, 403]
        assert reader.runs == 1 and reader.feed.skips.count == 0


@pytest.mark.anyio
async def test_an_unknown_product_is_refused_and_no_run_starts() -> None:
    async with FakeCoinbase() as fake, reading(fake, ("BTC-USD", "BTC-USDX")) as reader:
        await fake.wait_until(lambda: fake.refused >= 2, "two refused subscriptions")
        assert reader.feed.problem == (f"Coinbase ({fake.url}): refused: BTC-USDX is not a "
                                       "valid product")
        assert reader.runs == 0 and reader.feed.sessions == 0


@pytest.mark.anyio
async def test_silence_before_and_after_the_subscription_reconnects() -> None:
    release = asyncio.Event()

    async def mute(conn: FakeConnection) -> None:
        await conn.hold()  # never answers the subscribe message

    async def quiet(conn: FakeConnection) -> None:
        await conn.handshake()
        await conn.hold()

    async def late(conn: FakeConnection) -> None:
        await release.wait()
        await conn.handshake()
        await conn.trade("BTC-USD", "400", "1")
        await conn.hold()

    async with FakeCoinbase(mute, quiet, late) as fake, \
            reading(fake, silence_timeout=0.3) as reader:
        feed = reader.feed
        await fake.wait_until(lambda: len(fake.connections) == 2, "a second connection", 10)
        assert feed.problem is not None
        assert feed.problem.endswith(f"no reply to the subscription in {0.3 * UNIT:g} s")
        await fake.wait_until(lambda: len(fake.connections) == 3, "a third connection", 10)
        assert feed.problem.endswith(f"no message for {0.3 * UNIT:g} s")
        release.set()
        [tick] = await reader.ticks(1)
        assert tick.price == 400.0 and feed.problem is None


@pytest.mark.anyio
async def test_an_error_after_the_handshake_ends_the_session() -> None:
    async def failing(conn: FakeConnection) -> None:
        await conn.handshake()
        await conn.trade("BTC-USD", "400", "1")
        await conn.send({"type": "error", "message": "an internal error"})
        await conn.hold()

    async def good(conn: FakeConnection) -> None:
        await conn.handshake()
        await conn.trade("BTC-USD", "401", "1")
        await conn.hold()

    async with FakeCoinbase(failing, good) as fake, reading(fake) as reader:
        ticks = await reader.ticks(2)
        assert [(tick.seq, tick.price) for tick in ticks] == [(1, 400.0), (2, 401.0)]
        assert fake.connections[0].closed and reader.feed.sessions == 2


# -- a real server fed by the fake -----------------------------------------------------------------


async def until_ready(server: RunningServer) -> dict[str, Any]:
    """/readyz's body once it says ready (a server on a live feed starts before its feed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10 * UNIT
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        while True:
            answer = await http.get("/readyz")
            if answer.status_code == 200:
                body: dict[str, Any] = answer.json()
                return body
            assert loop.time() < deadline, f"never ready: {answer.json()}"
            await asyncio.sleep(0.05)


async def metric(server: RunningServer, name: str) -> float:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        text = (await http.get("/metrics")).text
    [value] = [line.split()[-1] for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(value)


@pytest.mark.anyio
@pytest.mark.e2e
async def test_a_server_on_the_coinbase_feed_serves_its_trades_across_a_reconnect() -> None:
    release = asyncio.Event()  # used on the fake's loop only

    async def first(conn: FakeConnection) -> None:
        await conn.handshake()
        for product, bid, ask, open_24h in (("BTC-USD", "400.1", "400.3", "390"),
                                            ("ETH-USD", "3000.1", "3000.3", "2900")):
            await conn.ticker(product, bid, ask, open_24h)
        await conn.send_raw("{oops")
        for price in ("400.2", "400.25", "400.15"):
            await conn.trade("BTC-USD", price, "0.0012")
        await conn.trade("ETH-USD", "3000.2", "1.5")
        await release.wait()  # then closes

    async def second(conn: FakeConnection) -> None:
        await conn.handshake()  # each product's last_match again: nothing new
        await conn.trade("ETH-USD", "3000.4", "0.25")
        await conn.hold()

    async def let_go() -> None:
        release.set()

    with threaded_fake(first, second) as fake:
        config = make_config(**{"feed.source": "coinbase:BTC-USD,ETH-USD",
                                "feed.upstream.coinbase_url": fake.url,
                                "feed.upstream.reconnect_initial": 0.05,
                                "feed.upstream.reconnect_max": 0.2})
        with running_server(config) as server:
            assert (await until_ready(server))["feed"] == "coinbase"
            client = await TickerClient.open(server.ws_url)
            try:
                assert client.hello["feed"] == "coinbase"
                assert client.hello["symbols"] == ["BTC-USD", "ETH-USD"]
                await client.send({"op": "subscribe", "symbols": ["BTC-USD", "ETH-USD"]})
                await client.until_ticks("BTC-USD", 3)
                await client.until_ticks("ETH-USD", 1)
                btc = [(t["seq"], t["price"], t["size"], t["bid"], t["ask"])
                       for t in client.ticks["BTC-USD"]]
                assert btc == [(1, 400.2, 0.0012, 400.1, 400.3),
                               (2, 400.25, 0.0012, 400.1, 400.3),
                               (3, 400.15, 0.0012, 400.1, 400.3)]
                [eth] = client.ticks["ETH-USD"]
                assert (eth["seq"], eth["price"], eth["size"]) == (1, 3000.2, 1.5)
                assert await metric(server, "ticker_upstream_messages_skipped_total") == 1
                # The upstream drops us; the server reconnects and its run goes on: the next
                # trade is ETH's seq 2 (TickerClient checks every seq), with no new hello.
                await fake.run(let_go())
                await client.until_ticks("ETH-USD", 2)
                assert client.ticks["ETH-USD"][1]["price"] == 3000.4
                assert len(fake.fake.connections) == 2
                assert [m["type"] for m in client.messages].count("hello") == 1
                assert not [m for m in client.messages if m.get("reset")]
            finally:
                await client.close()
