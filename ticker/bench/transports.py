"""`ticker bench transports`: short polling vs long polling vs SSE vs WebSocket, by our numbers.

One server (pinned to one core) runs the same simulated feed for each transport in turn; the same
clients (pinned to the other core) subscribe to the same symbols through a byte-counting TCP
proxy, so the bytes per tick include every request, response and header. For each transport:
latency from tick production to client receipt, bytes on the wire per delivered tick, HTTP
requests per second, server CPU seconds per 1000 delivered ticks, and ticks missed or duplicated.
Prints a table, writes JSON and a Plotly HTML chart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ticker.bench import command_options

DESCRIPTION = __doc__
READY = re.compile(rb"dashboard: http://[^:]+:(\d+)/")
TRANSPORTS = ("short-poll", "long-poll", "sse", "ws")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--symbols-per-client", type=int, default=5)
    parser.add_argument("--symbols", type=int, default=100, help="synthetic symbols traded")
    parser.add_argument("--tick-rate", type=float, default=500.0, help="ticks/s produced")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured per transport")
    parser.add_argument("--only", default=",".join(TRANSPORTS),
                        help=f"comma-separated subset of {', '.join(TRANSPORTS)}")
    parser.add_argument("--out", default="bench-transports.json")
    parser.add_argument("--html", default="bench-transports.html")


@dataclass
class Counts:
    latencies: list[float] = field(default_factory=list)
    delivered: int = 0
    missed: int = 0
    duplicated: int = 0
    requests: int = 0
    last: dict[tuple[int, str], int] = field(default_factory=dict)

    def take(self, client: int, ticks: list[dict[str, Any]], now_ms: float,
             measuring: bool) -> None:
        for tick in ticks:
            key = (client, tick["symbol"])
            previous = self.last.get(key)
            self.last[key] = max(previous or 0, tick["seq"])
            if not measuring:
                continue
            if previous is not None and tick["seq"] <= previous:
                self.duplicated += 1
                continue
            if previous is not None and tick["seq"] > previous + 1:
                self.missed += tick["seq"] - previous - 1
            self.delivered += 1
            self.latencies.append(now_ms - tick["ts"])


@dataclass
class Row:
    transport: str
    delivered: int
    ticks_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    bytes_per_tick: float
    requests_per_s: float
    cpu_s_per_1000_ticks: float
    missed: int
    duplicated: int


class CountingProxy:
    """Forwards TCP to the server and counts every byte both ways (headers included)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.bytes = 0
        self.counting = False
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.counting:
                    self.bytes += len(data)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


def main(args: argparse.Namespace) -> int:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2:
        os.sched_setaffinity(0, {cores[1]})
    rows = [asyncio.run(_measure(args, transport)) for transport in args.only.split(",")]
    _print(rows, args)
    Path(args.out).write_text(json.dumps({"workload": command_options(args),
                                          "rows": [asdict(r) for r in rows]}, indent=2))
    _chart(rows, Path(args.html))
    print(f"\nwrote {args.out} and {args.html}")
    return 0


async def _measure(args: argparse.Namespace, transport: str) -> Row:
    server, port = _start_server(args)
    proxy = CountingProxy(port)
    base = f"127.0.0.1:{await proxy.start()}"
    counts = Counts()
    state = {"measuring": False}
    clients = [_client(transport, base, i, _symbols_of(i, args), counts, state)
               for i in range(args.clients)]
    tasks = [asyncio.create_task(client) for client in clients]
    try:
        await asyncio.sleep(2.0)  # connect, take snapshots, settle
        cpu0, wall0, requests0 = _cpu(server.pid), time.monotonic(), counts.requests
        proxy.counting = state["measuring"] = True
        await asyncio.sleep(args.seconds)
        proxy.counting = state["measuring"] = False
        elapsed = time.monotonic() - wall0
        cpu = _cpu(server.pid) - cpu0
        requests = counts.requests - requests0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(10)
        server.kill()
    ordered = sorted(counts.latencies) or [0.0]
    delivered = max(counts.delivered, 1)
    return Row(transport, counts.delivered, counts.delivered / elapsed,
               statistics.median(ordered), ordered[int(len(ordered) * 0.99)], ordered[-1],
               proxy.bytes / delivered, requests / elapsed, 1000 * cpu / delivered,
               counts.missed, counts.duplicated)


def _symbols_of(index: int, args: argparse.Namespace) -> list[str]:
    k = args.symbols_per_client
    return [f"S{(index * k + j) % args.symbols + 1:04d}" for j in range(k)]


def _client(transport: str, base: str, index: int, symbols: list[str], counts: Counts,
            state: dict[str, bool]) -> Coroutine[Any, Any, None]:
    runners: dict[str, Callable[..., Coroutine[Any, Any, None]]] = {
        "ws": _ws, "sse": _sse, "long-poll": _long_poll, "short-poll": _short_poll}
    return runners[transport](base, index, symbols, counts, state)


async def _ws(base: str, index: int, symbols: list[str], counts: Counts,
              state: dict[str, bool]) -> None:
    import orjson
    from websockets.asyncio.client import connect

    async with connect(f"ws://{base}/ws", compression=None, max_size=2**24) as ws:
        counts.requests += 1
        await ws.send(orjson.dumps({"op": "subscribe", "symbols": symbols}).decode())
        async for raw in ws:
            message = orjson.loads(raw)
            if message["type"] in ("ticks", "snapshot"):
                counts.take(index, message["ticks"], time.time() * 1000, state["measuring"]
                            and message["type"] == "ticks")


async def _sse(base: str, index: int, symbols: list[str], counts: Counts,
               state: dict[str, bool]) -> None:
    import httpx
    import orjson

    async with httpx.AsyncClient(timeout=None) as http, http.stream(
            "GET", f"http://{base}/sse", params={"symbols": ",".join(symbols)}) as response:
        counts.requests += 1
        kind = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind in ("ticks", "snapshot"):
                counts.take(index, orjson.loads(line[6:])["ticks"], time.time() * 1000,
                            state["measuring"] and kind == "ticks")


async def _poll(base: str, index: int, symbols: list[str], counts: Counts,
                state: dict[str, bool], wait: float, interval: float) -> None:
    import httpx

    cursor = None
    async with httpx.AsyncClient(timeout=60) as http:
        while True:
            params = {"symbols": ",".join(symbols), "wait": str(wait)}
            if cursor:
                params["cursor"] = cursor
            started = time.monotonic()
            body = (await http.get(f"http://{base}/poll", params=params)).json()
            counts.requests += 1
            counts.take(index, body["ticks"], time.time() * 1000, state["measuring"])
            for snapshot in body.get("snapshots", []):
                counts.take(index, snapshot["ticks"], time.time() * 1000, False)
            cursor = body["cursor"]
            rest = interval - (time.monotonic() - started)
            if rest > 0:
                await asyncio.sleep(rest)


async def _long_poll(base: str, index: int, symbols: list[str], counts: Counts,
                     state: dict[str, bool]) -> None:
    await _poll(base, index, symbols, counts, state, wait=25.0, interval=0.0)


async def _short_poll(base: str, index: int, symbols: list[str], counts: Counts,
                      state: dict[str, bool]) -> None:
    await _poll(base, index, symbols, counts, state, wait=0.0, interval=1.0)


def _start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], int]:
    command = [sys.executable, "-m", "ticker", "serve", "--port", "0", "--symbols",
               str(args.symbols), "--tick-rate", str(args.tick_rate), "--seed", "1"]
    cores = sorted(range(os.cpu_count() or 1))
    if len(cores) >= 2:
        command = ["taskset", "-c", str(cores[0]), *command]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={**os.environ, "TICKER_SERVER_LOG_LEVEL": "info"})
    assert server.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = server.stderr.readline()
        match = READY.search(line)
        if match:
            # Keep reading the server's log, or a full pipe would stall it.
            threading.Thread(target=_drain, args=(server.stderr,), daemon=True).start()
            return server, int(match.group(1))
    server.kill()
    raise RuntimeError("the server did not start")


def _drain(stream: Any) -> None:
    for _ in stream:
        pass


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _print(rows: list[Row], args: argparse.Namespace) -> None:
    print(f"\n{args.clients} clients x {args.symbols_per_client} of {args.symbols} symbols, "
          f"{args.tick_rate:g} ticks/s produced, {args.seconds:g} s each")
    print(f"{'transport':>10} {'ticks/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'bytes/tick':>10} {'req/s':>8} {'CPU s/1k':>9} {'missed':>7} {'dup':>5}")
    for r in rows:
        print(f"{r.transport:>10} {r.ticks_per_s:>9,.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} "
              f"{r.max_ms:>8.1f} {r.bytes_per_tick:>10.1f} {r.requests_per_s:>8.1f} "
              f"{r.cpu_s_per_1000_ticks:>9.4f} {r.missed:>7} {r.duplicated:>5}")


def _chart(rows: list[Row], path: Path) -> None:
    from plotly.subplots import make_subplots

    names = [r.transport for r in rows]
    figure = make_subplots(rows=2, cols=2, subplot_titles=(
        "p50 / p99 latency (ms)", "bytes on the wire per tick",
        "HTTP requests per second", "server CPU s per 1000 ticks"))
    figure.add_bar(x=names, y=[r.p50_ms for r in rows], name="p50", row=1, col=1)
    figure.add_bar(x=names, y=[r.p99_ms for r in rows], name="p99", row=1, col=1)
    figure.add_bar(x=names, y=[r.bytes_per_tick for r in rows], name="bytes/tick", row=1, col=2)
    figure.add_bar(x=names, y=[r.requests_per_s for r in rows], name="req/s", row=2, col=1)
    figure.add_bar(x=names, y=[r.cpu_s_per_1000_ticks for r in rows], name="CPU", row=2, col=2)
    figure.update_layout(title="ticker: short polling vs long polling vs SSE vs WebSocket",
                         showlegend=False, height=700)
    figure.write_html(path, include_plotlyjs=True)  # self-contained: no CDN

