"""What an Alpaca connection is sent, from a real hub and Subscriber, without a socket."""

from __future__ import annotations

from typing import Any

import msgpack
import orjson
import pytest

from ticker.alpaca.protocol import Auth, Codec, Subscribe, Unsubscribe
from ticker.alpaca.session import ConnectionLedger, Credentials, Session
from ticker.alpaca.stream import AlpacaStream
from ticker.hub import Hub
from ticker.model import FeedStart, SymbolInfo, Tick, TickBatch
from ticker.subscriber import Subscriber

MINUTE = 60_000.0
T0 = 1_763_880_000_000.0  # a whole minute (2025-11-23T06:40:00Z)


class Connection:
    """A hub connection speaking Alpaca's protocol, as the endpoint wires one up."""

    def __init__(self, hub: Hub, codec: Codec = Codec.JSON, max_items: int = 1000) -> None:
        self.hub = hub
        self.codec = codec
        self.subscriber = Subscriber(max_lag=10_000, max_frame_ticks=1000)
        self.session = Session(Credentials(), ConnectionLedger(0), 100,
                               lambda: [info.symbol for info in hub.symbols])
        self.stream = AlpacaStream(hub, self.subscriber, self.session, codec, max_items)
        hub.connect(self.subscriber, hello=False)
        self.session.handle(Auth("PK", "s"))

    def subscribe(self, **channels: list[str]) -> None:
        self.session.handle(Subscribe({name: tuple(symbols) for name, symbols in
                                       channels.items()}))
        self.stream.sync()

    def unsubscribe(self, **channels: list[str]) -> None:
        self.session.handle(Unsubscribe({name: tuple(symbols) for name, symbols in
                                         channels.items()}))
        self.stream.sync()

    def frames(self) -> list[list[dict[str, Any]]]:
        decode = msgpack.unpackb if self.codec is Codec.MSGPACK else orjson.loads
        return [decode(frame) for frame in self.stream.take()]

    def received(self) -> list[dict[str, Any]]:
        return [item for frame in self.frames() for item in frame]


def make_hub(*symbols: str, epoch: str = "e1") -> Hub:
    hub = Hub(snapshot_size=5, history_size=1000, bars_kept=100)
    start(hub, *symbols, epoch=epoch)
    return hub


def start(hub: Hub, *symbols: str, epoch: str) -> None:
    hub.ingest(FeedStart(epoch, "scripted", tuple(SymbolInfo(s) for s in
                                                   symbols or ("AAPL", "MSFT", "JPM"))))


class Ticks:
    """Hands out consecutive seqs per symbol."""

    def __init__(self, hub: Hub, epoch: str = "e1") -> None:
        self.hub = hub
        self.epoch = epoch
        self.seqs: dict[str, int] = {}

    def __call__(self, symbol: str, ts: float, price: float, size: int = 100,
                 bid: float | None = None, ask: float | None = None) -> Tick:
        self.seqs[symbol] = self.seqs.get(symbol, 0) + 1
        tick = Tick(symbol, self.seqs[symbol], ts, price, size,
                    bid if bid is not None else round(price - 0.01, 2),
                    ask if ask is not None else round(price + 0.01, 2))
        self.hub.ingest(TickBatch(self.epoch, (tick,)))
        return tick


def test_trades_and_quotes_only_for_the_subscribed_symbols() -> None:
    hub = make_hub()
    trade = Ticks(hub)
    connection = Connection(hub)
    connection.subscribe(trades=["AAPL"], quotes=["MSFT"])
    trade("AAPL", T0 + 1.5, 10.0, 200)
    trade("MSFT", T0 + 2.25, 20.0, bid=19.99, ask=20.02)
    trade("MSFT", T0 + 3, 20.01, bid=19.99, ask=20.02)  # same book: no new quote
    trade("MSFT", T0 + 4, 20.03, bid=20.01, ask=20.04)
    trade("JPM", T0 + 5, 30.0)
    assert connection.received() == [
        {"T": "t", "S": "AAPL", "i": 1, "x": "V", "p": 10.0, "s": 200, "c": ["@"], "z": "C",
         "t": "2025-11-23T06:40:00.0015Z"},
        {"T": "q", "S": "MSFT", "bx": "V", "bp": 19.99, "bs": 1, "ax": "V", "ap": 20.02,
         "as": 1, "c": ["R"], "z": "C", "t": "2025-11-23T06:40:00.00225Z"},
        {"T": "q", "S": "MSFT", "bx": "V", "bp": 20.01, "bs": 1, "ax": "V", "ap": 20.04,
         "as": 1, "c": ["R"], "z": "C", "t": "2025-11-23T06:40:00.004Z"},
    ]
    connection.unsubscribe(trades=["AAPL"])
    trade("AAPL", T0 + 6, 10.5)
    assert connection.received() == []


def test_protocol_v1_messages_from_the_hub_never_reach_an_alpaca_client() -> None:
    hub = make_hub()
    connection = Connection(hub)
    connection.subscribe(trades=["AAPL"])
    start(hub, "AAPL", "MSFT", epoch="e2")  # a restart greets everyone with a v1 hello
    assert connection.received() == []


def test_a_minute_bar_is_sent_once_when_the_market_clock_closes_its_minute() -> None:
    hub = make_hub()
    trade = Ticks(hub)
    connection = Connection(hub)
    connection.subscribe(bars=["AAPL"], trades=["MSFT"])
    trade("AAPL", T0 + 1_000, 10.0, 100)
    trade("AAPL", T0 + 20_000, 12.0, 300)
    trade("JPM", T0 + 30_000, 50.0)
    trade("AAPL", T0 + 59_000, 11.0, 100)
    assert connection.received() == []  # the minute is still open
    trade("MSFT", T0 + MINUTE + 10, 20.0)  # any symbol's trade moves the market clock
    received = connection.received()
    assert [item["T"] for item in received] == ["t", "b"]
    assert received[1] == {"T": "b", "S": "AAPL", "o": 10.0, "h": 12.0, "l": 10.0, "c": 11.0,
                           "v": 500, "n": 3, "vw": 11.4, "t": "2025-11-23T06:40:00Z"}
    trade("MSFT", T0 + MINUTE + 20, 20.0)
    assert [item["T"] for item in connection.received()] == ["t"]  # no bar twice
    # A quiet minute for AAPL: no bar for it (as at Alpaca), and none for JPM, not subscribed.
    trade("MSFT", T0 + 3 * MINUTE, 20.0)
    assert [item["T"] for item in connection.received()] == ["t"]


def test_bars_that_closed_before_the_subscription_are_not_sent() -> None:
    hub = make_hub()
    trade = Ticks(hub)
    trade("AAPL", T0 + 1_000, 10.0)
    trade("AAPL", T0 + MINUTE + 1_000, 11.0)  # closes minute 0, before anyone subscribed
    connection = Connection(hub)
    connection.subscribe(bars=["*"])
    trade("AAPL", T0 + 2 * MINUTE, 12.0)  # closes minute 1
    bars = connection.received()
    assert [(bar["S"], bar["o"], bar["t"]) for bar in bars] == \
        [("AAPL", 11.0, "2025-11-23T06:41:00Z")]


def test_the_daily_bar_is_the_sum_of_the_minute_bars_so_far() -> None:
    hub = make_hub()
    trade = Ticks(hub)
    connection = Connection(hub)
    connection.subscribe(bars=["AAPL"], dailyBars=["AAPL"])
    trade("AAPL", T0 + 1_000, 10.0, 100)
    trade("AAPL", T0 + MINUTE + 1_000, 13.0, 300)
    trade("AAPL", T0 + 2 * MINUTE + 1_000, 9.0, 100)
    received = connection.received()
    minute_bars = [item for item in received if item["T"] == "b"]
    daily_bars = [item for item in received if item["T"] == "d"]
    assert [bar["o"] for bar in minute_bars] == [10.0, 13.0]
    assert daily_bars[-1] == {"T": "d", "S": "AAPL", "o": 10.0, "h": 13.0, "l": 10.0,
                              "c": 13.0, "v": 400, "n": 2, "vw": 12.25,
                              "t": "2025-11-23T00:00:00Z"}
    assert daily_bars[-1]["v"] == sum(bar["v"] for bar in minute_bars)


def test_data_is_batched_into_frames_of_at_most_max_items() -> None:
    hub = make_hub()
    trade = Ticks(hub)
    connection = Connection(hub, max_items=4)
    connection.subscribe(trades=["AAPL"])
    for index in range(10):
        trade("AAPL", T0 + index, 10.0 + index / 100)
    frames = connection.frames()
    assert [len(frame) for frame in frames] == [4, 4, 2]
    assert [item["i"] for frame in frames for item in frame] == list(range(1, 11))


def test_msgpack_carries_t_as_a_timestamp() -> None:
    hub = make_hub()
    trade = Ticks(hub)
    connection = Connection(hub, codec=Codec.MSGPACK)
    connection.subscribe(trades=["AAPL"], bars=["AAPL"])
    trade("AAPL", T0 + 0.001, 10.0)
    trade("AAPL", T0 + MINUTE, 10.0)
    first, _, bar = connection.received()
    assert first["t"] == msgpack.Timestamp(int(T0 // 1000), 1_000)
    assert bar["T"] == "b" and bar["t"] == msgpack.Timestamp(int(T0 // 1000), 0)


def test_a_wildcard_follows_the_symbols_of_a_restarted_feed() -> None:
    hub = make_hub("AAPL")
    connection = Connection(hub)
    connection.subscribe(trades=["*"])
    assert connection.subscriber.symbols == {"AAPL"}
    start(hub, "AAPL", "NVDA", epoch="e2")
    trade = Ticks(hub, epoch="e2")
    trade("NVDA", T0, 140.0)
    trade("AAPL", T0 + 1, 10.0)
    # The restart is noticed at the next drain; from then on the new symbol flows too.
    assert [(item["S"], item["i"]) for item in connection.received()] == [("AAPL", 1)]
    trade("NVDA", T0 + 2, 141.0)
    assert [(item["S"], item["i"]) for item in connection.received()] == [("NVDA", 2)]


@pytest.mark.parametrize("channel", ["trades", "quotes"])
def test_unknown_symbols_may_be_subscribed_and_simply_never_trade(channel: str) -> None:
    hub = make_hub()
    connection = Connection(hub)
    connection.subscribe(**{channel: ["FAKEPACA"]})
    Ticks(hub)("AAPL", T0, 10.0)
    assert connection.received() == []
    assert connection.session.channels[channel] == {"FAKEPACA": None}


def test_one_drain_is_in_time_order_across_symbols_and_bars_oldest_minute_first() -> None:
    hub = make_hub()
    trade = Ticks(hub)
    connection = Connection(hub)
    connection.subscribe(trades=["AAPL", "MSFT"], bars=["MSFT", "AAPL"])
    trade("MSFT", T0 + 1, 20.0)
    trade("AAPL", T0 + 2, 10.0)
    trade("MSFT", T0 + 3, 20.5)
    trade("AAPL", T0 + MINUTE + 1, 10.5)
    trade("MSFT", T0 + 2 * MINUTE + 5, 21.0)  # closes minutes 0 and 1 at once
    received = connection.received()
    assert [(item["T"], item["S"], item.get("p", item.get("o"))) for item in received] == [
        ("t", "MSFT", 20.0), ("t", "AAPL", 10.0), ("t", "MSFT", 20.5), ("t", "AAPL", 10.5),
        ("t", "MSFT", 21.0),
        ("b", "AAPL", 10.0), ("b", "MSFT", 20.0), ("b", "AAPL", 10.5)]
    assert [item["t"] for item in received if item["T"] == "b"] == [
        "2025-11-23T06:40:00Z", "2025-11-23T06:40:00Z", "2025-11-23T06:41:00Z"]
