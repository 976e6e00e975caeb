"""SSE and long polling against a real server: the same ticks as WebSocket, resumable, strict
about bad input."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.scripted_feed import ScriptedFeed
from tests.servers import UNIT, RunningServer, make_config, running_server
from tests.wsclient import TickerClient

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with running_server(make_config(**{"feed.tick_rate": 300.0})) as running:
        time.sleep(0.5)
        yield running


class SseReader:
    """Reads a real text/event-stream response into (event, id, data) triples."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.comments = 0

    async def next(self, timeout: float = 5.0) -> tuple[str, str, dict[str, Any]]:
        event: dict[str, str] = {}
        async with asyncio.timeout(timeout * UNIT):
            async for line in self.lines:
                if not line:
                    if "data" in event:
                        return event.get("event", ""), event.get("id", ""), orjson.loads(
                            event["data"])
                    continue
                if line.startswith(":"):
                    self.comments += 1
                    continue
                field, _, value = line.partition(": ")
                event[field] = value
        raise EOFError("the stream ended")


async def open_sse(http: httpx.AsyncClient, url: str,
                   headers: dict[str, str] | None = None) -> AsyncIterator[SseReader]:
    async with http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseReader(response)


def check_contiguous(ticks: list[dict[str, Any]]) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = {}
    for tick in ticks:
        seqs.setdefault(tick["symbol"], []).append(tick["seq"])
    for symbol, values in seqs.items():
        assert values == list(range(values[0], values[0] + len(values))), symbol
    return seqs


async def test_ws_sse_and_long_poll_deliver_the_same_ticks(server: RunningServer) -> None:
    symbols = ["AAPL", "TSLA"]
    received: dict[str, list[dict[str, Any]]] = {"ws": [], "sse": [], "poll": []}
    deadline = time.monotonic() + 3.0 * UNIT

    async def over_ws() -> None:
        client = await TickerClient.open(server.ws_url)
        await client.send({"op": "subscribe", "symbols": symbols})
        while time.monotonic() < deadline:
            message = await client.recv()
            if message["type"] in ("ticks", "snapshot"):
                received["ws"] += message["ticks"]
        await client.close()

    async def over_sse(http: httpx.AsyncClient) -> None:
        async for reader in open_sse(http, f"/sse?symbols={','.join(symbols)}"):
            while time.monotonic() < deadline:
                kind, _, data = await reader.next()
                if kind in ("ticks", "snapshot"):
                    received["sse"] += data["ticks"]

    async def over_poll(http: httpx.AsyncClient) -> None:
        cursor = None
        while time.monotonic() < deadline:
            params = {"symbols": ",".join(symbols), "wait": "2"}
            if cursor:
                params["cursor"] = cursor
            body = (await http.get("/poll", params=params)).json()
            for snapshot in body.get("snapshots", []):
                received["poll"] += snapshot["ticks"]
            received["poll"] += body["ticks"]
            cursor = body["cursor"]

    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
        await asyncio.gather(over_ws(), over_sse(http), over_poll(http))
    spans = {name: check_contiguous(ticks) for name, ticks in received.items()}
    for symbol in symbols:
        start = max(span[symbol][0] for span in spans.values())
        end = min(span[symbol][-1] for span in spans.values())
        assert end - start > 20, f"too little overlap for {symbol}"
        views = [[t for t in ticks if t["symbol"] == symbol and start <= t["seq"] <= end]
                 for ticks in received.values()]
        assert views[0] == views[1] == views[2]


async def test_sse_resumes_from_last_event_id_without_gap_or_duplicate(
        server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
        last_id, last_seq = "", 0
        async for reader in open_sse(http, "/sse?symbols=NVDA"):
            kind, _, _ = await reader.next()
            assert kind == "hello"
            while last_seq < 130:
                kind, last_id, data = await reader.next()
                if kind in ("snapshot", "ticks") and data["ticks"]:
                    last_seq = data["ticks"][-1]["seq"]
        assert last_id.endswith(f"/{last_seq}")
        await asyncio.sleep(0.5)
        async for reader in open_sse(http, "/sse?symbols=NVDA", {"Last-Event-ID": last_id}):
            kinds = []
            seqs: list[int] = []
            while len(seqs) < 20:
                kind, _, data = await reader.next()
                kinds.append(kind)
                if kind == "ticks":
                    seqs += [t["seq"] for t in data["ticks"]]
            assert "snapshot" not in kinds
            assert seqs == list(range(last_seq + 1, last_seq + 1 + len(seqs)))


@pytest.mark.parametrize("bogus", ["nonsense", "epoch-that-never-was/12", "x/1.2.3", ""])
async def test_a_bogus_last_event_id_gets_a_fresh_snapshot(server: RunningServer,
                                                           bogus: str) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
        async for reader in open_sse(http, "/sse?symbols=AAPL", {"Last-Event-ID": bogus}):
            assert (await reader.next())[0] == "hello"
            kind, _, snapshot = await reader.next()
            assert kind == "snapshot"
            assert snapshot["reset"] is True
            assert snapshot["ticks"]


async def test_consecutive_polls_lose_and_repeat_nothing(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
        first = (await http.get("/poll", params={"symbols": "msft,JPM"})).json()
        assert [s["symbol"] for s in first["snapshots"]] == ["MSFT", "JPM"]
        assert first["ticks"] == []
        ticks = [t for s in first["snapshots"] for t in s["ticks"]]
        cursor = first["cursor"]
        for wait in ("0", "0.2", "1", "0"):
            await asyncio.sleep(0.3)
            body = (await http.get("/poll", params={"symbols": "MSFT,JPM", "cursor": cursor,
                                                    "wait": wait})).json()
            assert body["reset"] is False
            assert "snapshots" not in body
            ticks += body["ticks"]
            cursor = body["cursor"]
        seqs = check_contiguous(ticks)
        assert len(seqs["MSFT"]) > len(first["snapshots"][0]["ticks"])


async def test_short_poll_answers_at_once_and_long_poll_waits_for_data() -> None:
    feed = ScriptedFeed(["AAA", "BBB"])
    with running_server(make_config(), feed_factory=lambda: feed) as server:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
            cursor = (await http.get("/poll", params={"symbols": "AAA"})).json()["cursor"]
            started = time.monotonic()
            body = (await http.get("/poll", params={"symbols": "AAA", "cursor": cursor,
                                                    "wait": "0"})).json()
            assert body["ticks"] == []
            assert time.monotonic() - started < 0.5 * UNIT
            started = time.monotonic()
            body = (await http.get("/poll", params={"symbols": "AAA", "cursor": cursor,
                                                    "wait": "0.6"})).json()
            assert body["ticks"] == []
            assert time.monotonic() - started >= 0.55
            assert body["cursor"] == cursor

            async def push_later() -> None:
                await asyncio.sleep(0.3)
                feed.push("BBB")  # not ours: must not end the wait
                await asyncio.sleep(0.3)
                feed.push("AAA", 2)

            started = time.monotonic()
            pusher = asyncio.create_task(push_later())
            body = (await http.get("/poll", params={"symbols": "AAA", "cursor": cursor,
                                                    "wait": "10"})).json()
            await pusher
            elapsed = time.monotonic() - started
            assert 0.5 <= elapsed < 3 * UNIT
            assert [t["seq"] for t in body["ticks"]] == [1, 2]


async def test_a_cursor_older_than_history_gets_a_reset_snapshot() -> None:
    feed = ScriptedFeed(["AAA"])
    config = make_config(**{"hub.history_size": 50, "hub.snapshot_size": 10})
    with running_server(config, feed_factory=lambda: feed) as server:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
            feed.push("AAA", 5)
            await asyncio.sleep(0.2)
            cursor = (await http.get("/poll", params={"symbols": "AAA"})).json()["cursor"]
            feed.push("AAA", 80)
            await asyncio.sleep(0.2)
            body = (await http.get("/poll", params={"symbols": "AAA", "cursor": cursor})).json()
            assert body["reset"] is True
            (snapshot,) = body["snapshots"]
            assert snapshot["reset"] is True
            assert [t["seq"] for t in snapshot["ticks"]] == list(range(76, 86))


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/poll", 400, "bad_request"),
    ("/poll?symbols=", 400, "bad_request"),
    ("/poll?symbols=AAPL,NOPE", 404, "unknown_symbol"),
    ("/poll?symbols=AAPL&cursor=%%%", 400, "bad_request"),
    ("/poll?symbols=AAPL&cursor=bm9wZQ", 400, "bad_request"),
    ("/poll?symbols=AAPL&wait=-1", 400, "bad_request"),
    ("/poll?symbols=AAPL&wait=soon", 400, "bad_request"),
    ("/poll?symbols=AAPL&wait=61", 400, "bad_request"),
    ("/poll?symbols=A%20A", 400, "bad_request"),
    ("/sse", 400, "bad_request"),
    ("/sse?symbols=NOPE", 404, "unknown_symbol"),
    ("/sse?symbols=AAPL&max_rate=0", 400, "bad_request"),
    ("/sse?symbols=AAPL&max_rate=fast", 400, "bad_request"),
])
async def test_bad_http_subscriptions_get_a_json_4xx(server: RunningServer, path: str,
                                                    status: int, code: str) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
        response = await http.get(path)
        assert response.status_code == status
        body = response.json()
        assert body["code"] == code
        assert body["message"]


async def test_a_foreign_cursor_is_refused(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
        cursor = (await http.get("/poll", params={"symbols": "AAPL"})).json()["cursor"]
        response = await http.get("/poll", params={"symbols": "MSFT", "cursor": cursor})
        assert response.status_code == 400
        assert "another subscription" in response.json()["message"]


async def test_idle_sse_streams_get_keep_alive_comments() -> None:
    feed = ScriptedFeed(["AAA"])
    config = make_config(**{"server.sse_keepalive": 0.3})
    with running_server(config, feed_factory=lambda: feed) as server:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
            async for reader in open_sse(http, "/sse?symbols=AAA"):
                assert (await reader.next())[0] == "hello"
                assert (await reader.next())[0] == "snapshot"
                await asyncio.sleep(1.0)
                feed.push("AAA")
                kinds = []
                while not kinds or kinds[-1] != "ticks":
                    kinds.append((await reader.next())[0])
                assert kinds.count("keepalive") >= 2
                assert reader.comments >= 2


async def test_max_rate_conflates_to_the_latest_tick(server: RunningServer) -> None:
    client = await TickerClient.open(server.ws_url)
    try:
        await client.send({"op": "subscribe", "symbols": ["TSLA"], "max_rate": 2})
        await client.recv_type("snapshot")
        started = time.monotonic()
        updates = []
        while time.monotonic() - started < 2.2:
            try:
                message = orjson.loads(await asyncio.wait_for(client.ws.recv(), 0.5))
            except TimeoutError:
                continue
            if message["type"] == "ticks":
                updates += message["ticks"]
        assert 3 <= len(updates) <= 6
        seqs = [t["seq"] for t in updates]
        assert seqs == sorted(seqs)
        assert seqs[-1] - seqs[0] > len(seqs), "conflation should skip ticks"
    finally:
        await client.close()


async def test_closed_http_streams_leave_no_subscriber_behind(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
        before = server.node.hub.connections
        async for reader in open_sse(http, "/sse?symbols=AAPL,MSFT"):
            await reader.next()
            assert server.node.hub.connections == before + 1
        await http.get("/poll", params={"symbols": "AAPL", "wait": "0"})
    deadline = time.monotonic() + 5 * UNIT
    while server.node.hub.connections != before and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert server.node.hub.connections == before
