"""Soak test: a server under steady load with clients that come and go, for a long time.

    python bench/soak.py --minutes 30 [--clients 200] [--tick-rate 2000] [--every 30]

Starts `ticker serve` in its own process, keeps ``--clients`` subscribers reading, and meanwhile
churns others (connect, subscribe, leave; every tenth is killed without a close). Every
``--every`` seconds it prints the server's RSS, its connections and what it delivered (from
/metrics), and at the end a JSON summary with the RSS growth from the first sample after warm-up
to the last. Not part of the test suite: it takes as long as you ask.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(r"dashboard: http://[^:]+:(\d+)/")


def start_server(tick_rate: float, symbols: int) -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, "-m", "ticker", "serve", "--port", "0", "--symbols", str(symbols),
               "--tick-rate", str(tick_rate), "--seed", "1"]
    if len(os.sched_getaffinity(0)) >= 2:
        command = ["taskset", "-c", "0", *command]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:
        if match := READY.search(line):
            # Keep reading what it logs, or a full pipe would stop the server.
            threading.Thread(target=_drain, args=(process.stderr,), daemon=True).start()
            return process, int(match.group(1))
    raise SystemExit(f"the server did not start (exit {process.wait()})")


def _drain(stream: Any) -> None:
    for _ in stream:
        pass


async def steady_client(url: str, symbols: list[str], counts: dict[str, int]) -> None:
    while True:
        with contextlib.suppress(OSError, Exception):
            async with connect(url, max_queue=None) as ws:
                await ws.send(orjson.dumps({"op": "subscribe", "symbols": symbols}).decode())
                async for frame in ws:
                    counts["frames"] += 1
                    counts["bytes"] += len(frame)
        counts["reconnects"] += 1
        await asyncio.sleep(1)


async def churner(url: str, symbols: list[str], counts: dict[str, int]) -> None:
    while True:
        with contextlib.suppress(OSError, Exception):
            ws = await connect(url)
            await ws.send(orjson.dumps({"op": "subscribe",
                                        "symbols": random.sample(symbols, 5)}).decode())
            await asyncio.sleep(random.uniform(0.1, 2.0))
            if random.random() < 0.1:
                ws.transport.abort()  # killed without a close
            else:
                await ws.close()
            counts["churned"] += 1
        await asyncio.sleep(random.uniform(0.0, 0.5))


def metrics(text: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    process, port = start_server(args.tick_rate, args.symbols)
    server = psutil.Process(process.pid)
    url = f"ws://127.0.0.1:{port}/ws"
    symbols = [f"S{n:04d}" for n in range(1, args.symbols + 1)]
    counts = {"frames": 0, "bytes": 0, "reconnects": 0, "churned": 0}
    tasks = [asyncio.create_task(steady_client(url, random.sample(symbols, 10), counts))
             for _ in range(args.clients)]
    tasks += [asyncio.create_task(churner(url, symbols, counts)) for _ in range(args.churners)]
    samples: list[dict[str, float]] = []
    started = time.monotonic()
    print(f"{'min':>6} {'RSS MiB':>8} {'conns':>6} {'ticks out/s':>12} {'churned':>8} "
          f"{'reconnects':>10}")
    previous_out, previous_t = 0.0, started
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            while (elapsed := time.monotonic() - started) < args.minutes * 60:
                await asyncio.sleep(min(args.every, args.minutes * 60 - elapsed))
                now = time.monotonic()
                values = metrics((await http.get(f"http://127.0.0.1:{port}/metrics")).text)
                ticks_out = values.get("ticker_ticks_out_total", 0.0)
                sample = {"minutes": round((now - started) / 60, 2),
                          "rss_mib": round(server.memory_info().rss / 2**20, 1),
                          "connections": values.get("ticker_connections", 0.0),
                          "ticks_out_per_s": round((ticks_out - previous_out)
                                                   / (now - previous_t)),
                          "churned": counts["churned"], "reconnects": counts["reconnects"]}
                previous_out, previous_t = ticks_out, now
                samples.append(sample)
                print(f"{sample['minutes']:>6} {sample['rss_mib']:>8} "
                      f"{sample['connections']:>6.0f} {sample['ticks_out_per_s']:>12} "
                      f"{sample['churned']:>8} {sample['reconnects']:>10}", flush=True)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        process.terminate()
        process.wait(30)
    # The first half includes filling every symbol's history ring (hub.history_size ticks each:
    # 500 s at the defaults); a leak shows as growth over the second half.
    half = samples[len(samples) // 2] if samples else {}
    last = samples[-1] if samples else {}
    return {"minutes": args.minutes, "clients": args.clients, "churners": args.churners,
            "tick_rate": args.tick_rate, "samples": samples,
            "rss_first_mib": samples[0]["rss_mib"] if samples else None,
            "rss_half_mib": half.get("rss_mib"), "rss_last_mib": last.get("rss_mib"),
            "rss_growth_second_half_mib": (round(last["rss_mib"] - half["rss_mib"], 1)
                                           if samples else None),
            "server_exit_code": process.returncode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--churners", type=int, default=20)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--tick-rate", type=float, default=2000.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--json", type=Path, default=Path("soak.json"))
    args = parser.parse_args()
    result = asyncio.run(soak(args))
    args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(orjson.dumps({k: v for k, v in result.items() if k != "samples"}).decode())
    print(f"JSON: {args.json}")


if __name__ == "__main__":
    main()
