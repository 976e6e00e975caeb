"""``ticker bench connections``: one server process holding many subscribed WebSocket clients.

The server runs as ``ticker serve`` pinned to one core; the clients are plain non-blocking sockets
in this process on the other core (``ticker.bench.kernel_client``: kernel receive timestamps, no
parsing while measured), spread over several 127.0.0.x source addresses so that the ~28k
ephemeral ports of one address do not run out. Each client subscribes to a few symbols with
``max_rate`` (a dashboard's view). Measured: the time to connect and subscribe them all (and the
handshake rate), the server's RSS per connection as they come, what a client past
``server.max_connections`` gets, and over a window: delivered updates/s, their staleness (kernel
arrival minus the tick's ``ts``, which includes the conflation wait ``max_rate`` asks for), the
server's CPU, and updates missed: subscriptions that got fewer updates than their rate allows
(a symbol that did not trade in an interval owes none for it: with the default feed the quietest
symbol trades about 4 times a second, so at max_rate 1 a few may be short for that reason), and
any seq that went backwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import resource
import sys
import tempfile
import time
from array import array
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ticker.bench import command_options
from ticker.bench.arrivals import kernel_ns
from ticker.bench.generator import Tracker
from ticker.bench.kernel_client import Client
from ticker.bench.sample import percentiles
from ticker.bench.servers import Cores, child_env, free_port, pinned, stop
from ticker.bench.wsframes import OP_TEXT, FrameError, handshake_request

DESCRIPTION = __doc__
PORTS_PER_SOURCE = 25_000  # of the 28,232 ephemeral ports Linux gives one address by default
CONNECT_CONCURRENCY = 200  # handshakes in flight, well within uvicorn's listen backlog (2048)
OVER_CAP = 50  # clients tried past the cap
FD_MARGIN = 1_000


@dataclass
class Growth:
    connections: int
    seconds: float  # since the first connect
    server_rss_mb: float
    bytes_per_connection: float


@dataclass
class Result:
    clients: int
    connected: int
    connect_seconds: float
    handshakes_per_s: float
    server_rss_mb: float
    bytes_per_connection: float
    growth: list[Growth] = field(default_factory=list)
    over_cap_refused_503: int = 0
    over_cap_other: dict[str, int] = field(default_factory=dict)
    window_s: float = 0.0
    delivered_updates: int = 0
    updates_per_s: float = 0.0
    owed_updates_per_s: float = 0.0
    staleness_p50_ms: float | None = None
    staleness_p99_ms: float | None = None
    subscriptions_short: int = 0
    updates_per_subscription: dict[str, int] = field(default_factory=dict)  # count: how many
    seq_regressions: int = 0
    disconnects: int = 0
    server_cpu: float | None = None
    loadgen_cpu: float | None = None
    limit: str | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=10_000, help="clients to open (10000)")
    parser.add_argument("--symbols-per-client", type=int, default=3, metavar="K")
    parser.add_argument("--max-rate", type=float, default=1.0,
                        help="updates/s per symbol each client asks for (1)")
    parser.add_argument("--tick-rate", type=float, default=1000.0,
                        help="the feed's ticks/s over its 100 symbols (1000)")
    parser.add_argument("--window", type=float, default=10.0,
                        help="seconds measured (10; the clients answer no ping while measured, "
                             "so keep it under server.ws_ping_interval)")
    parser.add_argument("--out", default="bench-connections.json")
    parser.add_argument("--log-dir", metavar="DIR", help="the server's log (default: a temp dir)")


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file limit towards ``wanted``; returns what it got."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def source_address(index: int) -> str:
    """127.0.0.2, .3, ...: PORTS_PER_SOURCE clients each (the server listens on 127.0.0.1)."""
    return f"127.0.0.{2 + index // PORTS_PER_SOURCE}"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks


@dataclass
class Updates:
    """What one client's recorded reads held."""

    delivered: int = 0
    per_symbol: dict[str, int] = field(default_factory=dict)
    regressions: int = 0


def digest(client: Client, t0_ns: int, t1_ns: int, staleness: array[float]) -> Updates:
    """Cut and decode a client's reads after the window: every update, its staleness, and
    whether each symbol's seqs only went forward."""
    updates = Updates()
    last_seq: dict[str, int] = {}
    for read_ns, (data, ancdata, _flags, _address) in client.log.records:
        arrival = kernel_ns(ancdata) or read_ns
        inside = t0_ns <= arrival < t1_ns
        for opcode, payload in client.log.cutter.feed(data):
            if opcode != OP_TEXT or not payload.startswith(b'{"type":"ticks"'):
                continue
            for tick in orjson.loads(payload)["ticks"]:
                symbol, seq = tick["symbol"], tick["seq"]
                if seq <= last_seq.get(symbol, 0):
                    updates.regressions += 1
                last_seq[symbol] = seq
                if inside:
                    updates.delivered += 1
                    updates.per_symbol[symbol] = updates.per_symbol.get(symbol, 0) + 1
                    staleness.append(arrival / 1e6 - tick["ts"])
    client.log.records = []
    return updates


async def over_cap(port: int, count: int) -> dict[str, int]:
    """What clients past the cap get: the HTTP status line of each handshake's answer."""
    outcomes: dict[str, int] = {}

    async def one() -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), 10.0)
            request, _ = handshake_request(f"127.0.0.1:{port}", "/ws")
            writer.write(request)
            status = (await asyncio.wait_for(reader.readline(), 10.0)).decode().strip()
            writer.close()
            outcome = status.split(" ", 2)[1] if status.count(" ") >= 1 else (status or "eof")
        except (OSError, TimeoutError) as error:
            outcome = type(error).__name__
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    await asyncio.gather(*(one() for _ in range(count)))
    return outcomes


async def measure(args: argparse.Namespace, clients_wanted: int, port: int, server_pid: int,
                  limit: str | None) -> Result:
    names = [f"S{k:04d}" for k in range(1, 101)]
    tracker = Tracker(clients_wanted)
    clients = []
    for index in range(clients_wanted):
        symbols = [names[(index * args.symbols_per_client + k) % len(names)]
                   for k in range(args.symbols_per_client)]
        subscribe = orjson.dumps({"op": "subscribe", "symbols": symbols,
                                  "max_rate": args.max_rate})
        clients.append(Client(subscribe, tracker, source=source_address(index)))
    base_rss = rss_bytes(server_pid)
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    failures: dict[str, int] = {}
    growth: list[Growth] = []
    started = time.monotonic()
    next_report = [min(10_000, clients_wanted)]

    async def connect(client: Client) -> None:
        async with gate:
            try:
                await client.connect("127.0.0.1", port, "/ws")
            except (OSError, TimeoutError, FrameError) as error:
                failures[type(error).__name__] = failures.get(type(error).__name__, 0) + 1
                client.closing = True
                client.abort()
                return
        done = tracker.subscribed
        if done >= next_report[0]:
            next_report[0] += 10_000
            rss = rss_bytes(server_pid)
            growth.append(Growth(done, round(time.monotonic() - started, 2), rss / 2**20,
                                 (rss - base_rss) / max(1, done)))
            print(f"  {done:>8,} subscribed in {growth[-1].seconds:6.1f} s, server RSS "
                  f"{rss / 2**20:7.0f} MiB, {growth[-1].bytes_per_connection / 1000:5.1f} KB "
                  "per connection", flush=True)

    await asyncio.gather(*(connect(client) for client in clients))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(tracker.all_subscribed.wait(), 30.0)
    connect_seconds = time.monotonic() - started
    connected = tracker.subscribed
    await asyncio.sleep(2.0)
    rss = rss_bytes(server_pid)
    result = Result(clients_wanted, connected, round(connect_seconds, 2),
                    round(connected / connect_seconds, 1), round(rss / 2**20, 1),
                    round((rss - base_rss) / max(1, connected), 1), growth, limit=limit)
    if failures:
        print(f"  connect failures: {failures}", flush=True)
    refused = await over_cap(port, OVER_CAP)
    result.over_cap_refused_503 = refused.pop("503", 0)
    result.over_cap_other = refused
    for client in clients:
        client.record()
    await asyncio.sleep(1.0 / args.max_rate)  # every cursor's first, unconflated update is past
    cpu0, mine0 = cpu_seconds(server_pid), time.process_time()
    t0 = time.time_ns()
    await asyncio.sleep(args.window)
    t1 = time.time_ns()
    result.server_cpu = round((cpu_seconds(server_pid) - cpu0) / args.window, 3)
    result.loadgen_cpu = round((time.process_time() - mine0) / args.window, 3)
    for client in clients:
        client.close()
    await asyncio.sleep(0.5)
    for client in clients:
        client.abort()
    staleness: array[float] = array("d")
    owed_each = int(args.window * args.max_rate) - 1  # whole intervals inside the window
    for client in clients:
        if not client.subscribed:
            continue
        updates = digest(client, t0, t1, staleness)
        result.delivered_updates += updates.delivered
        result.seq_regressions += updates.regressions
        for symbol in orjson.loads(client.subscribe)["symbols"]:
            count = updates.per_symbol.get(symbol, 0)
            result.subscriptions_short += count < owed_each
            spread = result.updates_per_subscription
            spread[str(count)] = spread.get(str(count), 0) + 1
    result.window_s = args.window
    result.updates_per_s = round(result.delivered_updates / args.window, 1)
    result.owed_updates_per_s = connected * args.symbols_per_client * args.max_rate
    result.disconnects = tracker.disconnects
    if staleness:
        p50, p99 = percentiles(staleness, (50, 99))
        result.staleness_p50_ms, result.staleness_p99_ms = round(p50, 1), round(p99, 1)
    return result


def main(args: argparse.Namespace) -> int:
    # A drop is counted in the result; one warning per client would bury the table.
    logging.getLogger("ticker.bench.kernel_client").setLevel(logging.ERROR)
    cores = Cores.pick()
    cores.pin_self()
    got = raise_fd_limit(args.clients + FD_MARGIN)
    clients, limit = args.clients, None
    if got < args.clients + FD_MARGIN:
        clients = max(1, got - FD_MARGIN)
        limit = (f"this process may open {got} files (RLIMIT_NOFILE, hard limit): "
                 f"{clients} clients, not {args.clients}")
        print(f"ticker bench connections: {limit}", file=sys.stderr)
    log_dir = Path(args.log_dir) if args.log_dir else Path(tempfile.mkdtemp(prefix="ticker-conn-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [sys.executable, "-m", "ticker", "serve", "--host", "127.0.0.1", "--port",
               str(port), "--symbols", "100", "--tick-rate", f"{args.tick_rate:g}", "--seed", "1",
               "--log-level", "warning"]
    env = {**child_env(), "TICKER_SERVER_MAX_CONNECTIONS": str(clients)}
    print(f"connections: {clients:,} clients x {args.symbols_per_client} symbols at "
          f"{args.max_rate:g} updates/s each, feed {args.tick_rate:g} ticks/s; server on core "
          f"{cores.server} (log in {log_dir}), clients on core {cores.loadgen}", flush=True)
    log_path = log_dir / "server.log"
    with log_path.open("wb") as log:
        import subprocess

        server = subprocess.Popen(pinned(command, cores.server), stdout=log,
                                  stderr=subprocess.STDOUT, cwd=log_dir, env=env,
                                  preexec_fn=lambda: raise_fd_limit(clients + FD_MARGIN))
        try:
            _wait_ready(port, server)
            result = asyncio.run(measure(args, clients, port, server.pid, limit))
        finally:
            stop(server)
    print(table(result), flush=True)
    Path(args.out).write_text(json.dumps({"benchmark": "ticker bench connections",
                                          "options": command_options(args),
                                          "result": asdict(result)}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def _wait_ready(port: int, server: Any) -> None:
    import socket

    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                time.sleep(1.0)  # the feed's first ticks
                return
        time.sleep(0.1)
    raise RuntimeError("the server did not listen within 30 s")


def table(result: Result) -> str:
    spread = dict(sorted(result.updates_per_subscription.items(), key=lambda kv: int(kv[0])))

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    cpu = "-" if result.server_cpu is None else f"{result.server_cpu:.0%}"
    lines = [
        f"connected and subscribed: {result.connected:,} of {result.clients:,} in "
        f"{result.connect_seconds:.1f} s ({result.handshakes_per_s:,.0f}/s)",
        f"server RSS: {result.server_rss_mb:,.0f} MiB, "
        f"{result.bytes_per_connection / 1000:.1f} KB per connection",
        f"past the cap: {result.over_cap_refused_503} of {OVER_CAP} refused with 503"
        + (f", others {result.over_cap_other}" if result.over_cap_other else ""),
        f"delivered: {result.updates_per_s:,.0f} updates/s of {result.owed_updates_per_s:,.0f} "
        f"owed; staleness p50 {ms(result.staleness_p50_ms)}, p99 {ms(result.staleness_p99_ms)}",
        f"missed: {result.subscriptions_short} subscriptions short of their updates, "
        f"{result.seq_regressions} seqs backwards, {result.disconnects} disconnects; updates "
        f"per subscription in the window: {spread}",
        f"server CPU {cpu}, load generator CPU "
        + ("-" if result.loadgen_cpu is None else f"{result.loadgen_cpu:.0%}"),
    ]
    if result.limit:
        lines.append(f"limit: {result.limit}")
    return "\n".join(lines)


__all__ = ["add_arguments", "main", "raise_fd_limit", "source_address"]
