"""`ticker bench connections`: how many subscribed WebSocket connections one server process holds,
and what each costs in server memory, with and without permessage-deflate.

The server runs as `ticker serve` in its own process (pinned to core 0 when there are two); the
clients live in this process (pinned to the other core), each subscribed to a few symbols of a slow
feed, so the measure is the cost of holding connections rather than of moving ticks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ticker.bench import command_options

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection


READY_LINE = re.compile(rb"dashboard: http://[^:]+:(\d+)/")


@dataclass
class Step:
    deflate: bool
    connections: int
    server_rss_mb: float
    bytes_per_connection: float
    receiving: int
    sampled: int


DESCRIPTION = __doc__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", type=int, default=10_000, help="connections to reach")
    parser.add_argument("--step", type=int, default=2_000, help="connections added per step")
    parser.add_argument("--symbols-per-client", type=int, default=2)
    parser.add_argument("--tick-rate", type=float, default=100.0,
                        help="the feed's total ticks/s (kept low: this measures holding)")
    parser.add_argument("--deflate", choices=["off", "on", "both"], default="both")
    parser.add_argument("--out", default="bench-connections.json")


def main(args: argparse.Namespace) -> int:
    cores = os.sched_getaffinity(0)
    if len(cores) >= 2:
        os.sched_setaffinity(0, {sorted(cores)[1]})
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.deflate]
    steps: list[Step] = []
    for deflate in modes:
        steps += asyncio.run(_measure(args, deflate))
    _print_table(steps)
    Path(args.out).write_text(json.dumps({"workload": command_options(args),
                                          "steps": [asdict(s) for s in steps]}, indent=2))
    print(f"\nwrote {args.out}")
    return 0


async def _measure(args: argparse.Namespace, deflate: bool) -> list[Step]:
    import psutil

    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the server's lifetime
        prefix="ticker-bench-conn-", suffix=".log", delete=False)
    server, port = _start_server(args.tick_rate, deflate, log)
    process = psutil.Process(server.pid)
    clients: list[ClientConnection] = []
    counters: list[int] = []
    steps: list[Step] = []
    try:
        await asyncio.sleep(1.0)
        base_rss = process.memory_info().rss
        while len(clients) < args.target:
            count = min(args.step, args.target - len(clients))
            await _open(clients, counters, count, port, args.symbols_per_client, deflate)
            await asyncio.sleep(2.0)
            sampled = list(range(0, len(clients), max(1, len(clients) // 200)))
            before = [counters[i] for i in sampled]
            await asyncio.sleep(2.0)
            receiving = sum(counters[i] > b for i, b in zip(sampled, before, strict=True))
            rss = process.memory_info().rss
            steps.append(Step(deflate, len(clients), rss / 2**20,
                              (rss - base_rss) / len(clients), receiving, len(sampled)))
            print(f"deflate={'on' if deflate else 'off'}: {len(clients)} connections, "
                  f"server RSS {rss / 2**20:.0f} MiB, {(rss - base_rss) / len(clients):.0f} B "
                  f"per connection, {receiving}/{len(sampled)} sampled receiving", flush=True)
            if server.poll() is not None:
                raise RuntimeError(f"the server died; see {log.name}")
    finally:
        for client in clients:
            client.transport.abort()
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(10)
        server.kill()
        gc.collect()
    return steps


async def _open(clients: list[ClientConnection], counters: list[int], count: int, port: int,
                symbols_per_client: int, deflate: bool) -> None:
    from websockets.asyncio.client import connect

    semaphore = asyncio.Semaphore(200)  # the listen backlog is finite: do not flood it

    async def one(index: int) -> None:
        async with semaphore:
            client = await connect(f"ws://127.0.0.1:{port}/ws", open_timeout=60,
                                   compression="deflate" if deflate else None, max_queue=None)
        hello = json.loads(await client.recv())
        symbols = hello["symbols"]
        chosen = [symbols[(index * symbols_per_client + k) % len(symbols)]
                  for k in range(symbols_per_client)]
        await client.send(json.dumps({"op": "subscribe", "symbols": chosen}))
        slot = len(counters)
        counters.append(0)
        clients.append(client)
        asyncio.get_running_loop().create_task(_count(client, counters, slot))

    start = len(clients)
    await asyncio.gather(*(one(start + i) for i in range(count)))


async def _count(client: ClientConnection, counters: list[int], slot: int) -> None:
    with contextlib.suppress(Exception):
        async for _ in client:
            counters[slot] += 1


def _start_server(tick_rate: float, deflate: bool,
                  log: Any) -> tuple[subprocess.Popen[bytes], int]:
    command = [sys.executable, "-m", "ticker", "serve", "--port", "0", "--symbols", "100",
               "--tick-rate", str(tick_rate), "--seed", "1"]
    cores = sorted(os.sched_getaffinity(0) | set(range(os.cpu_count() or 1)))
    if len(cores) >= 2:
        command = ["taskset", "-c", str(cores[0]), *command]
    env = {**os.environ, "TICKER_SERVER_WS_COMPRESSION": "true" if deflate else "false",
           "TICKER_SERVER_LOG_LEVEL": "info"}
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.PIPE, env=env)
    assert server.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = server.stderr.readline()
        log.write(line)
        match = READY_LINE.search(line)
        if match:
            _drain_in_background(server, log)
            return server, int(match.group(1))
        if not line and server.poll() is not None:
            break
    server.kill()
    raise RuntimeError(f"the server did not start; see {log.name}")


def _drain_in_background(server: subprocess.Popen[bytes], log: Any) -> None:
    import threading

    def copy() -> None:
        assert server.stderr is not None
        for line in server.stderr:
            log.write(line)

    threading.Thread(target=copy, daemon=True).start()


def _print_table(steps: list[Step]) -> None:
    print(f"\n{'deflate':>7} {'connections':>11} {'server RSS MiB':>14} {'bytes/conn':>10} "
          f"{'receiving':>9}")
    for step in steps:
        print(f"{'on' if step.deflate else 'off':>7} {step.connections:>11} "
              f"{step.server_rss_mb:>14.0f} {step.bytes_per_connection:>10.0f} "
              f"{step.receiving:>4}/{step.sampled:<4}")

