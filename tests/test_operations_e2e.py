"""Running the server for weeks: tokens, log lines, /metrics, /livez and /readyz, and a SIGTERM
that closes clients, keeps the recording whole and ends the process in time."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as connect_sync

from feeds.recording import read_ticks
from tests.processes import READY
from tests.scripted_feed import ScriptedFeed
from tests.servers import UNIT, make_config, running_server
from tests.test_cli import IMPORT_ROOT
from tests.wsclient import TickerClient, Watcher

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TOKEN = "test-token-0123456789abcdef"
WATCHED = ["AAPL", "MSFT", "NVDA"]


async def test_tokens_guard_the_streams_and_the_api_but_not_the_page() -> None:
    with running_server(make_config(**{"auth.tokens": [TOKEN]})) as server:
        async with Watcher(f"{server.ws_url}?token={TOKEN}", WATCHED) as watcher:
            for url, headers in ((server.ws_url, {}),
                                 (f"{server.ws_url}?token=wrong-token-0123456789", {}),
                                 (server.ws_url, {"Authorization": "Bearer nope-0123456789ab"}),
                                 (f"ws://127.0.0.1:{server.port}/ws/replay?recording=x", {})):
                with pytest.raises(InvalidStatus) as refused:
                    await connect(url, additional_headers=headers)
                response = refused.value.response
                assert response.status_code == 401, url
                assert orjson.loads(response.body)["code"] == "unauthorized"
            async with connect(server.ws_url,
                               additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
                assert orjson.loads(await ws.recv())["type"] == "hello"

            base = server.http_url
            async with httpx.AsyncClient(timeout=5 * UNIT) as http:
                for path in ("/api/symbols", "/api/bars?symbol=AAPL", "/api/recordings",
                             "/poll?symbols=AAPL&wait=0", "/sse?symbols=AAPL"):
                    denied = await http.get(base + path)
                    assert denied.status_code == 401, path
                    assert denied.headers["www-authenticate"].startswith("Bearer")
                    assert denied.json()["code"] == "unauthorized"
                for path in ("/api/symbols", "/poll?symbols=AAPL&wait=0"):
                    by_query = await http.get(f"{base}{path}{'&' if '?' in path else '?'}"
                                              f"token={TOKEN}")
                    by_header = await http.get(base + path,
                                               headers={"Authorization": f"Bearer {TOKEN}"})
                    assert (by_query.status_code, by_header.status_code) == (200, 200), path
                for path in ("/", "/app.js", "/vendor/plotly.min.js", "/livez", "/readyz",
                             "/metrics"):
                    assert (await http.get(base + path)).status_code == 200, path
            await watcher.keeps_receiving()
        assert server.node.stats.refused["auth"] >= 9


def test_log_lines_never_show_a_token_and_can_be_json(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TICKER_")},
           "PYTHONPATH": IMPORT_ROOT, "PYTHONUNBUFFERED": "1",
           "TICKER_AUTH_TOKENS": f'["{TOKEN}"]', "TICKER_SERVER_LOG_FORMAT": "json"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ticker", "serve", "--port", "0", "--tick-rate", "50"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines: list[str] = []
    try:
        port = 0
        deadline = time.monotonic() + 20 * UNIT
        while not port and time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if match := READY.search(line):
                port = int(match.group(1))
        assert port, "".join(lines)
        with httpx.Client(timeout=5 * UNIT) as http:
            assert http.get(f"http://127.0.0.1:{port}/api/symbols?token={TOKEN}").is_success
            assert http.get(f"http://127.0.0.1:{port}/api/symbols",
                            headers={"Authorization": f"Bearer {TOKEN}"}).is_success
            assert http.get(f"http://127.0.0.1:{port}/api/symbols?token=guess-0123456789"
                            ).status_code == 401
        with pytest.raises(InvalidStatus):
            connect_sync(f"ws://127.0.0.1:{port}/ws?token=guess-0123456789")
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=10 * UNIT)
    output = "".join(lines) + rest
    assert TOKEN not in output and "guess-0123456789" not in output
    # A refused handshake is a warning-free INFO line, not uvicorn's false ERROR.
    assert "without completing handshake" not in output, output
    records = [orjson.loads(line) for line in output.splitlines() if line.strip()]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    access = [r["message"] for r in records if r["logger"] == "uvicorn.access"]
    assert any("/api/symbols?token=[redacted]" in message for message in access), access


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


async def test_metrics_count_what_the_server_does() -> None:
    with running_server(make_config()) as server:
        async with Watcher(server.ws_url, WATCHED) as watcher:
            await watcher.keeps_receiving(40)
            async with connect(server.ws_url) as merged:
                await merged.send('{"op":"subscribe","symbols":["NVDA"],"max_rate":1}')
                await merged.send("not json")
                await asyncio.sleep(1.5)
                async with httpx.AsyncClient(timeout=5 * UNIT) as http:
                    answer = await http.get(server.http_url + "/metrics")
        assert answer.headers["content-type"].startswith("text/plain")
        values = _samples(answer.text)

        def value(name: str, **labels: str) -> float:
            return values.get((name, tuple(sorted(labels.items()))), -1.0)

        assert value("ticker_connections", transport="ws") == 2
        assert value("ticker_subscriptions") == len(WATCHED) + 1
        assert value("ticker_ticks_in_total") > 100
        # The watcher's ticks (not those in its snapshots), at least, and the merged client's.
        assert value("ticker_ticks_out_total", transport="ws") > 40
        assert value("ticker_frames_out_total", transport="ws") > 10
        assert value("ticker_bytes_out_total", transport="ws") > 1000
        assert value("ticker_conflated_ticks_total", transport="ws") > 10
        assert value("ticker_errors_total", code="bad_json") == 1
        assert value("ticker_delivery_latency_seconds_count") > 0
        assert value("ticker_slow_client_closes_total", reason="stalled") == 0


async def test_livez_and_readyz_follow_the_feed() -> None:
    feed = ScriptedFeed(["AAA"])
    config = make_config(**{"server.feed_stall_timeout": 0.5})
    with running_server(config, feed_factory=lambda: feed) as server:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=5 * UNIT) as http:
            feed.push("AAA", 3)
            await asyncio.sleep(0.1)
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text
            await asyncio.sleep(1.0)
            stalled = await http.get("/readyz")
            assert stalled.status_code == 503
            assert stalled.json()["reason"].startswith("feed stalled: no tick for")
            assert (await http.get("/livez")).json() == {"status": "ok"}  # alive all the same
            feed.push("AAA")
            await asyncio.sleep(0.1)
            assert (await http.get("/readyz")).status_code == 200


async def test_sigterm_closes_clients_keeps_the_recording_and_exits_in_time(
        tmp_path: Path) -> None:
    process, port = await asyncio.to_thread(_start_recording_server, tmp_path)
    url = f"ws://127.0.0.1:{port}/ws"
    try:
        # One client stops reading: its socket fills, and only the timeout can end it.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        staller = await connect(url, sock=sock, max_queue=1)
        hello = orjson.loads(await staller.recv())
        await staller.send(orjson.dumps({"op": "subscribe", "symbols": hello["symbols"]}).decode())
        watcher = await TickerClient.open(url)
        await watcher.send({"op": "subscribe", "symbols": WATCHED})
        await watcher.until_ticks("AAPL", 50)
        await asyncio.sleep(3)  # the staller's buffers fill up (its send_timeout is 10 s)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            await _read_until_closed(watcher)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        returncode = await asyncio.to_thread(process.wait, 10 * UNIT)
        took = time.monotonic() - signalled
        await staller.close()
    finally:
        if process.poll() is None:
            process.kill()
        stderr = process.communicate(timeout=10)[1]
    assert returncode == 0, stderr
    assert took < 3 + 1.5 * UNIT, f"exit took {took:.1f} s with shutdown_timeout = 3"
    assert "Traceback" not in stderr, stderr
    # Every tick the watcher got is on disk, and each symbol's ticks on disk follow on.
    recorded: dict[str, list[int]] = {}
    for path in sorted((tmp_path / "rec").iterdir()):
        for tick in read_ticks(path):
            recorded.setdefault(tick.symbol, []).append(tick.seq)
    for symbol, seqs in recorded.items():
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), symbol
    got: dict[str, Any] = watcher.last_seq
    for symbol, last in got.items():
        assert recorded[symbol][-1] >= last, symbol


def _start_recording_server(directory: Path) -> tuple[subprocess.Popen[str], int]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TICKER_")},
           "PYTHONPATH": IMPORT_ROOT, "TICKER_SERVER_SHUTDOWN_TIMEOUT": "3"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ticker", "serve", "--port", "0", "--tick-rate", "3000",
         "--seed", "5", "--record", str(directory / "rec")],
        cwd=directory, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    seen = []
    deadline = time.monotonic() + 20 * UNIT
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        seen.append(line)
        if match := READY.search(line):
            return process, int(match.group(1))
    process.kill()
    raise AssertionError("".join(seen))


async def _read_until_closed(client: TickerClient) -> None:
    while True:
        await client.recv(timeout=10)
