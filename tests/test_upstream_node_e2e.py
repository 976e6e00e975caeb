"""A node whose feed is a live upstream, as its operator sees it: start-up before the upstream is
there, /readyz and clients while it is away, and a recording of what it relayed that replays."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

import ticker.client
from feeds.recording import read_recording
from tests.processes import free_port
from tests.servers import UNIT, make_config, running_server
from ticker.client import Backoff, Reset, Snapshot, Tick
from ticker.config import Config

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def relay_config(upstream_port: int, **overrides: object) -> Config:
    return make_config(**{"feed.source": f"ticker:ws://127.0.0.1:{upstream_port}/ws",
                          "feed.upstream.reconnect_initial": 0.05,
                          "feed.upstream.reconnect_max": 0.3, **overrides})


def readyz(port: int) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)


async def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout * UNIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_relay_starts_before_its_upstream_and_says_why_it_is_not_ready() -> None:
    upstream_port = free_port()
    with running_server(relay_config(upstream_port)) as relay:
        answer = readyz(relay.port)
        assert answer.status_code == 503
        reason = answer.json()["reason"]
        assert "no feed yet" in reason and "upstream away" in reason
        assert f"127.0.0.1:{upstream_port}" in reason
        # A client may connect now: it is told to come back (1013, saying why) and does, by
        # itself.
        async with ticker.client.connect(relay.ws_url, ["AAPL"],
                                         backoff=Backoff(0.05, 0.3)) as stream:
            reading = asyncio.ensure_future(anext(stream))
            await wait_for(lambda: "1013" in (stream.problem or ""))
            assert "no feed yet: retry shortly (ticker (ws://127.0.0.1:" in (stream.problem or "")
            with running_server(make_config(**{"feed.tick_rate": 300.0}), port=upstream_port):
                async with asyncio.timeout(20 * UNIT):
                    first = await reading
                assert isinstance(first, Tick) and first.symbol == "AAPL"
                await wait_for(lambda: readyz(relay.port).status_code == 200)
                assert readyz(relay.port).json()["feed"] == "relay"
            # The upstream goes away again: not ready, with the reason; the client stays.
            await wait_for(lambda: readyz(relay.port).status_code == 503)
            assert "upstream away" in readyz(relay.port).json()["reason"]
            assert relay.node.hub.connections == 1
            assert stream.connections >= 2  # the 1013s before the upstream came, then one


async def test_a_recording_of_a_relayed_feed_names_its_symbols_and_replays(tmp_path: Path) -> None:
    with running_server(make_config(**{"feed.tick_rate": 400.0})) as upstream, \
            running_server(relay_config(upstream.port, **{
                "recordings.record": True, "recordings.dir": str(tmp_path)})) as relay:
        await wait_for(lambda: relay.node.hub.ticks_ingested > 300)
        symbols = [info.symbol for info in upstream.node.hub.symbols]
    [path] = await asyncio.to_thread(lambda: sorted(tmp_path.iterdir()))
    header, ticks = read_recording(path)
    assert [info.symbol for info in header.symbols] == symbols
    assert header.symbols[0].name  # the upstream's names, from its /api/symbols
    assert header.source == "relay"
    recorded = list(ticks)
    assert len(recorded) >= 300
    with running_server(make_config(**{"feed.source": "replay", "feed.replay.source": str(path),
                                       "feed.replay.speed": "max"})) as replay:
        await wait_for(lambda: replay.node.hub.ticks_ingested >= len(recorded))
        assert replay.node.hub.ticks_ingested == len(recorded)


async def test_a_relay_skips_what_its_upstream_sends_wrong_and_counts_it() -> None:
    """A stranger's protocol v1 server as the upstream: a tick without a seq and a message that
    is not JSON are skipped and counted, the connection goes on; an impossible price is skipped
    and counted too, and as its seq is then missing the relay's clients get that symbol reset."""
    good = [{"symbol": "ABC", "seq": seq, "ts": 1.7e12 + seq, "price": 10.0 + seq, "size": 5,
             "bid": 9.0, "ask": 20.0} for seq in range(6)]

    go = asyncio.Event()  # once the relay's client holds its snapshot

    def ticks(*items: dict[str, object]) -> str:
        return orjson.dumps({"type": "ticks", "ticks": list(items)}).decode()

    async def upstream(ws: ServerConnection) -> None:
        await ws.send(orjson.dumps({"type": "hello", "version": 1, "epoch": "E1", "feed": "x",
                                    "symbols": ["ABC"]}).decode())
        request = orjson.loads(await ws.recv())
        await ws.send(orjson.dumps({"type": "subscribed", "symbols": ["ABC"], "resumed": [],
                                    "id": request.get("id")}).decode())
        await ws.send(orjson.dumps({"type": "snapshot", "symbol": "ABC", "epoch": "E1",
                                    "reset": False, "seq": 0, "ticks": []}).decode())
        await go.wait()
        await ws.send(ticks(good[1]))
        await ws.send(ticks({k: v for k, v in good[2].items() if k != "seq"}))
        await ws.send("{not json")
        await ws.send(ticks(good[2], good[3]))
        await ws.send(ticks({**good[4], "price": -1.0}))
        await ws.send(ticks(good[5]))
        await ws.wait_closed()

    async with serve(upstream, "127.0.0.1", 0) as fake:
        port = fake.sockets[0].getsockname()[1]
        with running_server(relay_config(port)) as relay:
            async with ticker.client.connect(relay.ws_url, ["ABC"], snapshot=True) as stream:
                seen: list[tuple[str, int | str]] = []
                async with asyncio.timeout(15 * UNIT):
                    async for event in stream:
                        if isinstance(event, Snapshot):
                            go.set()
                        elif isinstance(event, Reset):
                            seen.append(("Reset", event.reason))
                        else:
                            seen.append(("Tick", event.seq))
                        if seen and seen[-1] == ("Tick", 5):
                            break
            metrics = (await asyncio.to_thread(httpx.get, f"{relay.http_url}/metrics")).text
            # The fake lives on this test's loop, which the relay's shutdown below does not run:
            # it closes first, so the relay is not left waiting for a close handshake.
            fake.close()
            await fake.wait_closed()
    assert seen == [("Tick", 1), ("Tick", 2), ("Tick", 3), ("Reset", "lost"), ("Tick", 5)]
    assert "ticker_upstream_messages_skipped_total 3.0" in metrics
