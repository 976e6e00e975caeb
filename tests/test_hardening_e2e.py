"""Hardening, one behaviour per test, each against a real server with real clients: a client
misbehaves, gets its documented answer, and a second, well-behaved client (Watcher) keeps
receiving every tick with no gap all the while."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.scripted_feed import ScriptedFeed
from tests.servers import UNIT, RunningServer, make_config, running_server
from tests.wsclient import TickerClient, Watcher

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

WATCHED = ["AAPL", "MSFT", "NVDA", "TSLA"]


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    config = make_config(**{"server.ops_per_second": 20.0, "server.ops_burst": 50,
                            "server.rate_limit_strikes": 30, "server.idle_timeout": 1.0,
                            "server.max_symbols_per_connection": 500})
    with running_server(config) as running:
        yield running


async def close_code(ws: ClientConnection, timeout: float = 10.0) -> int:
    """Read until the server closes; the code of its close frame."""
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(_read_forever(ws), timeout * UNIT)
    received = closed.value.rcvd
    assert received is not None, f"no close frame from the server: {closed.value!r}"
    return received.code


async def _read_into(ws: ClientConnection, messages: list[dict[str, object]]) -> None:
    while True:
        messages.append(orjson.loads(await asyncio.wait_for(ws.recv(), 5 * UNIT)))


async def _read_forever(ws: ClientConnection) -> None:
    while True:
        await ws.recv()


async def test_a_message_over_the_size_cap_closes_1009(server: RunningServer) -> None:
    async with Watcher(server.ws_url, WATCHED) as watcher:
        async with connect(server.ws_url, max_size=None) as bad:
            await bad.send(orjson.dumps({"op": "ping", "id": "x" * 70_000}).decode())
            assert await close_code(bad) == 1009
        await watcher.keeps_receiving()


async def test_text_that_is_not_utf8_closes_1007(server: RunningServer) -> None:
    async with Watcher(server.ws_url, WATCHED) as watcher:
        async with connect(server.ws_url) as bad:
            await bad.send(b'{"op":"ping","id":"\xff\xfe"}', text=True)
            assert await close_code(bad) == 1007
        await watcher.keeps_receiving()


async def test_a_binary_frame_closes_1003(server: RunningServer) -> None:
    async with Watcher(server.ws_url, WATCHED) as watcher:
        async with connect(server.ws_url) as bad:
            await bad.recv()  # hello
            await bad.send(b'{"op":"ping"}')
            assert await close_code(bad) == 1003
        await watcher.keeps_receiving()


async def test_more_than_the_symbol_cap_is_refused_and_the_connection_goes_on() -> None:
    config = make_config(**{"feed.symbols": 600, "feed.tick_rate": 2000.0})
    with running_server(config) as server:
        async with Watcher(server.ws_url, ["S0001", "S0002", "S0003"]) as watcher:
            greedy = await TickerClient.open(server.ws_url)
            symbols = [f"S{n:04d}" for n in range(1, 502)]
            await greedy.send({"op": "subscribe", "symbols": symbols, "id": 1})
            error = await greedy.recv_type("error")
            assert error["code"] == "too_many_symbols" and error["id"] == 1
            await greedy.send({"op": "subscribe", "symbols": symbols[:500], "id": 2})
            assert len((await greedy.recv_type("subscribed"))["symbols"]) == 500
            await greedy.send({"op": "subscribe", "symbols": ["S0600"], "id": 3})
            assert (await greedy.recv_type("error"))["code"] == "too_many_symbols"
            await greedy.close()
            await watcher.keeps_receiving()


async def test_too_many_ops_get_rate_limited_then_closed_1008(server: RunningServer) -> None:
    async with Watcher(server.ws_url, WATCHED) as watcher:
        polite = await TickerClient.open(server.ws_url)
        # Subscribed first, so the idle timeout (1 s here) never closes it on a slow machine.
        await polite.send({"op": "subscribe", "symbols": ["AAPL"]})
        for n in range(60):  # a burst of 50 is allowed (the subscribe was one), the rest refused
            await polite.send({"op": "ping", "id": n})
        replies = [await polite.recv_type_in(("pong", "error")) for _ in range(60)]
        pongs = [r for r in replies if r["type"] == "pong"]
        refused = [r for r in replies if r["type"] == "error"]
        assert len(pongs) >= 49 and refused, replies[-3:]
        assert all(r["code"] == "rate_limited" and "retry in" in r["message"] for r in refused)
        assert {r["id"] for r in refused} <= set(range(49, 60))  # answered by id
        await asyncio.sleep(1.0)  # within the rate again: served again
        await polite.send({"op": "ping", "id": "later"})
        assert (await polite.recv_type("pong"))["id"] == "later"
        await polite.close()

        async with connect(server.ws_url) as flood:
            for n in range(200):
                try:
                    await flood.send(orjson.dumps({"op": "ping", "id": n}).decode())
                except ConnectionClosed:
                    break
            assert await close_code(flood) == 1008
        await watcher.keeps_receiving()


@pytest.mark.parametrize("count", [501, 5000])
async def test_unknown_symbols_over_the_cap_are_too_many_symbols_in_a_short_reply(
        server: RunningServer, count: int) -> None:
    async with Watcher(server.ws_url, WATCHED) as watcher, connect(server.ws_url) as greedy:
        await greedy.recv()  # hello
        names = [f"NOPE{n:05d}" for n in range(count)]
        await greedy.send(orjson.dumps({"op": "subscribe", "symbols": names, "id": 1}).decode())
        raw = await asyncio.wait_for(greedy.recv(), 5 * UNIT)
        reply = orjson.loads(raw)
        assert (reply["type"], reply["code"], reply["id"]) == ("error", "too_many_symbols", 1)
        assert len(raw) < 400, f"a {len(raw)}-byte error for a {count}-symbol request"
        # Under the cap, unknown names are named, a few of them: the reply stays short.
        await greedy.send(orjson.dumps({"op": "subscribe", "symbols": names[:400]}).decode())
        raw = await asyncio.wait_for(greedy.recv(), 5 * UNIT)
        reply = orjson.loads(raw)
        assert reply["code"] == "unknown_symbol" and "NOPE00000" in reply["message"]
        assert "and 392 more" in reply["message"] and len(raw) < 400
        # Hundreds of unexpected fields: the same bound.
        noise = {f"field{n}": n for n in range(1000)}
        await greedy.send(orjson.dumps({"op": "ping", **noise}).decode())
        raw = await asyncio.wait_for(greedy.recv(), 5 * UNIT)
        assert orjson.loads(raw)["code"] == "bad_request" and len(raw) < 500
        await greedy.send('{"op":"ping","id":"still"}')
        assert orjson.loads(await greedy.recv())["id"] == "still"
        await watcher.keeps_receiving()


async def test_a_flood_of_pings_gets_every_reply_owed_before_the_close(
        server: RunningServer) -> None:
    """Burst 50, 20/s, 30 strikes: ~50 pongs, then 29 rate_limited errors, then 1008. Each
    reply the server produced reaches the client, in order, and the close comes last."""
    async with Watcher(server.ws_url, WATCHED) as watcher, connect(server.ws_url) as flood:
        await flood.recv()  # hello
        for n in range(150):
            await flood.send(orjson.dumps({"op": "ping", "id": n}).decode())
        replies: list[dict[str, object]] = []
        with pytest.raises(ConnectionClosed) as closed:
            await _read_into(flood, replies)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert "rate limit" in closed.value.rcvd.reason
        assert [r["id"] for r in replies] == list(range(len(replies))), "a reply lost or reordered"
        pongs = [r for r in replies if r["type"] == "pong"]
        refused = [r for r in replies if r["type"] == "error"]
        assert len(pongs) >= 50 and all(r["code"] == "rate_limited" for r in refused)
        assert len(refused) == 29  # the 30th strike is the close, with no reply of its own
        assert replies[-1]["type"] == "error"
        await watcher.keeps_receiving()


async def test_a_connection_over_the_cap_is_refused_at_the_handshake() -> None:
    config = make_config(**{"server.max_connections": 3})
    with running_server(config) as server:
        async with Watcher(server.ws_url, WATCHED) as watcher:
            first = await TickerClient.open(server.ws_url)
            second = await TickerClient.open(server.ws_url)
            with pytest.raises(InvalidStatus) as refused:
                await connect(server.ws_url)
            assert refused.value.response.status_code == 503
            assert orjson.loads(refused.value.response.body)["code"] == "server_full"
            async with httpx.AsyncClient(timeout=5 * UNIT) as http:
                sse = await http.get(f"{server.http_url}/sse?symbols=AAPL")
                poll = await http.get(f"{server.http_url}/poll?symbols=AAPL&wait=0")
            assert (sse.status_code, poll.status_code) == (503, 503)
            await watcher.keeps_receiving()
            await first.close()
            # A place is free again.
            deadline = time.monotonic() + 5 * UNIT
            while server.node.stats.open_connections() > 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            third = await TickerClient.open(server.ws_url)
            await third.close()
            await second.close()
            await watcher.keeps_receiving()


async def test_a_socket_that_never_subscribes_is_closed_as_idle(server: RunningServer) -> None:
    async with Watcher(server.ws_url, WATCHED) as watcher:
        async with connect(server.ws_url) as idle:
            opened = time.monotonic()
            assert await close_code(idle) == 4001
            assert time.monotonic() - opened < 3.5 * UNIT  # idle_timeout 1 s + the 1 s sweep
        await watcher.keeps_receiving()
        # The watcher itself subscribed long ago and is still here.
        assert server.node.stats.transports["ws"].connections >= 1


async def test_symbols_are_validated_and_never_reflected_as_markup(
        server: RunningServer) -> None:
    async with Watcher(server.ws_url, WATCHED) as watcher:
        client = await TickerClient.open(server.ws_url)
        await client.send({"op": "subscribe", "symbols": ["<img src=x onerror=alert(1)>"],
                           "id": 1})
        error = await client.recv_type("error")
        assert error["code"] == "bad_request" and "<" not in error["message"]
        await client.send({"op": "<b>", "id": 2})
        error = await client.recv_type("error")
        assert error["code"] == "unknown_op" and "<b>" not in error["message"]
        await client.close()
        async with httpx.AsyncClient(timeout=5 * UNIT) as http:
            for path in ("/sse?symbols=<script>", "/poll?symbols=AAPL&wait=<b>",
                         "/api/bars?symbol=<script>", "/api/bars?symbol=AAPL&limit=<i>"):
                answer = await http.get(server.http_url + path)
                assert answer.status_code == 400, path
                assert answer.headers["content-type"] == "application/json", path
                assert answer.headers["x-content-type-options"] == "nosniff", path
                assert b"<" not in answer.content, (path, answer.content)
        await watcher.keeps_receiving()


async def test_max_rate_conflates_to_the_latest_tick(server: RunningServer) -> None:
    async with Watcher(server.ws_url, WATCHED) as watcher, connect(server.ws_url) as merged:
        await merged.send(orjson.dumps({"op": "subscribe", "symbols": ["NVDA"],
                                        "max_rate": 2}).decode())
        updates: list[dict[str, object]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.0
        while (left := deadline - loop.time()) > 0:
            try:
                message = orjson.loads(await asyncio.wait_for(merged.recv(), left))
            except TimeoutError:
                break
            if message["type"] == "ticks":
                updates += message["ticks"]
        await watcher.keeps_receiving()
        every = watcher.client.ticks["NVDA"] if watcher.client else []
        # NVDA trades ~70 times a second here; at most 2 updates a second (one slack each way).
        assert 3 <= len(updates) <= 8, len(updates)
        seqs = [t["seq"] for t in updates]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # type: ignore[type-var]
        by_seq = {t["seq"]: t for t in every}
        for tick in updates:  # each update is a real tick, exactly as everyone else got it
            assert by_seq.get(tick["seq"], tick) == tick
        assert server.node.stats.transports["ws"].conflated > 50


async def test_dead_peers_are_reaped_and_idle_healthy_clients_survive() -> None:
    config = make_config(**{"server.ws_ping_interval": 0.5, "server.idle_timeout": 60.0})
    with running_server(config) as server:
        async with Watcher(server.ws_url, WATCHED) as watcher:
            quiet = await TickerClient.open(server.ws_url)  # answers pings, gets ~nothing
            await quiet.send({"op": "subscribe", "symbols": ["KO"], "max_rate": 0.2})
            await quiet.recv_type("snapshot")
            dead = socket.create_connection(("127.0.0.1", server.port), timeout=5 * UNIT)
            dead.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         b"Sec-WebSocket-Version: 13\r\n\r\n")
            assert dead.recv(4096).startswith(b"HTTP/1.1 101")
            ws_stats = server.node.stats.transports["ws"]
            started = time.monotonic()
            while ws_stats.connections < 3 and time.monotonic() - started < 5 * UNIT:
                await asyncio.sleep(0.005)  # the server registers it just after the 101
            assert ws_stats.connections == 3
            started = time.monotonic()
            while ws_stats.connections == 3 and time.monotonic() - started < 10 * UNIT:
                await asyncio.sleep(0.05)
            reaped_after = time.monotonic() - started
            assert ws_stats.connections == 2, "the silent peer was never reaped"
            assert reaped_after < 3 * UNIT  # ping interval + timeout = 1 s
            await asyncio.sleep(1.5)
            await quiet.send({"op": "ping", "id": "still here"})
            assert (await quiet.recv_type("pong"))["id"] == "still here"
            await quiet.close()
            dead.close()
            await watcher.keeps_receiving()


async def test_impossible_feed_values_never_reach_a_client() -> None:
    feed = ScriptedFeed(["AAA"])
    with running_server(make_config(), feed_factory=lambda: feed) as server:
        client = await TickerClient.open(server.ws_url)
        await client.send({"op": "subscribe", "symbols": ["AAA"]})
        await client.recv_type("snapshot")
        feed.push("AAA", 2, price=10.0)
        for price in (float("nan"), float("inf"), 0.0, -5.0):
            feed.push("AAA", 1, price=price)
        feed.push("AAA", 3, price=11.0)
        await client.until_ticks("AAA", 5)  # TickerClient fails on any seq gap
        await asyncio.sleep(0.2)
        await client.collect(0.2)
        ticks = client.ticks["AAA"]
        assert [t["price"] for t in ticks] == [10.0, 10.0, 11.0, 11.0, 11.0]
        assert [t["seq"] for t in ticks] == [1, 2, 3, 4, 5]
        await client.close()
        assert server.node.stats.rejected_ticks == 4
