"""Recording and replay through a real server: serve --replay, /ws/replay, /api/recordings,
and serve --record surviving kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
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
from websockets.exceptions import InvalidStatus

from feeds.capture import record_fast
from feeds.recording import read_recording
from feeds.simulated import SimulatedFeed
from tests.servers import UNIT, RunningServer, make_config, running_server
from tests.wsclient import TickerClient
from ticker.config import load_config

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

START_MS = 1_763_880_000_000.0


def write_recording(path: Path, seconds: float, rate: float = 50.0) -> list[dict[str, Any]]:
    defaults = load_config().feed
    stocks = [s for s in defaults.universe if s.symbol in ("AAPL", "MSFT", "JPM")]
    record_fast(SimulatedFeed(stocks, defaults.market, rate, seed=11), path, seconds, START_MS)
    _, ticks = read_recording(path)
    return [orjson.loads(orjson.dumps(
        {"symbol": t.symbol, "seq": t.seq, "ts": t.ts, "price": t.price, "size": t.size,
         "bid": t.bid, "ask": t.ask})) for t in ticks]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    directory = tmp_path_factory.mktemp("recordings")
    ticks = write_recording(directory / "session.jsonl", seconds=60.0)
    write_recording(directory / "short.jsonl.gz", seconds=4.0)
    return directory, ticks


@pytest.fixture(scope="module")
def server(recordings: tuple[Path, list[dict[str, Any]]]) -> Iterator[RunningServer]:
    directory, _ = recordings
    with running_server(make_config(**{"recordings.dir": str(directory)})) as running:
        yield running


def by_symbol(ticks: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for tick in ticks:
        grouped.setdefault(tick["symbol"], []).append(tick)
    return grouped


async def test_serve_replay_delivers_the_recorded_ticks_exactly(
        recordings: tuple[Path, list[dict[str, Any]]]) -> None:
    directory, recorded = recordings
    config = make_config(**{"feed.source": "replay", "feed.replay.source":
                            str(directory / "session.jsonl"), "feed.replay.speed": "max"})
    with running_server(config) as server:
        client = await TickerClient.open(server.ws_url)
        try:
            assert client.hello["feed"] == "replay"
            assert client.hello["symbols"] == ["AAPL", "MSFT", "JPM"]
            # Resuming from seq 0 asks for everything still in history: the whole recording.
            await client.send({"op": "subscribe", "symbols": ["AAPL", "MSFT", "JPM"],
                               "resume": {"epoch": client.hello["epoch"],
                                          "seqs": {"AAPL": 0, "MSFT": 0, "JPM": 0}}})
            expected = by_symbol(recorded)
            for symbol, ticks in expected.items():
                await client.until_ticks(symbol, len(ticks))
                assert client.ticks[symbol] == ticks
        finally:
            await client.close()


async def test_each_loop_of_a_replay_is_a_new_epoch(
        recordings: tuple[Path, list[dict[str, Any]]]) -> None:
    directory, _ = recordings
    config = make_config(**{"feed.source": "replay", "feed.replay.source":
                            str(directory / "short.jsonl.gz"), "feed.replay.speed": 20.0,
                            "feed.replay.loop": True})
    with running_server(config) as server:
        client = await TickerClient.open(server.ws_url)
        try:
            epochs = [client.hello["epoch"]]
            await client.send({"op": "subscribe", "symbols": ["AAPL"]})
            while len(epochs) < 3:
                message = await client.recv(timeout=5)
                if message["type"] == "hello":
                    epochs.append(message["epoch"])
                    snapshot = await client.recv()
                    assert snapshot["type"] == "snapshot"
                    assert snapshot["reset"] is True
            assert len(set(epochs)) == 3
        finally:
            await client.close()


async def test_recordings_are_listed(server: RunningServer,
                                     recordings: tuple[Path, list[dict[str, Any]]]) -> None:
    _, recorded = recordings
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        listing = {r["name"]: r for r in (await http.get("/api/recordings")).json()}
    assert set(listing) == {"session.jsonl", "short.jsonl.gz"}
    session = listing["session.jsonl"]
    assert session["tick_count"] == len(recorded)
    assert session["first_ts"] == recorded[0]["ts"]
    assert session["last_ts"] == recorded[-1]["ts"]
    assert session["symbols"] == ["AAPL", "MSFT", "JPM"]
    assert session["size"] > 0


async def replay_client(server: RunningServer, query: str) -> TickerClient:
    return await TickerClient.open(f"{server.ws_url}/replay?{query}")


async def test_per_connection_replay_pause_resume_speed_and_seek(
        server: RunningServer, recordings: tuple[Path, list[dict[str, Any]]]) -> None:
    _, recorded = recordings
    client = await replay_client(server, "recording=session.jsonl&speed=5&symbols=AAPL,MSFT")
    try:
        assert client.hello["feed"] == "replay"
        assert client.hello["symbols"] == ["AAPL", "MSFT", "JPM"]
        # The URL's symbols are subscribed at connect.
        assert (await client.recv_type("subscribed"))["symbols"] == ["AAPL", "MSFT"]
        await client.until_ticks("AAPL", 10)
        await client.send({"op": "pause", "id": 1})
        state = await client.recv_type("replay")
        assert state["paused"] is True
        assert state["id"] == 1
        await client.collect(0.3)  # ticks already on their way
        held = sum(len(t) for t in client.ticks.values())
        await client.collect(0.7)
        assert sum(len(t) for t in client.ticks.values()) == held
        await client.send({"op": "resume"})
        assert (await client.recv_type("replay"))["paused"] is False
        await client.until_ticks("AAPL", len(client.ticks["AAPL"]) + 5)
        await client.send({"op": "speed", "speed": 50})
        assert (await client.recv_type("replay"))["speed"] == 50
        target = recorded[len(recorded) * 3 // 4]["ts"]
        await client.send({"op": "seek", "ts": target})
        await client.recv_type("replay")
        hello = await client.recv_type("hello")  # a seek starts a new run
        assert hello["epoch"] != client.hello["epoch"]
        client.ticks.clear()
        await client.until_ticks("AAPL", 5)
        assert all(t["ts"] >= target for t in client.ticks["AAPL"])
        ended = await client.recv_type("replay_end", timeout=20)
        assert ended["position"] <= recorded[-1]["ts"]
        await client.send({"op": "speed", "speed": "warp"})
        assert (await client.recv_type("error"))["code"] == "bad_request"
        await client.send({"op": "ping", "id": 5})
        assert (await client.recv_type("pong"))["id"] == 5
    finally:
        await client.close()


async def test_replay_end_after_a_short_recording(server: RunningServer) -> None:
    client = await replay_client(server, "recording=short.jsonl.gz&speed=max")
    try:
        await client.send({"op": "subscribe", "symbols": ["JPM"]})
        await client.recv_type("replay_end", timeout=10)
    finally:
        await client.close()


@pytest.mark.parametrize(("query", "status"), [
    ("recording=../../etc/passwd", 400),
    ("recording=%2Fetc%2Fpasswd", 400),
    ("recording=a/b.jsonl", 400),
    ("recording=..", 400),
    ("", 400),
    ("recording=nope.jsonl", 404),
    ("recording=session.jsonl&speed=fast", 400),
    ("recording=session.jsonl&from=yesterday-ish", 400),
    ("recording=session.jsonl&symbols=ZZZZ", 400),
])
async def test_bad_replay_requests_are_refused_at_the_handshake(server: RunningServer,
                                                                query: str, status: int) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{server.ws_url}/replay?{query}"):
            pass
    assert refused.value.response.status_code == status
    assert orjson.loads(refused.value.response.body)["message"]


def test_a_recording_survives_kill_9_of_the_server(tmp_path: Path) -> None:
    directory = tmp_path / "recs"
    with subprocess.Popen(
            [sys.executable, "-m", "ticker", "serve", "--port", "0", "--tick-rate", "500",
             "--seed", "2", "--record", str(directory), "--log-level", "warning"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as process:
        try:
            time.sleep(3.0 * UNIT)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
        finally:
            process.kill()
    (path,) = directory.iterdir()
    header, ticks = read_recording(path)
    ticks_read = list(ticks)
    assert header.source == "simulated"
    assert len(ticks_read) > 500, "at least a second's worth must have been flushed"
    seqs: dict[str, int] = {}
    for tick in ticks_read:
        assert tick.seq == seqs.get(tick.symbol, 0) + 1
        seqs[tick.symbol] = tick.seq


def test_the_record_and_import_commands(tmp_path: Path) -> None:
    out = tmp_path / "fast.jsonl.gz"
    done = subprocess.run([sys.executable, "-m", "ticker", "record", "--out", str(out),
                           "--duration", "2m", "--fast", "--seed", "5", "--symbols", "AAPL,KO"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    header, ticks = read_recording(out)
    assert [s.symbol for s in header.symbols] == ["AAPL", "KO"]
    ticks_read = list(ticks)
    assert 100 * 120 * 0.9 < len(ticks_read) < 100 * 120 * 1.1
    assert ticks_read[-1].ts - ticks_read[0].ts > 110_000
    csv = tmp_path / "history.csv"
    csv.write_text("Date,Open,High,Low,Close,Volume\n2024-01-02,10,11,9.5,10.5,1000\n"
                   "2024-01-03,10.5,12,10,11.5,2000\n2024-01-04,oops,1,1,1,1\n")
    failed = subprocess.run([sys.executable, "-m", "ticker", "import", str(csv), "--out",
                             str(tmp_path / "h.jsonl"), "--symbol", "XYZ"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert failed.returncode == 2
    assert "history.csv:4" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert not (tmp_path / "h.jsonl").exists()
    done = subprocess.run([sys.executable, "-m", "ticker", "import", str(csv), "--out",
                           str(tmp_path / "h.jsonl"), "--symbol", "XYZ", "--skip-bad"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "skipped 1" in done.stderr
    _, imported = read_recording(tmp_path / "h.jsonl")
    assert [t.price for t in imported] == [10.0, 9.5, 11.0, 10.5, 10.5, 10.0, 12.0, 11.5]


async def test_replay_pacing_follows_recorded_time(server: RunningServer,
                                                   recordings: tuple[Path, Any]) -> None:
    client = await replay_client(server, "recording=short.jsonl.gz&speed=4")
    try:
        await client.send({"op": "subscribe", "symbols": ["AAPL", "MSFT", "JPM"]})
        started = time.monotonic()
        await client.recv_type("replay_end", timeout=10)
        elapsed = time.monotonic() - started
        assert 0.7 <= elapsed <= 1.6 * UNIT, "4 s recorded at speed 4 should take about 1 s"
    finally:
        await client.close()
    await asyncio.sleep(0)
