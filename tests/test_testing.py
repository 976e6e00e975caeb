"""The server for other people's tests: ticker.testing.running_market and the ticker_market
fixture of the pytest plugin that ticker installs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from feeds.capture import record_fast
from feeds.recording import read_recording
from feeds.simulated import SimulatedFeed
from tests.servers import UNIT
from tests.wsclient import TickerClient
from ticker.config import load_config
from ticker.testing import Market, running_market

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

START_MS = 1_763_880_000_000.0


async def alpaca_trades(url: str, symbols: list[str], count: int) -> list[dict[str, Any]]:
    """What a bot would do: auth, subscribe to trades, collect ``count`` of them."""
    async with connect(url) as ws:
        await ws.recv()  # connected
        await ws.send(orjson.dumps({"action": "auth", "key": "PK", "secret": "s"}).decode())
        assert orjson.loads(await ws.recv())[0]["msg"] == "authenticated"
        await ws.send(orjson.dumps({"action": "subscribe", "trades": symbols}).decode())
        assert orjson.loads(await ws.recv())[0]["T"] == "subscription"
        trades: list[dict[str, Any]] = []
        while len(trades) < count:
            trades += orjson.loads(await asyncio.wait_for(ws.recv(), 10 * UNIT))
        return trades


async def test_the_fixture_serves_a_seeded_market_by_default(ticker_market: Market) -> None:
    assert ticker_market.alpaca_url == f"ws://127.0.0.1:{ticker_market.port}/v2/iex"
    assert "AAPL" in ticker_market.symbols and len(ticker_market.symbols) == 22
    async with httpx.AsyncClient(base_url=ticker_market.url) as http:
        listed = (await http.get("/api/symbols")).json()
    assert {row["symbol"] for row in listed} == set(ticker_market.symbols)
    trades = await alpaca_trades(ticker_market.alpaca_url, ["AAPL"], 3)
    assert {trade["S"] for trade in trades} == {"AAPL"}


@pytest.mark.ticker_market(symbols=["AAPL", "FAKEPACA"], tick_rate=200, seed=3,
                           alpaca_keys=["PK:s"])
async def test_the_marker_chooses_symbols_rate_seed_and_keys(ticker_market: Market) -> None:
    assert ticker_market.symbols == ("AAPL", "FAKEPACA")
    assert ticker_market.config.alpaca.keys == ("PK:s",)
    trades = await alpaca_trades(ticker_market.alpaca_url, ["FAKEPACA"], 5)
    assert {trade["S"] for trade in trades} == {"FAKEPACA"}
    assert all(90 < trade["p"] < 110 for trade in trades)  # a new symbol starts at $100


def test_the_same_seed_gives_the_same_market() -> None:
    async def first_trades(market: Market) -> list[tuple[int, float, int]]:
        client = await TickerClient.open(market.ws_url)
        try:  # protocol v1 from seq 0: the market's first trades, whenever we connect
            await client.send({"op": "subscribe", "symbols": ["AAPL"],
                               "resume": {"epoch": client.hello["epoch"], "seqs": {"AAPL": 0}}})
            await client.until_ticks("AAPL", 5)
            return [(t["seq"], t["price"], t["size"]) for t in client.ticks["AAPL"][:5]]
        finally:
            await client.close()

    runs = []
    for seed in (11, 11, 12):
        with running_market(seed=seed, symbols=["AAPL", "MSFT"], tick_rate=200) as market:
            runs.append(asyncio.run(first_trades(market)))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_a_recording_replays_with_its_own_prices(tmp_path: Path) -> None:
    defaults = load_config().feed
    stocks = [s for s in defaults.universe if s.symbol in ("AAPL", "KO")]
    path = tmp_path / "session.jsonl"
    record_fast(SimulatedFeed(stocks, defaults.market, 20.0, seed=2), path, 30.0, START_MS)
    recorded = [tick for tick in read_recording(path)[1] if tick.symbol == "KO"]
    with running_market(recording=path, speed=2.0) as market:
        assert market.symbols == ("AAPL", "KO")
        trades = asyncio.run(alpaca_trades(market.alpaca_url, ["KO"], 3))
    by_seq = {tick.seq: tick for tick in recorded}
    assert [trade["p"] for trade in trades] == [by_seq[trade["i"]].price for trade in trades]
