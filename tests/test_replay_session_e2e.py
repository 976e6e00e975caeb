"""Per-connection replay (/ws/replay) as a program uses it, on recordings written by hand: what
the URL asks for is subscribed at once, nothing is played to nobody, replay_end comes last, and
bad lines cost only themselves."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.hand_recordings import (
    SYMBOLS,
    by_symbol,
    hand_ticks,
    nan_price_line,
    without,
    write_hand_recording,
)
from tests.servers import UNIT, RunningServer, make_config, running_server
from tests.wsclient import TickerClient

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TICKS = hand_ticks(240)
# Line damage in "bad.jsonl": a NaN price (json.dumps' way) in the middle and on the last line,
# a negative price, and a line that is not a tick at all.
BAD_LINES = {40: nan_price_line(TICKS[40]), 41: orjson.dumps({**TICKS[41], "price": -1.0}).decode(),
             239: nan_price_line(TICKS[239])}
GOOD_OF_BAD = without(TICKS, list(BAD_LINES))


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("hand")
    write_hand_recording(directory / "hand.jsonl", TICKS)
    bad = write_hand_recording(directory / "bad.jsonl", TICKS, BAD_LINES)
    lines = bad.read_text().splitlines()
    lines.insert(100, "this line is not a tick")
    bad.write_text("\n".join(lines) + "\n")
    header = bad.read_text().splitlines()[0]
    (directory / "nothing.jsonl").write_text(
        f"{header}\n{nan_price_line(TICKS[0])}\n{{\"symbol\": \"AAPL\"}}\n")
    return directory


@pytest.fixture(scope="module")
def server(directory: Path) -> Iterator[RunningServer]:
    config = make_config(**{"recordings.dir": str(directory), "server.idle_timeout": 1.0})
    with running_server(config) as running:
        yield running


async def replay(server: RunningServer, query: str) -> TickerClient:
    return await TickerClient.open(f"{server.ws_url}/replay?{query}")


async def until_end(client: TickerClient, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Every message up to and including replay_end, then a moment more: nothing may follow."""
    await client.recv_type("replay_end", timeout=timeout)
    end = len(client.messages)
    await client.collect(0.3)
    assert len(client.messages) == end, f"after replay_end: {client.messages[end:][:3]}"
    return client.messages


def received_ticks(client: TickerClient) -> list[dict[str, Any]]:
    """Every tick, in the order it arrived (snapshots included)."""
    return [tick for message in client.messages if message["type"] in ("ticks", "snapshot")
            for tick in message["ticks"]]


@pytest.mark.parametrize("speed", ["20", "max"])
async def test_the_url_symbols_are_subscribed_at_connect_and_get_every_tick_from_the_first(
        server: RunningServer, speed: str) -> None:
    client = await replay(server, f"recording=hand.jsonl&speed={speed}&symbols=AAPL,amd")
    try:
        subscribed = await client.recv_type("subscribed")
        assert subscribed["symbols"] == ["AAPL", "AMD"]
        await until_end(client)
        wanted = [t for t in TICKS if t["symbol"] in ("AAPL", "AMD")]
        assert received_ticks(client) == wanted
    finally:
        await client.close()


async def test_a_client_that_subscribes_after_hello_gets_every_tick_at_max(
        server: RunningServer) -> None:
    client = await replay(server, "recording=hand.jsonl&speed=max")
    try:
        assert client.hello["symbols"] == list(SYMBOLS)
        await asyncio.sleep(0.5)  # playback waits for the subscription however long it takes
        await client.send({"op": "subscribe", "symbols": list(SYMBOLS)})
        await until_end(client)
        assert received_ticks(client) == TICKS
    finally:
        await client.close()


async def test_a_subscribe_adds_to_the_url_symbols(server: RunningServer) -> None:
    client = await replay(server, "recording=hand.jsonl&speed=5&symbols=AAPL")
    try:
        await client.recv_type("subscribed")
        await client.send({"op": "subscribe", "symbols": ["XOM"], "id": 1})
        assert (await client.recv_type("subscribed"))["symbols"] == ["XOM"]
        await until_end(client)
        assert client.ticks["AAPL"] == by_symbol(TICKS)["AAPL"]
        assert client.ticks["XOM"][-1] == by_symbol(TICKS)["XOM"][-1]  # snapshot, then live
    finally:
        await client.close()


async def test_without_a_subscription_nothing_plays_and_the_idle_close_comes(
        server: RunningServer) -> None:
    client = await replay(server, "recording=hand.jsonl&speed=max")
    with pytest.raises(ConnectionClosed) as closed:
        await _read_until_closed(client)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    assert [m["type"] for m in client.messages] == ["hello"]  # not a tick, not a replay_end


async def _read_until_closed(client: TickerClient) -> None:
    while True:
        await client.recv(timeout=5.0)


async def test_replay_end_is_the_last_message_after_resume_and_a_speed_change(
        server: RunningServer) -> None:
    client = await replay(server, "recording=hand.jsonl")
    try:
        await client.send({"op": "subscribe", "symbols": list(SYMBOLS)})
        await client.send({"op": "resume"})
        await client.send({"op": "speed", "speed": 50})
        messages = await until_end(client)
        assert messages[-1]["type"] == "replay_end"
        for symbol, ticks in by_symbol(TICKS).items():
            assert client.ticks[symbol] == ticks, f"{symbol}: not every tick before replay_end"
        assert received_ticks(client) == TICKS
    finally:
        await client.close()


async def test_ticks_arrive_in_recorded_order_across_symbols(server: RunningServer) -> None:
    client = await replay(server, "recording=hand.jsonl&speed=4&symbols=" + ",".join(SYMBOLS))
    try:
        await until_end(client)
        ticks = received_ticks(client)
        assert ticks == TICKS
        assert [t["ts"] for t in ticks] == sorted(t["ts"] for t in ticks)
        assert max(len(m["ticks"]) for m in client.messages if m["type"] == "ticks") > 1, \
            "the test means nothing unless some frame carried several ticks"
    finally:
        await client.close()


async def test_bad_lines_are_skipped_and_everything_else_plays(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        before = _skipped((await http.get("/metrics")).text)
        client = await replay(server, "recording=bad.jsonl&speed=max&symbols="
                              + ",".join(SYMBOLS))
        try:
            await until_end(client)
            assert received_ticks(client) == GOOD_OF_BAD
            assert not [m for m in client.messages if m["type"] == "snapshot" and m["reset"]]
        finally:
            await client.close()
        assert _skipped((await http.get("/metrics")).text) == before + 4
        listing = {r["name"]: r for r in (await http.get("/api/recordings")).json()}
    assert listing["bad.jsonl"]["tick_count"] == len(GOOD_OF_BAD)
    assert listing["bad.jsonl"]["unreadable_lines"] == 4
    assert listing["bad.jsonl"]["last_ts"] == GOOD_OF_BAD[-1]["ts"]
    assert listing["nothing.jsonl"]["tick_count"] == 0


async def test_a_recording_without_a_readable_tick_is_refused_with_a_reason(
        server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{server.ws_url}/replay?recording=nothing.jsonl"):
            pass
    assert refused.value.response.status_code == 400
    assert "no readable tick" in orjson.loads(refused.value.response.body)["message"]


def _skipped(metrics: str) -> float:
    [line] = [line for line in metrics.splitlines()
              if line.startswith("ticker_recording_lines_skipped_total ")]
    return float(line.split()[1])


async def test_serve_replay_skips_bad_lines_and_plays_everything_else(directory: Path) -> None:
    config = make_config(**{"feed.source": "replay", "feed.replay.source":
                            str(directory / "bad.jsonl"), "feed.replay.speed": "max"})
    with running_server(config) as server:
        client = await TickerClient.open(server.ws_url)
        try:
            # Resuming from seq 0 asks for everything still in history: the whole recording.
            await client.send({"op": "subscribe", "symbols": list(SYMBOLS), "resume": {
                "epoch": client.hello["epoch"], "seqs": dict.fromkeys(SYMBOLS, 0)}})
            for symbol, ticks in by_symbol(GOOD_OF_BAD).items():
                await client.until_ticks(symbol, len(ticks))
            assert received_ticks(client) == GOOD_OF_BAD
        finally:
            await client.close()
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            assert _skipped((await http.get("/metrics")).text) == 4
            assert (await http.get("/readyz")).status_code == 200


def test_serve_replay_of_a_recording_without_a_readable_tick_is_a_one_line_error(
        directory: Path) -> None:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "ticker", "serve", "--port", "0", "--replay",
                           str(directory / "nothing.jsonl")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "nothing.jsonl" in line and "no readable tick" in line
    assert time.monotonic() - started < 8 * UNIT  # not the 10 s start-up timeout
