"""Every client receives its ticks in the order the feed published them, across symbols and
frames, over every transport: a replayed recording arrives in recorded order, the simulated
market in time order."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hand_recordings import SYMBOLS, hand_ticks, write_hand_recording
from tests.servers import UNIT, RunningServer, make_config, running_server
from tests.test_transports_e2e import open_sse
from tests.wsclient import TickerClient

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TICKS = hand_ticks(600, seed=9)
PLACE = {(t["symbol"], t["seq"]): index for index, t in enumerate(TICKS)}


@pytest.fixture(scope="module")
def replay_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    path = write_hand_recording(tmp_path_factory.mktemp("order") / "day.jsonl", TICKS)
    config = make_config(**{"feed.source": "replay", "feed.replay.source": str(path),
                            "feed.replay.speed": 2.0, "feed.replay.loop": True})
    with running_server(config) as running:
        yield running


def assert_in_recorded_order(ticks: list[dict[str, Any]]) -> None:
    places = [PLACE[(t["symbol"], t["seq"])] for t in ticks]
    assert len(places) >= 100, f"only {len(places)} ticks: too few to say anything"
    out_of_order = [(TICKS[a], TICKS[b]) for a, b in itertools.pairwise(places)
                    if b <= a]
    assert not out_of_order, f"{len(out_of_order)} ticks out of order, e.g. {out_of_order[0]}"


async def ws_ticks(server: RunningServer, seconds: float) -> tuple[list[dict[str, Any]], int]:
    """The ticks one WebSocket client of every symbol gets, and the most ticks in one frame."""
    client = await TickerClient.open(server.ws_url)
    try:
        await client.send({"op": "subscribe", "symbols": list(SYMBOLS)})
        messages = await client.collect(seconds * UNIT)
    finally:
        await client.close()
    one_epoch = client.hello["epoch"]
    ticks, widest = [], 0
    for message in messages:
        if message["type"] == "hello":
            one_epoch = message["epoch"]
            ticks.clear()  # a loop of the replay starts over: compare within one pass
        elif message["type"] == "ticks":
            ticks += message["ticks"]
            widest = max(widest, len(message["ticks"]))
    assert one_epoch
    return ticks, widest


async def test_a_websocket_client_gets_a_replay_in_recorded_order(
        replay_server: RunningServer) -> None:
    ticks, widest = await ws_ticks(replay_server, 2.5)
    assert_in_recorded_order(ticks)
    assert widest > 1, "no frame carried several ticks: the order across symbols went untested"


async def test_an_sse_client_gets_a_replay_in_recorded_order(
        replay_server: RunningServer) -> None:
    ticks: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=replay_server.http_url, timeout=10) as http:
        async for reader in open_sse(http, "/sse?symbols=" + ",".join(SYMBOLS)):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 2.5 * UNIT
            while loop.time() < deadline:
                kind, _, data = await reader.next()
                if kind == "hello":
                    ticks.clear()
                elif kind == "ticks":
                    ticks += data["ticks"]
    assert_in_recorded_order(ticks)


async def test_a_long_polling_client_gets_a_replay_in_recorded_order(
        replay_server: RunningServer) -> None:
    ticks: list[dict[str, Any]] = []
    params = {"symbols": ",".join(SYMBOLS), "wait": "1"}
    async with httpx.AsyncClient(base_url=replay_server.http_url, timeout=10) as http:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.0 * UNIT
        while loop.time() < deadline:
            await asyncio.sleep(0.2)  # let ticks of several symbols pile up between polls
            body = (await http.get("/poll", params=params)).json()
            if body.get("reset"):
                ticks.clear()
            ticks += body["ticks"]
            params["cursor"] = body["cursor"]
    assert_in_recorded_order(ticks)


async def test_the_simulated_market_arrives_in_time_order_across_symbols() -> None:
    config = make_config(**{"feed.tick_rate": 3000.0})
    with running_server(config) as server:
        client = await TickerClient.open(server.ws_url)
        try:
            await client.send({"op": "subscribe", "symbols": client.hello["symbols"]})
            messages = await client.collect(1.5 * UNIT)
        finally:
            await client.close()
    frames = [m["ticks"] for m in messages if m["type"] == "ticks"]
    stamps = [t["ts"] for ticks in frames for t in ticks]
    assert len(stamps) > 1000 and max(map(len, frames)) > 1
    assert stamps == sorted(stamps)


def test_the_recording_interleaves_symbols_closely() -> None:
    """The premise of the tests above: symbols trade within the same millisecond."""
    same_ms = sum(1 for a, b in itertools.pairwise(TICKS)
                  if a["ts"] == b["ts"] and a["symbol"] != b["symbol"])
    assert same_ms > 50


async def test_each_pass_of_a_looping_replay_arrives_whole_before_the_next_hello(
        tmp_path: Path) -> None:
    """A new run's hello used to drop the ticks still due from the run before it."""
    path = write_hand_recording(tmp_path / "loop.jsonl", TICKS)
    config = make_config(**{"feed.source": "replay", "feed.replay.source": str(path),
                            "feed.replay.speed": 25.0, "feed.replay.loop": True})
    with running_server(config) as server:
        client = await TickerClient.open(server.ws_url)
        try:
            await client.send({"op": "subscribe", "symbols": list(SYMBOLS)})
            while sum(m["type"] == "hello" for m in client.messages) < 4:
                await client.recv(timeout=10)
        finally:
            await client.close()
    passes: list[list[dict[str, Any]]] = []
    for message in client.messages:
        if message["type"] == "hello":
            passes.append([])
        elif message["type"] == "ticks" and passes:
            passes[-1] += message["ticks"]
    for whole in passes[1:-1]:  # the first began before we came, the last is not over
        assert whole == TICKS
