"""`ticker bench nodes`: one server node against two, sharing one feed through Redis.

Starts its own redis-server and `ticker feed`, then, for each tick rate, runs the fan-out workload
against one node (core 0) and against two nodes (cores 0 and 1, the clients split between them),
with the same load generator as `ticker bench fanout`. Prints delivered ticks/s, p99 latency and
each node's memory, and writes JSON. On a 2-core machine the load generators share the cores with
the nodes, so two nodes show what a second process buys here, not on a bigger machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from ticker.bench import command_options
from ticker.bench.fanout import run_loadgen
from ticker.bench.servers import Cores, child_env, free_port, pinned, running
from ticker.bench.workload import Workload

DESCRIPTION = __doc__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rates", default="1000,3000,5000",
                        help="ticks/s produced by the feed, one measurement each")
    parser.add_argument("--clients", type=int, default=1000, help="in all, split between nodes")
    parser.add_argument("--symbols-per-client", type=int, default=10)
    parser.add_argument("--measure", type=float, default=4.0)
    parser.add_argument("--out", default="bench-nodes.json")


def main(args: argparse.Namespace) -> int:
    redis_binary = shutil.which("redis-server")
    if redis_binary is None:
        print("ticker bench nodes needs redis-server (apt-get install redis-server)",
              file=sys.stderr)
        return 2
    cores = Cores.pick()
    node_cores = [cores.server, cores.loadgen]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ticker-bench-nodes-") as directory:
        logs = Path(directory)
        for rate in [float(r) for r in args.rates.split(",")]:
            with _redis(redis_binary, logs) as url, _feed(url, rate, logs):
                for count in (1, 2):
                    rows.append(_measure(args, url, rate, count, node_cores, logs))
                    print(_format(rows[-1]), flush=True)
    Path(args.out).write_text(json.dumps({"workload": command_options(args), "rows": rows},
                                         indent=2))
    print(f"wrote {args.out}")
    return 0


def _measure(args: argparse.Namespace, url: str, rate: float, count: int,
             node_cores: list[int | None], logs: Path) -> dict[str, Any]:
    workload = Workload(symbols=100, clients=args.clients // count,
                        symbols_per_client=args.symbols_per_client, measure_s=args.measure)
    ports = [free_port() for _ in range(count)]
    with contextlib.ExitStack() as stack:
        nodes = [stack.enter_context(running(
            [sys.executable, "-m", "ticker", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--broker", url, "--log-level", "warning"],
            node_cores[i], logs / f"node{i}-{count}-{rate:g}.log", port))
            for i, port in enumerate(ports)]
        for port in ports:
            _wait_ready(port)
        with ThreadPoolExecutor(count) as pool:
            # The load generators run unpinned: with two nodes, every core is a node's.
            results = list(pool.map(
                lambda i: run_loadgen(replace(workload, seed=1 + i), ports[i], rate,
                                      nodes[i].pid, None, logs / f"loadgen{i}-{count}.log"),
                range(count)))
        rss = [_rss_mb(node.pid) for node in nodes]
    delivered = sum(r.delivered_tps for r in results)
    return {"rate": rate, "nodes": count, "delivered_per_s": delivered,
            "p50_ms": max(r.p50_ms or 0.0 for r in results),
            "p99_ms": max(r.p99_ms or 0.0 for r in results),
            "gaps": sum(r.gaps for r in results), "rss_mb_per_node": rss,
            "failures": [r.failure for r in results if r.failure]}


@contextlib.contextmanager
def _redis(binary: str, logs: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(logs)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()


@contextlib.contextmanager
def _feed(url: str, rate: float, logs: Path) -> Iterator[None]:
    with (logs / f"feed-{rate:g}.log").open("wb") as log:
        process = subprocess.Popen(
            pinned([sys.executable, "-m", "ticker", "feed", "--broker", url, "--symbols", "100",
                    "--tick-rate", f"{rate:g}", "--seed", "1"], None),
            stdout=log, stderr=subprocess.STDOUT, env=child_env(), cwd=logs)
        try:
            yield
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                print(f"warning: the feed did not stop on SIGTERM within 10 s (log: {log.name})",
                      file=sys.stderr)
                process.kill()
                process.wait()


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(
                f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"node on port {port} never became ready")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _format(row: dict[str, Any]) -> str:
    rss = ", ".join(f"{mb:.0f}" for mb in row["rss_mb_per_node"])
    failed = f"  ({'; '.join(row['failures'])})" if row["failures"] else ""
    return (f"{row['rate']:>8,.0f}/s produced, {row['nodes']} node(s): "
            f"{row['delivered_per_s']:>11,.0f} delivered/s, p50 {row['p50_ms']:.1f} ms, "
            f"p99 {row['p99_ms']:.1f} ms, gaps {row['gaps']}, RSS {rss} MiB{failed}")
