"""Protocol v1 end to end: a real uvicorn server on a free port, real WebSocket clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.servers import RunningServer, make_config, running_server
from tests.wsclient import TickerClient

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with running_server(make_config(**{"server.max_symbols_per_connection": 5})) as running:
        yield running


async def test_hello_describes_the_feed(server: RunningServer) -> None:
    client = await TickerClient.open(server.ws_url)
    try:
        assert client.hello["version"] == 1
        assert client.hello["feed"] == "simulated"
        assert client.hello["epoch"] == server.node.hub.epoch
        assert {"AAPL", "MSFT", "JPM"} <= set(client.hello["symbols"])
    finally:
        await client.close()


async def test_each_client_gets_its_own_symbols_snapshot_first(server: RunningServer) -> None:
    apple = await TickerClient.open(server.ws_url)
    banks = await TickerClient.open(server.ws_url)
    try:
        await apple.send({"op": "subscribe", "symbols": ["aapl"], "id": 1})
        await banks.send({"op": "subscribe", "symbols": ["JPM", "bac"], "id": "b"})
        reply = await apple.recv()
        assert reply == {"type": "subscribed", "symbols": ["AAPL"], "resumed": [], "id": 1}
        snapshot = await apple.recv()
        assert snapshot["type"] == "snapshot" and snapshot["symbol"] == "AAPL"
        assert snapshot["reset"] is False
        assert 1 <= len(snapshot["ticks"]) <= 100
        assert (await banks.recv())["symbols"] == ["JPM", "BAC"]
        assert {(await banks.recv())["symbol"], (await banks.recv())["symbol"]} == {"JPM", "BAC"}

        await apple.until_ticks("AAPL", len(snapshot["ticks"]) + 20)
        await banks.until_ticks("JPM", 30)
        await banks.until_ticks("BAC", 30)
        assert set(apple.ticks) == {"AAPL"}
        assert set(banks.ticks) == {"JPM", "BAC"}
        tick = apple.ticks["AAPL"][-1]
        assert set(tick) == {"symbol", "seq", "ts", "price", "size", "bid", "ask"}
        assert tick["bid"] <= tick["price"] <= tick["ask"]
        assert abs(tick["ts"] - time.time() * 1000) < 5_000
    finally:
        await apple.close()
        await banks.close()


async def test_unsubscribe_stops_the_flow_at_the_reply(server: RunningServer) -> None:
    client = await TickerClient.open(server.ws_url)
    try:
        await client.send({"op": "subscribe", "symbols": ["AAPL", "MSFT"]})
        await client.until_ticks("MSFT", 120)
        await client.send({"op": "unsubscribe", "symbols": ["msft"], "id": 9})
        reply = await client.recv_type("unsubscribed")
        assert reply == {"type": "unsubscribed", "symbols": ["MSFT"], "id": 9}
        msft_before = len(client.ticks["MSFT"])
        apple_before = len(client.ticks["AAPL"])
        await client.collect(1.0)
        assert len(client.ticks["MSFT"]) == msft_before
        assert len(client.ticks["AAPL"]) > apple_before + 10
    finally:
        await client.close()


async def test_resume_after_disconnect_loses_nothing(server: RunningServer) -> None:
    first = await TickerClient.open(server.ws_url)
    await first.send({"op": "subscribe", "symbols": ["AAPL", "NVDA"]})
    await first.until_ticks("NVDA", 150)
    await first.close()
    epoch, seqs = first.hello["epoch"], dict(first.last_seq)
    left_at = time.time() * 1000
    await asyncio.sleep(1.0)  # ticks go on while the client is away

    second = await TickerClient.open(server.ws_url)
    second.last_seq = dict(seqs)  # continuity is checked across the two connections
    try:
        await second.send({"op": "subscribe", "symbols": ["AAPL", "NVDA"], "id": 2,
                           "resume": {"epoch": epoch, "seqs": seqs}})
        reply = await second.recv()
        assert reply["type"] == "subscribed"
        assert sorted(reply["resumed"]) == ["AAPL", "NVDA"]
        await second.until_ticks("NVDA", 30)
        await second.until_ticks("AAPL", 30)
        assert not [m for m in second.messages if m["type"] == "snapshot"]
        for symbol in ("AAPL", "NVDA"):
            assert second.ticks[symbol][0]["seq"] == seqs[symbol] + 1
        missed = [t for t in second.ticks["NVDA"] if t["ts"] > left_at + 100]
        assert missed, "the backlog should include ticks produced while away"
    finally:
        await second.close()


async def test_resume_from_another_epoch_gets_a_reset_snapshot(server: RunningServer) -> None:
    client = await TickerClient.open(server.ws_url)
    try:
        await client.send({"op": "subscribe", "symbols": ["AAPL"],
                           "resume": {"epoch": "some-old-run", "seqs": {"AAPL": 12}}})
        reply = await client.recv()
        assert reply["resumed"] == []
        snapshot = await client.recv()
        assert snapshot["type"] == "snapshot"
        assert snapshot["reset"] is True
        assert snapshot["epoch"] == client.hello["epoch"]
        assert snapshot["ticks"]
    finally:
        await client.close()


async def test_ping_gets_pong_with_id_and_server_time(server: RunningServer) -> None:
    client = await TickerClient.open(server.ws_url)
    try:
        before = time.time() * 1000
        await client.send({"op": "ping", "id": 7})
        pong = await client.recv_type("pong")
        assert pong["id"] == 7
        assert before - 1 <= pong["ts"] <= time.time() * 1000 + 1
    finally:
        await client.close()


BAD_INPUTS = [
    ("{not json", "bad_json"),
    ("[1, 2]", "bad_request"),
    ('{"symbols": ["AAPL"]}', "bad_request"),
    ('{"op": "subscribe", "symbols": "AAPL", "id": 3}', "bad_request"),
    ('{"op": "subscribe", "symbols": [], "id": 3}', "bad_request"),
    ('{"op": "subscribe", "symbols": [42], "id": 3}', "bad_request"),
    ('{"op": "subscribe", "symbols": ["AAPL"], "resume": {"epoch": 1}, "id": 3}', "bad_request"),
    ('{"op": "ping", "id": {"nested": true}}', "bad_request"),
    ('{"op": "subscribe", "symbols": ["AAPL"], "extra": 1, "id": 3}', "bad_request"),
    ('{"op": "buy", "id": 3}', "unknown_op"),
]


async def test_every_error_code_and_the_connection_keeps_working(server: RunningServer) -> None:
    bystander = await TickerClient.open(server.ws_url)
    client = await TickerClient.open(server.ws_url)
    try:
        await bystander.send({"op": "subscribe", "symbols": ["TSLA"]})
        for raw, code in BAD_INPUTS:
            await client.ws.send(raw)
            error = await client.recv_type("error")
            assert error["code"] == code, raw
            assert error["message"]
            if '"id": 3' in raw:
                assert error["id"] == 3
        # unknown_symbol: the known ones are still subscribed, the message names the unknown
        await client.send({"op": "subscribe", "symbols": ["AAPL", "NOPE", "XYZ1"], "id": 4})
        assert (await client.recv())["symbols"] == ["AAPL"]
        assert (await client.recv())["type"] == "snapshot"
        error = await client.recv_type("error")
        assert error["code"] == "unknown_symbol" and error["id"] == 4
        assert "NOPE" in error["message"] and "XYZ1" in error["message"]
        assert "AAPL" not in error["message"]
        # too_many_symbols (this server allows 5 per connection): nothing of it is subscribed
        await client.send({"op": "subscribe", "id": 5,
                           "symbols": ["MSFT", "NVDA", "AMD", "GOOGL", "META"]})
        error = await client.recv_type("error")
        assert error["code"] == "too_many_symbols" and error["id"] == 5
        await client.send({"op": "ping", "id": "still-here"})
        assert (await client.recv_type("pong"))["id"] == "still-here"
        await client.collect(0.5)
        assert set(client.ticks) == {"AAPL"}
        # the connection still works and so does everyone else's
        await bystander.until_ticks("TSLA", 20)
        await client.until_ticks("AAPL", len(client.ticks["AAPL"]) + 5)
    finally:
        await client.close()
        await bystander.close()


async def test_subscribing_twice_sends_no_second_snapshot(server: RunningServer) -> None:
    client = await TickerClient.open(server.ws_url)
    try:
        await client.send({"op": "subscribe", "symbols": ["JPM"]})
        await client.until_ticks("JPM", 20)
        await client.send({"op": "subscribe", "symbols": ["JPM"], "id": 2})
        assert (await client.recv_type("subscribed"))["symbols"] == ["JPM"]
        await client.until_ticks("JPM", len(client.ticks["JPM"]) + 10)  # seqs still contiguous
        assert sum(m["type"] == "snapshot" for m in client.messages) == 1
    finally:
        await client.close()


async def test_many_clients_see_identical_ticks(server: RunningServer) -> None:
    clients = [await TickerClient.open(server.ws_url) for _ in range(20)]
    try:
        for client in clients:
            await client.send({"op": "subscribe", "symbols": ["AAPL", "TSLA"]})
        await asyncio.gather(*(c.until_ticks("TSLA", 200) for c in clients))
        # Each client's ticks start where its snapshot did (later subscribers, later seqs):
        # compare the seqs every client has.
        low = max(c.ticks["TSLA"][0]["seq"] for c in clients)
        high = min(c.ticks["TSLA"][-1]["seq"] for c in clients)
        reference = [t for t in clients[0].ticks["TSLA"] if low <= t["seq"] <= high]
        assert len(reference) >= 100 and [t["seq"] for t in reference] == list(range(low, high + 1))
        for client in clients[1:]:
            assert [t for t in client.ticks["TSLA"] if low <= t["seq"] <= high] == reference
    finally:
        for client in clients:
            await client.close()


@pytest.mark.parametrize(("origin", "allowed"), [
    (None, True),  # a program, not a browser
    ("http://localhost:1234", True),
    ("http://127.0.0.1", True),
    ("https://evil.example", False),
    ("null", False),
])
async def test_only_this_server_and_localhost_pages_may_open_a_websocket(
        server: RunningServer, origin: str | None, allowed: bool) -> None:
    bystander = await TickerClient.open(server.ws_url)
    await bystander.send({"op": "subscribe", "symbols": ["KO"]})
    connections = server.node.hub.connections
    headers = {"Origin": origin} if origin else {}
    if allowed:
        async with connect(server.ws_url, additional_headers=headers) as ws:
            assert orjson.loads(await ws.recv())["type"] == "hello"
    else:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.ws_url, additional_headers=headers):
                pass
        assert refused.value.response.status_code == 403
        assert orjson.loads(refused.value.response.body)["code"] == "forbidden_origin"
        assert server.node.hub.connections == connections
    await bystander.until_ticks("KO", 3)
    await bystander.close()


async def test_a_page_of_the_server_itself_may_connect(server: RunningServer) -> None:
    own = f"http://127.0.0.1:{server.port}"
    async with connect(server.ws_url, additional_headers={"Origin": own}) as ws:
        assert orjson.loads(await ws.recv())["type"] == "hello"


def _tasks_of_connections() -> dict[str, int]:
    """The server loop's tasks by coroutine name (run on that loop)."""
    names: dict[str, int] = {}
    for task in asyncio.all_tasks():
        name = task.get_coro().__qualname__  # type: ignore[union-attr]
        names[name] = names.get(name, 0) + 1
    return names


async def _read_until_closed(client: TickerClient) -> None:
    while True:
        await client.recv()


async def test_a_connection_fed_by_the_flusher_has_no_writer_task(server: RunningServer) -> None:
    clients = [await TickerClient.open(server.ws_url) for _ in range(10)]
    try:
        for client in clients:
            await client.send({"op": "subscribe", "symbols": ["AAPL", "TSLA"]})
        await asyncio.gather(*(c.until_ticks("TSLA", 20) for c in clients))
        tasks = server.call(_tasks_of_connections)
        # One task per connection (uvicorn's, reading), none writing: the flusher writes.
        assert tasks.get("_write", 0) == 0, tasks
        assert tasks.get("WebSocketsSansIOProtocol.run_asgi", 0) >= 10, tasks
        # The server's close goes out through a writer task that starts for it; the others go on.
        await clients[0].ws.send(b"binary")  # 1003: the protocol is JSON text
        with pytest.raises(ConnectionClosed) as closed:
            await _read_until_closed(clients[0])
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
        await clients[1].until_ticks("TSLA", len(clients[1].ticks["TSLA"]) + 5)
        assert server.call(_tasks_of_connections).get("_write", 0) == 0
    finally:
        for client in clients:
            await client.close()
    started = time.monotonic()
    while server.node.stats.transports["ws"].connections and time.monotonic() - started < 5:
        await asyncio.sleep(0.02)
    assert server.node.stats.transports["ws"].connections == 0
