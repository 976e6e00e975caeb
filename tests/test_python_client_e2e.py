"""ticker.client against a real server: reconnects, resumes, resets, refusals, both transports.

Every case checks the promise a program relies on: per symbol, the seqs it gets rise by exactly
one within an epoch (no gap, no duplicate), and anything that cannot be continued arrives as an
explicit Reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator

import pytest

import ticker.client
from tests.servers import UNIT, RunningServer, make_config, running_server
from ticker.client import Backoff, Reset, Snapshot, StreamClosed, Tick
from ticker.client.transports import get_json

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TOKEN = "relay-token-0123456789"
FAST = Backoff(0.05, 0.3)


class Tape:
    """What a program received, by symbol and epoch, with the checks the client promises."""

    def __init__(self) -> None:
        self.seqs: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.resets: list[Reset] = []
        self.ticks = 0

    def take(self, event: object, epoch: str) -> None:
        if isinstance(event, Reset):
            self.resets.append(event)
            self.seqs[(event.symbol, event.epoch)].extend(t.seq for t in event.ticks)
        elif isinstance(event, Tick):
            self.seqs[(event.symbol, epoch)].append(event.seq)
            self.ticks += 1

    def assert_contiguous(self) -> None:
        for (symbol, epoch), seqs in self.seqs.items():
            gaps = [(a, b) for a, b in itertools.pairwise(seqs) if b != a + 1]
            assert not gaps, f"{symbol} in {epoch}: seqs not contiguous at {gaps[:5]}"


async def read(stream: ticker.client.Stream, tape: Tape, ticks: int,
               timeout: float = 20.0) -> None:
    """Until ``ticks`` more ticks arrived."""
    target = tape.ticks + ticks
    async with asyncio.timeout(timeout * UNIT):
        async for event in stream:
            tape.take(event, stream.epoch)
            if tape.ticks >= target:
                return


async def drain(stream: ticker.client.Stream) -> None:
    async for _ in stream:
        pass


@contextlib.asynccontextmanager
async def open_stream(url: str, symbols: list[str] | None, **options: object
                      ) -> AsyncIterator[ticker.client.Stream]:
    async with ticker.client.connect(url, symbols, backoff=FAST, **options) as stream:  # type: ignore[arg-type]
        yield stream


@contextlib.contextmanager
def server_on(port: int = 0, **overrides: object) -> Iterator[RunningServer]:
    with running_server(make_config(**{"feed.tick_rate": 500.0, **overrides}), port=port) as s:
        yield s


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_a_server_restart_is_an_explicit_reset_then_the_new_run(transport: str) -> None:
    tape = Tape()
    with server_on() as server:
        port = server.port
        stream = ticker.client.connect(f"ws://127.0.0.1:{port}/ws", ["AAPL", "MSFT"],
                                       backoff=FAST, transport=transport)  # type: ignore[arg-type]
        await read(stream, tape, 50)
        first_epoch = stream.epoch
    # The server is gone: the stream keeps trying; a server on the same port takes over.
    with server_on(port):
        await read(stream, tape, 50)
    await stream.close()
    assert stream.epoch != first_epoch and stream.connections == 2
    assert stream.transport == "" and stream.state.feed == "simulated"
    assert sorted(reset.symbol for reset in tape.resets) == ["AAPL", "MSFT"]
    assert all(reset.reason == "new_epoch" for reset in tape.resets)
    tape.assert_contiguous()
    assert stream.state.duplicates == 0


async def test_a_slow_consumer_close_is_resumed_with_no_gap() -> None:
    # A program that handles ticks slower than they come: once the socket buffers are full the
    # server sees it fall behind and closes it with 4008; its position is still in the large
    # history, so the reconnect resumes.
    config = {"feed.tick_rate": 6000.0, "hub.history_size": 30000,
              "server.max_lag_fraction": 0.01, "server.ws_send_buffer": 4096}
    with server_on(**config) as server:
        stats = server.node.stats
        async with open_stream(server.ws_url, None) as stream:
            tape = Tape()
            async with asyncio.timeout(60 * UNIT):
                async for event in stream:
                    tape.take(event, stream.epoch)
                    if stats.closes[4008]:
                        break
                    await asyncio.sleep(0.001)  # the program's own work on each tick
            # What was buffered before the close still arrives; then the resumed connection.
            while stream.connections < 2:
                await read(stream, tape, 100, timeout=30)
            await read(stream, tape, 2000, timeout=30)
    assert stats.closes[4008] >= 1
    assert stream.connections >= 2
    assert tape.resets == [], "the position was in history: a resume, not a reset"
    tape.assert_contiguous()


async def test_a_refused_token_stops_with_a_clear_error_and_a_good_one_streams() -> None:
    with server_on(**{"auth.tokens": [TOKEN]}) as server:
        url = server.ws_url
        for transport in ("ws", "sse"):
            async with open_stream(url, ["AAPL"], token="wrong-token-0123456789",
                                   transport=transport) as refused:
                with pytest.raises(StreamClosed, match=r"refused the token.*401"):
                    await anext(refused)
                assert refused.connections == 0
            async with open_stream(url, ["AAPL"], token=TOKEN, transport=transport) as stream:
                tape = Tape()
                await read(stream, tape, 10)
                assert stream.transport == transport
            async with open_stream(f"{url}?token={TOKEN}", ["AAPL"],
                                   transport=transport) as in_url:
                await read(in_url, Tape(), 10)
                assert in_url.problem is None, in_url.problem


async def test_an_unknown_symbol_stops_the_stream_with_the_server_s_words() -> None:
    with server_on() as server:
        async with open_stream(server.ws_url, ["AAPL", "NOPE"]) as stream:
            with pytest.raises(StreamClosed, match=r"unknown_symbol.*NOPE"):
                await asyncio.wait_for(drain(stream), 10 * UNIT)


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_subscribe_and_unsubscribe_while_running(transport: str) -> None:
    with server_on() as server:
        async with open_stream(server.ws_url, ["AAPL"], transport=transport,
                               snapshot=True) as stream:
            tape = Tape()
            first = await anext(stream)
            assert isinstance(first, Snapshot) and first.symbol == "AAPL"
            await read(stream, tape, 20)
            await stream.subscribe(["msft"])
            seen: set[str] = set()
            async with asyncio.timeout(15 * UNIT):
                async for event in stream:
                    tape.take(event, stream.epoch)
                    if isinstance(event, Tick):
                        seen.add(event.symbol)
                    if seen == {"AAPL", "MSFT"} and tape.ticks > 80:
                        break
            await stream.unsubscribe(["AAPL"])
            after: list[str] = []
            async with asyncio.timeout(15 * UNIT):
                async for event in stream:
                    if isinstance(event, Tick):
                        after.append(event.symbol)
                    if len(after) >= 40:
                        break
            # Ticks in flight when the unsubscribe was sent are not passed on either.
            assert set(after) == {"MSFT"}
            assert tape.resets == []
            tape.assert_contiguous()


async def test_max_rate_conflates_to_the_latest_tick() -> None:
    with server_on(**{"feed.tick_rate": 2000.0}) as server:
        async with open_stream(server.ws_url, ["AAPL"], max_rate=2.0) as stream:
            tape = Tape()
            loop = asyncio.get_running_loop()
            started = loop.time()
            await read(stream, tape, 6)
            took = loop.time() - started
    # 6 updates at 2 a second take about 2.5 s (the first comes at once); every tick would
    # come in well under a second at this rate.
    assert took > 1.5
    seqs = tape.seqs[("AAPL", stream.epoch)]
    assert seqs == sorted(set(seqs)) and seqs[-1] - seqs[0] > len(seqs)


async def test_the_stream_follows_every_symbol_when_given_none() -> None:
    with server_on() as server:
        symbols = await get_json(f"{server.http_url}/api/symbols")
        async with open_stream(server.ws_url, None) as stream:
            tape = Tape()
            await read(stream, tape, 300)
            assert set(stream.symbols) == {row["symbol"] for row in symbols}
            assert len({symbol for symbol, _ in tape.seqs}) > 5
            tape.assert_contiguous()


async def test_auto_falls_back_to_sse_where_the_websocket_is_refused() -> None:
    with server_on(**{"server.transports": ["sse", "poll"]}) as server:
        async with open_stream(server.ws_url, ["AAPL"]) as stream:
            tape = Tape()
            await read(stream, tape, 20)
            assert stream.transport == "sse" and stream.problem is None
            tape.assert_contiguous()
        async with open_stream(server.ws_url, ["AAPL"], transport="ws") as only_ws:
            with pytest.raises(StreamClosed, match="no WebSocket here"):
                await anext(only_ws)
