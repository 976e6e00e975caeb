"""One process's share of ``ticker bench connections``' clients (a process may open only so many
files): ``python -m ticker.bench.fleet JSON``.

It connects and subscribes its clients, says so on stdout as a JSON line, waits for "go" on
stdin, records a window of kernel-timestamped reads, then decodes them and prints the result as
a JSON line. Progress lines come while it connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from array import array
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from ticker.bench.arrivals import kernel_ns
from ticker.bench.generator import Tracker
from ticker.bench.kernel_client import Client
from ticker.bench.recorder import Recording
from ticker.bench.wsframes import OP_TEXT, FrameError
from ticker.limits import raise_open_files

PORTS_PER_SOURCE = 25_000  # of the 28,232 ephemeral ports Linux gives one address by default
CONNECT_CONCURRENCY = 200  # handshakes in flight, well within uvicorn's listen backlog (2048)
PROGRESS_EVERY = 5_000

RECORD_LEAD_S = 1.0  # recorded before the window: the last live frames drain meanwhile


@dataclass
class Plan:
    port: int
    first: int  # index of this fleet's first client, across all fleets
    count: int
    symbols_per_client: int
    max_rate: float
    window_s: float


@dataclass
class FleetResult:
    connected: int = 0
    connect_seconds: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    staleness_ms: list[float] = field(default_factory=list)
    subscriptions_short: int = 0
    updates_per_subscription: dict[str, int] = field(default_factory=dict)
    seq_regressions: int = 0
    disconnects: int = 0
    close_codes: dict[str, int] = field(default_factory=dict)  # of the closes the server sent
    cpu: float = 0.0


def source_address(index: int) -> str:
    """127.0.0.2, .3, ...: PORTS_PER_SOURCE clients each (the server listens on 127.0.0.1)."""
    return f"127.0.0.{2 + index // PORTS_PER_SOURCE}"


def subscription(index: int, plan: Plan) -> list[str]:
    names = [f"S{k:04d}" for k in range(1, 101)]
    return [names[(index * plan.symbols_per_client + k) % len(names)]
            for k in range(plan.symbols_per_client)]


def digest(client: Client, t0_ns: int, t1_ns: int, staleness: array[float]
           ) -> tuple[int, dict[str, int], int]:
    """Cut and decode a client's reads after the window: (updates inside it, per symbol, seqs
    that went backwards), and each update's staleness."""
    delivered, regressions = 0, 0
    per_symbol: dict[str, int] = {}
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
                    regressions += 1
                last_seq[symbol] = seq
                if inside:
                    delivered += 1
                    per_symbol[symbol] = per_symbol.get(symbol, 0) + 1
                    staleness.append(arrival / 1e6 - tick["ts"])
    client.log.records = []
    return delivered, per_symbol, regressions


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def run(plan: Plan, go: asyncio.Event) -> FleetResult:
    tracker = Tracker(plan.count)
    clients = [Client(orjson.dumps({"op": "subscribe", "symbols": subscription(i, plan),
                                    "max_rate": plan.max_rate}), tracker,
                      source=source_address(i))
               for i in range(plan.first, plan.first + plan.count)]
    result = FleetResult()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    started = time.monotonic()
    next_progress = [PROGRESS_EVERY]

    async def connect(client: Client) -> None:
        async with gate:
            try:
                await client.connect("127.0.0.1", plan.port, "/ws")
            except (OSError, TimeoutError, FrameError) as error:
                name = type(error).__name__
                result.failures[name] = result.failures.get(name, 0) + 1
                client.closing = True
                client.abort()
                return
        if tracker.subscribed >= next_progress[0]:
            next_progress[0] += PROGRESS_EVERY
            say("progress", count=tracker.subscribed)

    await asyncio.gather(*(connect(client) for client in clients))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(tracker.all_subscribed.wait(), 30.0)
    result.connected = tracker.subscribed
    result.connect_seconds = round(time.monotonic() - started, 2)
    say("connected", count=result.connected, seconds=result.connect_seconds,
        failures=result.failures)
    await go.wait()
    recording = Recording(clients)
    recording.start()
    # Recording answers no ping: the whole recording (this second and the window) must stay
    # under the server's ping timeout (20 s by default), or its keep-alive drops the clients.
    await recording.until(time.time() + RECORD_LEAD_S)
    cpu0 = time.process_time()
    t0 = time.time_ns()
    await recording.until(t0 / 1e9 + plan.window_s)
    t1 = time.time_ns()
    result.cpu = round((time.process_time() - cpu0) / plan.window_s, 3)
    recording.stop()
    for client in clients:
        client.close()
    await asyncio.sleep(0.5)
    for client in clients:
        client.abort()
    staleness: array[float] = array("d")
    owed_each = int(plan.window_s * plan.max_rate) - 1  # whole intervals inside the window
    for client in clients:
        if not client.subscribed:
            continue
        delivered, per_symbol, regressions = digest(client, t0, t1, staleness)
        result.delivered += delivered
        result.seq_regressions += regressions
        for symbol in orjson.loads(client.subscribe)["symbols"]:
            count = per_symbol.get(symbol, 0)
            result.subscriptions_short += count < owed_each
            spread = result.updates_per_subscription
            spread[str(count)] = spread.get(str(count), 0) + 1
    result.disconnects = tracker.disconnects
    result.close_codes = dict(tracker.close_codes)
    result.staleness_ms = [round(value, 1) for value in staleness]
    return result


async def main_async(plan: Plan) -> None:
    loop = asyncio.get_running_loop()
    go = asyncio.Event()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def wait_go() -> None:
        await reader.readline()
        go.set()

    waiter = asyncio.create_task(wait_go())
    result = await run(plan, go)
    waiter.cancel()
    say("result", **asdict(result))


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("ticker.bench.kernel_client").setLevel(logging.ERROR)
    args = sys.argv[1:] if argv is None else argv
    plan = Plan(**json.loads(args[0]))
    raise_open_files(plan.count)
    asyncio.run(main_async(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
