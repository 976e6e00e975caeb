"""``ticker bench connections``: many subscribed WebSocket clients on one server process, or on
``--workers N`` processes sharing one port and one feed through Redis.

The server runs as ``ticker serve`` pinned to one core; the clients are plain non-blocking sockets
(``ticker.bench.kernel_client``: kernel receive timestamps, no parsing while measured) in client
processes on the other core (``ticker.bench.fleet``: one per 19,000, since a process may open
only so many files), spread over several 127.0.0.x source addresses so that the ~28k ephemeral
ports of one address do not run out. Each client subscribes to a few symbols with ``max_rate``
(a dashboard's view). Measured: the time to connect and subscribe them all (and the handshake
rate), the server's RSS per connection as they come, what a client past ``server.max_connections``
gets, and over a window: delivered updates/s, their staleness (kernel arrival minus the tick's
``ts``, which includes the conflation wait ``max_rate`` asks for), the server's and the clients'
CPU, and updates missed: subscriptions that got fewer updates than their rate allows (a symbol
that did not trade in an interval owes none for it: with the default feed the quietest symbol
trades about 4 times a second, so at max_rate 1 a few may be short for that reason), and any seq
that went backwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ticker.bench import command_options
from ticker.bench.fleet import RECORD_LEAD_S, FleetResult, Plan, source_address
from ticker.bench.sample import percentiles
from ticker.bench.servers import Cores, child_env, free_port, pinned, stop
from ticker.bench.wsframes import handshake_request
from ticker.limits import raise_open_files

DESCRIPTION = __doc__
CLIENTS_PER_FLEET = 19_000  # below the 20,000 open files a process may have on this VM
OVER_CAP = 50  # clients tried past the cap

__all__ = ["add_arguments", "main", "source_address"]


@dataclass
class Growth:
    connections: int
    seconds: float  # since the first connect
    server_rss_mb: float
    bytes_per_connection: float


@dataclass
class Result:
    clients: int
    workers: int
    connected: int = 0
    connect_seconds: float = 0.0
    handshakes_per_s: float = 0.0
    server_rss_mb: float = 0.0
    bytes_per_connection: float = 0.0
    connections_per_worker: list[int] = field(default_factory=list)
    growth: list[Growth] = field(default_factory=list)
    connect_failures: dict[str, int] = field(default_factory=dict)
    over_cap_refused_503: int = 0
    over_cap_other: dict[str, int] = field(default_factory=dict)
    window_s: float = 0.0
    delivered_updates: int = 0
    updates_per_s: float = 0.0
    owed_updates_per_s: float = 0.0
    staleness_p50_ms: float | None = None
    staleness_p99_ms: float | None = None
    subscriptions_short: int = 0
    updates_per_subscription: dict[str, int] = field(default_factory=dict)
    seq_regressions: int = 0
    disconnects: int = 0
    close_codes: dict[str, int] = field(default_factory=dict)  # of the closes the server sent
    server_cpu: float | None = None
    loadgen_cpu: float | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=10_000, help="clients to open (10000)")
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes on one port, sharing the feed through a "
                             "redis-server the benchmark starts (1: one process, no Redis)")
    parser.add_argument("--symbols-per-client", type=int, default=3, metavar="K")
    parser.add_argument("--max-rate", type=float, default=1.0,
                        help="updates/s per symbol each client asks for (1)")
    parser.add_argument("--tick-rate", type=float, default=1000.0,
                        help="the feed's ticks/s over its 100 symbols (1000)")
    parser.add_argument("--window", type=float, default=10.0,
                        help="seconds measured (10; the clients answer no ping while measured, "
                             "so the servers ping no more often than every twice the "
                             "recording, 20 s at least)")
    parser.add_argument("--out", default="bench-connections.json")
    parser.add_argument("--log-dir", metavar="DIR", help="the servers' logs (default: a temp dir)")


def rss_bytes(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(child) for child in
                Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def connection_count(pid: int, port: int) -> int:
    """Established TCP connections of process ``pid`` on local ``port`` (from /proc)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = fd.readlink().name
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    count = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if (fields[3] == "01" and int(fields[1].split(":")[1], 16) == port
                    and fields[9] in inodes):
                count += 1
    return count


class Fleet:
    """One client process, driven over its stdin and stdout."""

    def __init__(self, plan: Plan, core: int | None, log: Path) -> None:
        self.lines: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            pinned([sys.executable, "-m", "ticker.bench.fleet", json.dumps(asdict(plan))], core),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=child_env())
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with contextlib.suppress(ValueError), self.changed:
                self.lines.append(json.loads(raw))
                self.changed.notify_all()
        with self.changed:
            self.lines.append({"event": "exited"})
            self.changed.notify_all()

    def latest(self, event: str) -> dict[str, Any] | None:
        return next((line for line in reversed(self.lines) if line["event"] == event), None)

    def wait(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = self.latest(event)
                if found is not None:
                    return found
                if self.latest("exited") is not None:
                    raise RuntimeError(f"a client process exited before {event!r} "
                                       f"(log: {self._log.name})")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no {event!r} from a client process in {timeout:.0f} s")
                self.changed.wait(left)

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        self.process.stdin.flush()

    def close(self) -> None:
        stop(self.process)
        self._log.close()


async def over_cap(port: int, count: int) -> dict[str, int]:
    """What clients past the cap get: the HTTP status of each handshake's answer."""
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


def ping_interval(window_s: float) -> float:
    """The servers' ping interval: a quiet client is pinged once nothing was written to it for
    that long, and failed a turn later if it did not answer. Recording (1 s, then the window)
    the clients answer nothing, so no ping may fall due and go unanswered within it."""
    return max(20.0, 2.0 * (RECORD_LEAD_S + window_s))


@contextlib.contextmanager
def servers(args: argparse.Namespace, port: int, core: int | None,
            log_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The server (or the workers' parent, with redis-server and ``ticker feed``)."""
    per_worker = math.ceil(args.clients / args.workers)
    # One process: exactly the clients, so the 51st past them meets the cap. Workers: the
    # kernel deals connections unevenly, so each may take some more; past the sum, the cap.
    cap = args.clients if args.workers == 1 else per_worker + per_worker // 5
    env = {**child_env(), "TICKER_SERVER_MAX_CONNECTIONS": str(cap),
           "TICKER_SERVER_WS_PING_INTERVAL": f"{ping_interval(args.window):g}"}
    command = [sys.executable, "-m", "ticker", "serve", "--host", "127.0.0.1", "--port",
               str(port), "--log-level", "warning"]
    with contextlib.ExitStack() as stack:
        if args.workers > 1:
            from ticker.bench.nodes import _feed, _redis

            binary = shutil.which("redis-server")
            if binary is None:
                raise RuntimeError("--workers needs redis-server (apt-get install redis-server)")
            url = stack.enter_context(_redis(binary, log_dir))
            stack.enter_context(_feed(url, args.tick_rate, log_dir))
            command += ["--broker", url, "--workers", str(args.workers)]
        else:
            command += ["--symbols", "100", "--tick-rate", f"{args.tick_rate:g}", "--seed", "1"]
        log = stack.enter_context((log_dir / "server.log").open("wb"))
        server = subprocess.Popen(pinned(command, core), stdout=log, stderr=subprocess.STDOUT,
                                  cwd=log_dir, env=env)
        stack.callback(stop, server)
        _wait_ready(port, server)
        yield server


def main(args: argparse.Namespace) -> int:
    cores = Cores.pick()
    cores.pin_self()
    raise_open_files(OVER_CAP)
    log_dir = Path(args.log_dir) if args.log_dir else Path(tempfile.mkdtemp(prefix="ticker-conn-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    print(f"connections: {args.clients:,} clients x {args.symbols_per_client} symbols at "
          f"{args.max_rate:g} updates/s each, feed {args.tick_rate:g} ticks/s, "
          f"{args.workers} server process(es) on core {cores.server} (logs in {log_dir}), "
          f"clients on core {cores.loadgen}", flush=True)
    try:
        with servers(args, port, cores.server, log_dir) as server:
            result = measure(args, port, server.pid, cores.loadgen, log_dir)
    except RuntimeError as error:
        print(f"ticker bench connections: {error}", file=sys.stderr)
        return 1
    print(table(result), flush=True)
    Path(args.out).write_text(json.dumps({"benchmark": "ticker bench connections",
                                          "options": command_options(args),
                                          "result": asdict(result)}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def measure(args: argparse.Namespace, port: int, server_pid: int, core: int | None,
            log_dir: Path) -> Result:
    pids = children(server_pid) if args.workers > 1 else [server_pid]
    result = Result(args.clients, args.workers)
    base_rss = sum(rss_bytes(pid) for pid in pids)
    count = math.ceil(args.clients / CLIENTS_PER_FLEET)
    fleets = []
    started = time.monotonic()
    try:
        for k in range(count):
            first = k * CLIENTS_PER_FLEET
            plan = Plan(port, first, min(CLIENTS_PER_FLEET, args.clients - first),
                        args.symbols_per_client, args.max_rate, args.window)
            fleets.append(Fleet(plan, core, log_dir / f"clients-{k}.log"))
        reported = 0
        while not all(fleet.latest("connected") for fleet in fleets):
            for fleet in fleets:
                if fleet.latest("exited") and not fleet.latest("connected"):
                    fleet.wait("connected", 0)  # raises, with the log to read
            done = sum(int(str((fleet.latest("connected") or fleet.latest("progress")
                                or {"count": 0})["count"])) for fleet in fleets)
            if done >= reported + 10_000:
                reported = done - done % 10_000
                rss = sum(rss_bytes(pid) for pid in pids)
                result.growth.append(Growth(done, round(time.monotonic() - started, 1),
                                            round(rss / 2**20, 1), (rss - base_rss) / done))
                print(f"  {done:>8,} subscribed in {result.growth[-1].seconds:6.1f} s, server "
                      f"RSS {rss / 2**20:7.0f} MiB, {(rss - base_rss) / done / 1000:5.1f} KB "
                      "per connection", flush=True)
            time.sleep(0.5)
        connected = [fleet.wait("connected", 0) for fleet in fleets]
        result.connected = sum(int(str(line["count"])) for line in connected)
        result.connect_seconds = round(time.monotonic() - started, 1)
        result.handshakes_per_s = round(result.connected / result.connect_seconds, 1)
        for line in connected:
            for name, times in line["failures"].items():
                result.connect_failures[name] = result.connect_failures.get(name, 0) + times
        time.sleep(2.0)
        rss = sum(rss_bytes(pid) for pid in pids)
        result.server_rss_mb = round(rss / 2**20, 1)
        result.bytes_per_connection = round((rss - base_rss) / max(1, result.connected), 1)
        result.connections_per_worker = [connection_count(pid, port) for pid in pids]
        refused = asyncio.run(over_cap(port, OVER_CAP))
        result.over_cap_refused_503 = refused.pop("503", 0)
        result.over_cap_other = refused
        for fleet in fleets:
            fleet.go()
        time.sleep(RECORD_LEAD_S)  # as the client processes do before their window
        cpu0 = sum(cpu_seconds(pid) for pid in pids)
        time.sleep(args.window)
        result.server_cpu = round((sum(cpu_seconds(pid) for pid in pids) - cpu0) / args.window,
                                  3)
        outcomes = [fleet_result(fleet.wait("result", 120 + args.clients / 1000))
                    for fleet in fleets]
    finally:
        for fleet in fleets:
            fleet.close()
    staleness: list[float] = []
    for outcome in outcomes:
        result.delivered_updates += outcome.delivered
        result.subscriptions_short += outcome.subscriptions_short
        result.seq_regressions += outcome.seq_regressions
        result.disconnects += outcome.disconnects
        for code, times in outcome.close_codes.items():
            result.close_codes[code] = result.close_codes.get(code, 0) + times
        staleness += outcome.staleness_ms
        for updates, times in outcome.updates_per_subscription.items():
            spread = result.updates_per_subscription
            spread[updates] = spread.get(updates, 0) + times
    result.loadgen_cpu = round(sum(outcome.cpu for outcome in outcomes), 3)
    result.window_s = args.window
    result.updates_per_s = round(result.delivered_updates / args.window, 1)
    result.owed_updates_per_s = result.connected * args.symbols_per_client * args.max_rate
    if staleness:
        p50, p99 = percentiles(staleness, (50, 99))
        result.staleness_p50_ms, result.staleness_p99_ms = round(p50, 1), round(p99, 1)
    return result


def fleet_result(line: dict[str, Any]) -> FleetResult:
    return FleetResult(**{key: value for key, value in line.items() if key != "event"})


def _wait_ready(port: int, server: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(
                f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            if response.status == 200:
                time.sleep(1.0)  # the feed's first ticks in every history
                return
        time.sleep(0.2)
    raise RuntimeError("the server was not ready within 60 s")


def table(result: Result) -> str:
    spread = dict(sorted(result.updates_per_subscription.items(), key=lambda kv: int(kv[0])))

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    lines = [
        f"connected and subscribed: {result.connected:,} of {result.clients:,} in "
        f"{result.connect_seconds:.1f} s ({result.handshakes_per_s:,.0f}/s)"
        + (f"; failures {result.connect_failures}" if result.connect_failures else ""),
        f"server RSS: {result.server_rss_mb:,.0f} MiB, "
        f"{result.bytes_per_connection / 1000:.1f} KB per connection"
        + (f"; per worker {result.connections_per_worker}" if result.workers > 1 else ""),
        f"past the cap: {result.over_cap_refused_503} of {OVER_CAP} refused with 503"
        + (f", others {result.over_cap_other}" if result.over_cap_other else ""),
        f"delivered: {result.updates_per_s:,.0f} updates/s of {result.owed_updates_per_s:,.0f} "
        f"owed; staleness p50 {ms(result.staleness_p50_ms)}, p99 {ms(result.staleness_p99_ms)}",
        f"missed: {result.subscriptions_short} subscriptions short of their updates, "
        f"{result.seq_regressions} seqs backwards, {result.disconnects} disconnects"
        + (f" (close codes {result.close_codes})" if result.close_codes else "") + "; updates "
        f"per subscription in the window: {spread}",
        f"server CPU {share(result.server_cpu)}, clients' CPU {share(result.loadgen_cpu)}",
    ]
    return "\n".join(lines)
