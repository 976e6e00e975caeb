"""feeds/live/alpaca.py: Alpaca's market-data stream v2 as a live feed. Against a scripted fake
of Alpaca (tests/alpaca_fake.py) through LiveFeed, and end to end with our own server's /v2/iex
as the upstream of a second server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from feeds.live.alpaca import (
    AlpacaUpstream,
    StreamReader,
    check_subscription,
    control_message,
    parse_alpaca_source,
)
from feeds.live.base import LiveFeed, Trade, UpstreamError, UpstreamRefused
from tests.alpaca_fake import FakeAlpaca, error, quote, trade
from tests.servers import UNIT, RunningServer, make_config, running_server
from tests.wsclient import TickerClient
from ticker.client.backoff import Backoff
from ticker.config import Config
from ticker.errors import ConfigError
from ticker.model import SymbolInfo, Tick

pytestmark = pytest.mark.anyio

AAPL = SymbolInfo("AAPL", "Apple Inc.", "Technology")
MSFT = SymbolInfo("MSFT", "Microsoft Corp.", "Technology")
UNIVERSE = (AAPL, MSFT, SymbolInfo("JPM", "JPMorgan Chase", "Financials"))
WRONG_SECRET = "wrong-s3cret-value"

# Alpaca's times (nanoseconds, as Go prints them) and the Unix ms they stand for, to the
# microsecond (the nanoseconds are cut).
T1, MS1 = "2021-02-22T15:51:44.208123456Z", 1614009104208.123
T2, MS2 = "2021-02-22T15:51:44.5Z", 1614009104500.0
T3, MS3 = "2021-02-22T15:51:45.000001Z", 1614009105000.001
T4, MS4 = "2021-02-22T15:51:46.7501Z", 1614009106750.1
T5, MS5 = "2021-02-22T10:51:47.25-05:00", 1614009107250.0


def alpaca_feed(alpaca: FakeAlpaca, *, secret: str | None = None, silence: float = 10.0,
                symbols: tuple[SymbolInfo, ...] = (AAPL, MSFT),
                on_skip: Callable[[], None] | None = None) -> LiveFeed:
    upstream = AlpacaUpstream("iex", symbols, alpaca.url, alpaca.key,
                              alpaca.secret if secret is None else secret, silence)
    return LiveFeed(upstream, Backoff(0.05, 0.2), on_skip)


class Reader:
    """Reads a feed's runs in the background: every tick with the number of its run (1, 2...)."""

    def __init__(self, feed: LiveFeed) -> None:
        self.feed = feed
        self.runs = 0
        self._ticks: asyncio.Queue[tuple[int, Tick]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Reader:
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _read(self) -> None:
        runs = self.feed.runs()
        try:
            async for run in runs:
                self.runs += 1
                async for batch in run:
                    for tick in batch:
                        self._ticks.put_nowait((self.runs, tick))
        finally:
            await runs.aclose()  # type: ignore[attr-defined]

    async def take(self, count: int, timeout: float = 5.0) -> list[tuple[int, Tick]]:
        return [await asyncio.wait_for(self._ticks.get(), timeout * UNIT) for _ in range(count)]

    def pending(self) -> int:
        return self._ticks.qsize()


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout * UNIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log line at every level, websockets' own included: none may show a credential."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    # caplog.text is this phase's (teardown's) alone: look at the test's own lines.
    lines = "\n".join(record.getMessage() for record in caplog.get_records("call"))
    fake = FakeAlpaca()
    for credential in (fake.key, fake.secret, WRONG_SECRET):
        assert credential not in lines


# -- against a fake Alpaca -------------------------------------------------------------------


async def test_trades_get_seqs_per_symbol_and_the_latest_quote_as_bid_and_ask(
        logs: pytest.LogCaptureFixture) -> None:
    async with FakeAlpaca() as alpaca:
        feed = alpaca_feed(alpaca)
        assert (feed.kind, feed.upstream.label) == ("alpaca-iex", f"Alpaca IEX ({alpaca.url})")
        async with Reader(feed) as reader:
            session = await alpaca.next_session()
            assert alpaca.paths == ["/v2/iex"]
            assert alpaca.received == [
                {"action": "auth", "key": alpaca.key, "secret": alpaca.secret},
                {"action": "subscribe", "trades": ["AAPL", "MSFT"], "quotes": ["AAPL", "MSFT"]}]
            await session.send(trade("MSFT", 400.25, 10, T1))  # no quote yet: the price
            await session.send(quote("AAPL", 130.3, 130.6, T1), trade("AAPL", 130.5, 100, T2))
            await session.send(trade("AAPL", 130.75, 0.5, T3))  # above the ask: ask = price
            # Bars, statuses, cancels and a stray success: none is a trade.
            await session.send(
                {"T": "b", "S": "AAPL", "o": 1, "h": 2, "l": 1, "c": 2, "v": 9, "t": T3},
                {"T": "s", "S": "AAPL", "sc": "H", "t": T3}, {"T": "x", "S": "AAPL", "t": T3},
                {"T": "success", "msg": "still here"})
            # One message, two trades (in time order out); Alpaca's bid 0 means none.
            await session.send(trade("AAPL", 130.2, 200, T5), quote("MSFT", 0, 401.0, T4),
                               trade("MSFT", 400.5, 3, T4))
            got = await reader.take(5)
            await asyncio.sleep(0.05)
            assert reader.pending() == 0
        assert got == [
            (1, Tick("MSFT", 1, MS1, 400.25, 10, 400.25, 400.25)),
            (1, Tick("AAPL", 1, MS2, 130.5, 100, 130.3, 130.6)),
            (1, Tick("AAPL", 2, MS3, 130.75, 0.5, 130.3, 130.75)),
            (1, Tick("MSFT", 2, MS4, 400.5, 3, 400.5, 401.0)),
            (1, Tick("AAPL", 3, MS5, 130.2, 200, 130.2, 130.6)),
        ]
        assert [type(tick.size) for _, tick in got] == [int, int, float, int, int]  # as sent
        assert tuple(feed.symbols) == (AAPL, MSFT)  # names and sectors as configured
        assert (feed.skips.count, feed.sessions, feed.problem) == (0, 1, None)


async def test_unusable_messages_are_skipped_counted_and_never_passed_on(
        logs: pytest.LogCaptureFixture) -> None:
    skipped: list[int] = []
    async with FakeAlpaca() as alpaca:
        feed = alpaca_feed(alpaca, on_skip=lambda: skipped.append(1))
        async with Reader(feed) as reader:
            session = await alpaca.next_session()
            for raw in ("not JSON", '{"T": "t"}', "[1, 2]", '[{"T": "t"}, "x"]', b"\xff"):
                await session.send_raw(raw)
            bad: list[dict[str, Any]] = [
                {**trade("AAPL", 130.5, 100, T1), "p": None},
                {**trade("AAPL", 130.5, 100, T1), "p": "130.5"},
                trade("AAPL", -1.0, 100, T1),
                trade("AAPL", 0, 100, T1),
                {**trade("AAPL", 130.5, 100, T1), "s": True},
                trade("AAPL", 130.5, -5, T1),
                {key: value for key, value in trade("AAPL", 130.5, 100, T1).items() if key != "t"},
                trade("AAPL", 130.5, 100, "yesterday"),
                trade("AAPL", 130.5, 100, "2021-02-22T15:51:44"),  # no zone
                trade("TSLA", 250.0, 100, T1),  # not asked for
                quote("TSLA", 249.0, 251.0, T1),
                {key: value for key, value in trade("AAPL", 130.5, 100, T1).items() if key != "S"},
                {**quote("AAPL", 130.0, 131.0, T1), "bp": "130"},
                {"S": "AAPL", "p": 130.5},  # no type
            ]
            for message in bad:
                await session.send(message)
            # A bad message among good ones costs only itself.
            await session.send(trade("TSLA", 250.0, 1, T1), trade("AAPL", 130.5, 100, T2))
            await session.send(trade("AAPL", 130.6, 100, T3))
            got = await reader.take(2)
            await asyncio.sleep(0.05)
            assert reader.pending() == 0
    assert got == [(1, Tick("AAPL", 1, MS2, 130.5, 100, 130.5, 130.5)),
                   (1, Tick("AAPL", 2, MS3, 130.6, 100, 130.6, 130.6))]
    assert feed.skips.count == len(skipped) == 5 + len(bad) + 1
    assert "skipped a message (1 so far): not JSON" in logs.text
    assert feed.problem is None


async def test_a_dropped_connection_starts_a_new_run_with_seqs_from_1(
        logs: pytest.LogCaptureFixture) -> None:
    async with FakeAlpaca() as alpaca:
        feed = alpaca_feed(alpaca)
        async with Reader(feed) as reader:
            first = await alpaca.next_session()
            await first.send(quote("AAPL", 130.0, 131.0, T1), trade("AAPL", 130.5, 100, T1))
            await first.send(trade("AAPL", 130.6, 100, T2), trade("MSFT", 400.0, 1, T2))
            before = await reader.take(3)
            await first.drop()
            second = await alpaca.next_session()
            # The quotes of the lost connection are stale: forgotten.
            await second.send(trade("AAPL", 130.4, 100, T3))
            await second.send(trade("MSFT", 401.0, 2, T4), trade("AAPL", 130.3, 50, T4))
            after = await reader.take(3)
            assert reader.runs == 2
    assert [(run, tick.symbol, tick.seq) for run, tick in before] == [
        (1, "AAPL", 1), (1, "AAPL", 2), (1, "MSFT", 1)]
    assert after == [(2, Tick("AAPL", 1, MS3, 130.4, 100, 130.4, 130.4)),
                     (2, Tick("MSFT", 1, MS4, 401.0, 2, 401.0, 401.0)),
                     (2, Tick("AAPL", 2, MS4, 130.3, 50, 130.3, 130.3))]
    assert feed.sessions == 2 and len(alpaca.paths) == 2
    assert "reconnected: Alpaca's stream cannot replay the trades missed" in logs.text


async def test_an_error_mid_stream_and_silence_end_the_session(
        logs: pytest.LogCaptureFixture) -> None:
    async with FakeAlpaca() as alpaca:
        feed = alpaca_feed(alpaca, silence=0.3)
        async with Reader(feed) as reader:
            session = await alpaca.next_session()
            await session.send(trade("AAPL", 130.5, 100, T1))
            await session.send(error(407))
            session = await alpaca.next_session()
            await session.send(trade("AAPL", 130.6, 100, T2))
            got = await reader.take(2)
            # Now silence: after 0.3 s the feed gives up on this connection, and comes back.
            await alpaca.next_session()
    assert [(run, tick.seq, tick.price) for run, tick in got] == [(1, 1, 130.5), (2, 1, 130.6)]
    assert "407 slow client; reconnecting" in logs.text
    assert "no message for 0 s; reconnecting" in logs.text
    assert feed.sessions == 3


async def test_wrong_keys_are_refused_and_the_secret_is_never_shown(
        logs: pytest.LogCaptureFixture) -> None:
    async with FakeAlpaca() as alpaca:
        feed = alpaca_feed(alpaca, secret=WRONG_SECRET)
        async with Reader(feed) as reader:
            await until(lambda: "402" in (feed.problem or ""), "the refusal")
            problem = feed.problem or ""
            assert problem == f"Alpaca IEX ({alpaca.url}): refused: 402 auth failed"
            assert (feed.sessions, reader.runs) == (0, 0)
        assert alpaca.received[0] == {"action": "auth", "key": alpaca.key,
                                      "secret": WRONG_SECRET}
        for shown in (problem, repr(feed.upstream), feed.upstream.label):
            assert WRONG_SECRET not in shown and alpaca.key not in shown
        assert "refused: 402 auth failed; reconnecting in 0.2 s" in logs.text  # at the cap


@pytest.mark.parametrize(("script", "refusal"), [
    # Not a refusal: after a drop the old connection may count a while; retried at the usual pace.
    ({"auth_error": 406}, ": 406 connection limit exceeded"),
    ({"auth_error": 409}, "refused: 409 insufficient subscription"),
    ({"unconfirmed": {"MSFT"}}, "refused: no trades of MSFT in the subscription"),
])
async def test_other_refusals(script: dict[str, Any], refusal: str,
                              logs: pytest.LogCaptureFixture) -> None:
    async with FakeAlpaca() as alpaca:
        for name, value in script.items():
            setattr(alpaca, name, value)
        feed = alpaca_feed(alpaca)
        async with Reader(feed):
            await until(lambda: refusal in (feed.problem or ""), refusal)
        assert feed.sessions == 0
        assert ("refused" in (feed.problem or "")) is refusal.startswith("refused")


async def test_the_problem_while_alpaca_is_down_and_none_once_connected(
        logs: pytest.LogCaptureFixture) -> None:
    alpaca = FakeAlpaca()
    await alpaca.start()
    await alpaca.stop()  # a port that was just free: nothing listens there now
    feed = alpaca_feed(alpaca)
    assert feed.problem == f"Alpaca IEX ({alpaca.url}): not connected yet"
    async with Reader(feed):
        await until(lambda: "Connect" in (feed.problem or ""), "a failed connection")
        assert (feed.problem or "").startswith(f"Alpaca IEX ({alpaca.url}): ")
        async with alpaca:
            await alpaca.next_session()
            await until(lambda: feed.problem is None, "the problem to clear")
        # Gone again (closing with 1001, going away), and not back.
        await until(lambda: feed.problem is not None, "the problem to come back")
        await until(lambda: "Connect" in (feed.problem or ""), "a failed reconnection")
    assert f"Alpaca IEX ({alpaca.url}): the upstream closed the connection; reconnecting" \
        in logs.text
    assert feed.sessions == 1


async def test_text_from_the_server_never_shows_the_credentials(
        logs: pytest.LogCaptureFixture) -> None:
    async with FakeAlpaca() as alpaca:
        feed = alpaca_feed(alpaca)
        async with Reader(feed):
            session = await alpaca.next_session()
            await session.send(trade(f"X{alpaca.secret}", 1.0, 1, T1))
            await session.send({"T": "error", "code": 500,
                                "msg": f"bad key {alpaca.key} or secret {alpaca.secret}"})
            await alpaca.next_session()  # the feed reconnected after the error
        assert feed.skips.count == 1
        assert f"Alpaca IEX ({alpaca.url}): 500 bad key *** or secret ***; reconnecting" \
            in logs.text
        assert "a trade of 'X***', which was not asked for" in logs.text


# -- the pure parts --------------------------------------------------------------------------


def test_the_handshake_checks() -> None:
    assert control_message([{"T": "t"}, {"T": "success", "msg": "connected"}]) == {
        "T": "success", "msg": "connected"}
    assert control_message([{"T": "q"}]) is None
    with pytest.raises(UpstreamRefused, match=r"^402 auth failed$"):
        control_message([{"T": "error", "code": 402, "msg": "auth failed"}])
    check_subscription({"T": "subscription", "trades": ["MSFT", "AAPL"], "quotes": []},
                       ["AAPL", "MSFT"])
    with pytest.raises(UpstreamRefused, match="no trades of AAPL"):
        check_subscription({"T": "subscription", "trades": ["MSFT"]}, ["AAPL", "MSFT"])
    with pytest.raises(UpstreamError, match="expected Alpaca's subscription"):
        check_subscription({"T": "subscription"}, ["AAPL"])


def test_the_reader_keeps_each_symbols_latest_quote() -> None:
    skipped: list[str] = []
    reader = StreamReader(["AAPL"], lambda why, raw: skipped.append(why))
    assert reader.read(b'[{"T":"q","S":"AAPL","bp":10.0,"ap":10.2,"t":"%s"}]' % T1.encode()) \
        == []
    assert reader.read(f'[{{"T":"t","S":"AAPL","p":10.1,"s":5,"t":"{T2}"}},'
                       f'{{"T":"q","S":"AAPL","bp":10.1,"ap":0,"t":"{T2}"}},'
                       f'{{"T":"t","S":"AAPL","p":10.15,"s":1.5,"t":"{T3}"}}]') == [
        Trade("AAPL", MS2, 10.1, 5, 10.0, 10.2), Trade("AAPL", MS3, 10.15, 1.5, 10.1, 10.15)]
    with pytest.raises(UpstreamError, match=r"^406 connection limit exceeded$"):
        reader.read('[{"T":"error","code":406,"msg":"connection limit exceeded"}]')
    assert skipped == []


def test_parse_alpaca_source() -> None:
    assert parse_alpaca_source("iex", UNIVERSE) == ("iex", UNIVERSE)
    assert parse_alpaca_source("SIP:aapl, MSFT,xyz.b,aapl", UNIVERSE) == (
        "sip", (AAPL, MSFT, SymbolInfo("XYZ.B")))
    assert parse_alpaca_source("iex:BRK-B", ()) == ("iex", (SymbolInfo("BRK-B"),))


@pytest.mark.parametrize(("args", "problem"), [
    ("nasdaq", "the Alpaca stream must be \"iex\" or \"sip\""),
    ("", "the Alpaca stream must be \"iex\" or \"sip\""),
    ("iex:", "'' in 'iex:' is not a stock symbol"),
    ("iex:AAPL,,MSFT", "'' in 'iex:AAPL,,MSFT' is not a stock symbol"),
    ("iex:AA PL", "'AA PL' in 'iex:AA PL' is not a stock symbol"),
    ("sip:BTC/USD", "'BTC/USD'"),
    ("sip:ABCDEFGHIJKLM", "'ABCDEFGHIJKLM'"),
    ("iex:Ä", "'Ä'"),
])
def test_parse_alpaca_source_refuses(args: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_alpaca_source(args, UNIVERSE)
    assert raised.value.key == "feed.source" and problem in raised.value.problem


def test_an_empty_universe_needs_symbols() -> None:
    with pytest.raises(ConfigError, match="list the symbols"):
        parse_alpaca_source("iex", ())


# -- end to end: our own server as the upstream ---------------------------------------------

KEY, SECRET = "KEY1234", "SECRET5678"


def relay_config(upstream: RunningServer) -> Config:
    """A node whose feed is ``upstream``'s /v2/iex, for AAPL and MSFT."""
    return make_config(**{"feed.source": "alpaca:iex:AAPL,MSFT",
                          "feed.upstream.alpaca_url": f"ws://127.0.0.1:{upstream.port}",
                          "feed.upstream.reconnect_initial": 0.05,
                          "feed.upstream.reconnect_max": 0.2})


async def subscribed(url: str) -> TickerClient:
    client = await TickerClient.open(url)
    await client.send({"op": "subscribe", "symbols": ["AAPL", "MSFT"]})
    await client.recv_type("subscribed")
    return client


def trades_of(ticks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in tick.items() if key != "seq"} for tick in ticks]


def overlap(a: list[dict[str, Any]], b: list[dict[str, Any]]
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The stretch of trades both lists hold, from each list: aligned on the later of the two
    first trades (found within a microsecond and by price and size), then compared exactly."""

    def find(tick: dict[str, Any], ticks: list[dict[str, Any]]) -> int:
        for index, other in enumerate(ticks):
            if (abs(other["ts"] - tick["ts"]) < 0.001 and other["price"] == tick["price"]
                    and other["size"] == tick["size"]):
                return index
        return -1

    start_b = find(a[0], b)
    start_a = 0
    if start_b < 0:
        start_a, start_b = find(b[0], a), 0
        assert start_a >= 0, "the two clients saw no trade in common"
    length = min(len(a) - start_a, len(b) - start_b)
    return a[start_a:start_a + length], b[start_b:start_b + length]


@pytest.mark.e2e
async def test_our_own_server_through_alpaca_is_relayed_price_for_price(
        monkeypatch: pytest.MonkeyPatch) -> None:
    source = make_config(**{"alpaca.keys": [f"{KEY}:{SECRET}"]})
    universe = {stock.symbol for stock in source.feed.universe}
    assert {"AAPL", "MSFT"} <= universe and source.feed.kind == "simulated"
    with running_server(source) as upstream:
        monkeypatch.setenv("APCA_API_KEY_ID", KEY)
        monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
        with running_server(relay_config(upstream)) as node:
            deadline = time.monotonic() + 10 * UNIT
            while not node.call(lambda: node.node.hub.ready):
                assert time.monotonic() < deadline, "the node's Alpaca feed did not start"
                await asyncio.sleep(0.02)
            direct = await subscribed(upstream.ws_url)
            relayed = await subscribed(node.ws_url)
            try:
                assert relayed.hello["feed"] == "alpaca-iex"
                assert relayed.hello["symbols"] == ["AAPL", "MSFT"]
                await relayed.until_ticks("AAPL", 30)
                await relayed.until_ticks("MSFT", 30)
                await direct.collect(0.2)  # the direct client is ahead: let it have them all
            finally:
                await direct.close()
                await relayed.close()
            async with httpx.AsyncClient(base_url=node.http_url, timeout=5 * UNIT) as http:
                ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
    for symbol in ("AAPL", "MSFT"):
        seen_directly, seen_relayed = overlap(trades_of(direct.ticks[symbol]),
                                              trades_of(relayed.ticks[symbol]))
        assert len(seen_relayed) >= 20
        assert seen_relayed == seen_directly


@pytest.mark.e2e
async def test_wrong_keys_leave_the_node_unready_saying_why(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with running_server(make_config(**{"alpaca.keys": [f"{KEY}:{SECRET}"]})) as upstream:
        monkeypatch.setenv("APCA_API_KEY_ID", KEY)
        monkeypatch.setenv("APCA_API_SECRET_KEY", WRONG_SECRET)
        with running_server(relay_config(upstream)) as node:
            async with httpx.AsyncClient(base_url=node.http_url, timeout=5 * UNIT) as http:
                deadline = time.monotonic() + 5 * UNIT
                while True:
                    ready = await http.get("/readyz")
                    reason = ready.json().get("reason", "")
                    if "refused" in reason or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.05)
    assert ready.status_code == 503
    assert "refused" in reason and "402" in reason, ready.text
    assert WRONG_SECRET not in ready.text and SECRET not in ready.text
