"""Several server processes share one feed through a real redis-server."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.processes import RedisServer, ticker, ticker_node, wait_ready
from tests.servers import UNIT
from tests.wsclient import TickerClient

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.redis]

SYMBOLS = ["AAPL", "MSFT", "TSLA"]


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def seq_view(client: TickerClient, symbol: str, start: int, end: int) -> list[dict[str, Any]]:
    return [t for t in client.ticks[symbol] if start <= t["seq"] <= end]


async def test_nodes_deliver_identical_ticks_and_resume_across_nodes(
        redis: RedisServer, tmp_path: Path) -> None:
    feed = ticker("feed", "--broker", redis.url, "--tick-rate", "300", "--seed", "9",
                  cwd=tmp_path)
    try:
        with ticker_node("--broker", redis.url, cwd=tmp_path) as (_, port_a), \
                ticker_node("--broker", redis.url, cwd=tmp_path) as (_, port_b):
            wait_ready(port_a)
            wait_ready(port_b)
            a = await TickerClient.open(f"ws://127.0.0.1:{port_a}/ws")
            b = await TickerClient.open(f"ws://127.0.0.1:{port_b}/ws")
            assert a.hello["epoch"] == b.hello["epoch"]
            for client in (a, b):
                await client.send({"op": "subscribe", "symbols": SYMBOLS})
            for client in (a, b):
                await client.until_ticks("TSLA", 150)
            for symbol in SYMBOLS:
                start = max(a.ticks[symbol][0]["seq"], b.ticks[symbol][0]["seq"])
                end = min(a.ticks[symbol][-1]["seq"], b.ticks[symbol][-1]["seq"])
                assert end > start
                assert seq_view(a, symbol, start, end) == seq_view(b, symbol, start, end)

            # /api/symbols and closed /api/bars agree on both nodes
            async with httpx.AsyncClient() as http:
                rows = [{r["symbol"]: r for r in (await http.get(
                    f"http://127.0.0.1:{port}/api/symbols")).json()} for port in (port_a, port_b)]
                for symbol, row in rows[0].items():
                    other = rows[1][symbol]
                    assert (row["name"], row["open"]) == (other["name"], other["open"])
                    if row["seq"] == other["seq"]:
                        assert row == other
                bars = [(await http.get(f"http://127.0.0.1:{port}/api/bars",
                                        params={"symbol": "AAPL", "limit": 100})).json()["bars"]
                        for port in (port_a, port_b)]
                closed = time.time() * 1000 - 2000
                assert [x for x in bars[0] if x["start"] < closed - 1000] == \
                    [x for x in bars[1] if x["start"] < closed - 1000]

            # a client of node A moves to node B and resumes: no gap, no duplicate
            await a.close()
            seqs, epoch = dict(a.last_seq), a.hello["epoch"]
            await asyncio.sleep(0.5)
            moved = await TickerClient.open(f"ws://127.0.0.1:{port_b}/ws")
            moved.last_seq = dict(seqs)
            await moved.send({"op": "subscribe", "symbols": SYMBOLS,
                              "resume": {"epoch": epoch, "seqs": seqs}})
            reply = await moved.recv_type("subscribed")
            assert sorted(reply["resumed"]) == sorted(SYMBOLS)
            await moved.until_ticks("TSLA", 30)
            assert moved.ticks["TSLA"][0]["seq"] == seqs["TSLA"] + 1
            await moved.close()
            await b.close()
        assert feed.stop() == 0, "ticker feed must stop cleanly on SIGTERM:\n" + feed.output
    finally:
        feed.stop()


async def test_redis_restart_mid_stream_loses_no_tick(redis: RedisServer, tmp_path: Path) -> None:
    feed = ticker("feed", "--broker", redis.url, "--tick-rate", "200", "--seed", "3",
                  cwd=tmp_path)
    try:
        with ticker_node("--broker", redis.url, cwd=tmp_path) as (node, port):
            wait_ready(port)
            client = await TickerClient.open(f"ws://127.0.0.1:{port}/ws")
            await client.send({"op": "subscribe", "symbols": SYMBOLS})
            await client.until_ticks("AAPL", 30)
            redis.stop()
            async with httpx.AsyncClient() as http:
                deadline = time.monotonic() + 10 * UNIT
                status = 200
                while status == 200 and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                    status = (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code
                assert status == 503
                await client.send({"op": "ping", "id": "still there"})
                assert (await client.recv_type("pong"))["id"] == "still there"
                held = client.last_seq["AAPL"]
                redis.start()
                # The client's checker asserts contiguity: ticks of the outage arrive, none lost.
                await client.until_ticks("AAPL", len(client.ticks["AAPL"]) + 40, timeout=30)
                assert client.last_seq["AAPL"] > held + 30
                assert not [m for m in client.messages if m.get("reset")]
                assert (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
            await client.close()
            assert "Traceback" not in node.output
    finally:
        feed.stop()
        assert "Traceback" not in feed.output


async def test_killing_one_node_leaves_the_other_untouched(redis: RedisServer,
                                                           tmp_path: Path) -> None:
    feed = ticker("feed", "--broker", redis.url, "--tick-rate", "200", cwd=tmp_path)
    try:
        with ticker_node("--broker", redis.url, cwd=tmp_path) as (victim, port_a), \
                ticker_node("--broker", redis.url, cwd=tmp_path) as (_, port_b):
            wait_ready(port_a)
            wait_ready(port_b)
            doomed = await TickerClient.open(f"ws://127.0.0.1:{port_a}/ws")
            survivor = await TickerClient.open(f"ws://127.0.0.1:{port_b}/ws")
            await survivor.send({"op": "subscribe", "symbols": ["AAPL"]})
            await survivor.until_ticks("AAPL", 20)
            victim.stop(signal.SIGKILL)
            await survivor.until_ticks("AAPL", len(survivor.ticks["AAPL"]) + 40)
            await survivor.close()
            with pytest.raises(ConnectionClosed):
                await doomed.recv()
    finally:
        feed.stop()


def test_unreachable_redis_is_one_clear_line(tmp_path: Path) -> None:
    for command in (["serve", "--port", "0"], ["feed"]):
        process = ticker(*command, "--broker", "redis://127.0.0.1:1/0", cwd=tmp_path)
        code = process.popen.wait(30)
        process.stop()
        assert code == 2
        assert "cannot reach redis at redis://127.0.0.1:1/0" in process.output
        assert "Traceback" not in process.output
