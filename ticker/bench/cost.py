"""``ticker bench cost``: how the server's CPU per delivered tick and per frame grows with clients.

The same feed (T ticks/s produced over N symbols) and the same delivered ticks/s at every point
of the sweep; only the number of clients changes, each subscribing to as many symbols as keeps
the delivered rate (K = delivered * N / (T * clients)): 100 clients x 100 symbols, 1000 x 10,
5000 x 2, 10000 x 1 by default. Each point is one ``ticker bench fanout`` step of our server
(pinned to one core, the kernel-timestamp load generator on the other), and prints the server's
CPU-us per delivered tick and per frame. A fan-out whose work per tick grows with the number of
connections (a walk over every connection per tick, a timer per connection) shows here as a
per-tick cost that climbs down the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from ticker.bench.cpu import others_load
from ticker.bench.fanout import run_step, wait_for_quiet
from ticker.bench.measurement import Measurement
from ticker.bench.report import Step
from ticker.bench.servers import KINDS, Cores
from ticker.bench.workload import Workload

DESCRIPTION = (
    "Our server at the same delivered ticks/s and the same feed with 100, 1000, 5000 and 10000 "
    "clients (each on as many symbols as keeps the delivered rate); print CPU-us per delivered "
    "tick and per frame, p50/p99 and share on time per point; write them as JSON.")
HEADER = (f"{'clients':>8} {'symbols':>7} {'delivered/s':>12} {'frames/s':>9} {'ticks/frame':>11} "
          f"{'server':>6} {'us/tick':>7} {'us/frame':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'on time':>8}  verdict")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=_counts, default=[100, 1000, 5000, 10_000],
                        metavar="C,C,...", help="the sweep's client counts (100,1000,5000,10000)")
    parser.add_argument("--delivered", type=float, default=100_000.0,
                        help="delivered ticks/s at every point (100000)")
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="ticks/s the feed produces at every point (1000)")
    parser.add_argument("--symbols", type=int, default=100, help="symbols traded (100)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring (3)")
    parser.add_argument("--measure", type=float, default=5.0, help="seconds measured (5)")
    parser.add_argument("--out", default="bench-cost.json", metavar="PATH",
                        help="where to write the points as JSON (bench-cost.json)")
    parser.add_argument("--log-dir", metavar="DIR", help="logs (default: a new temp directory)")


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected counts like 100,1000, got {text!r}") from None
    if not counts or any(count < 1 for count in counts):
        raise argparse.ArgumentTypeError(f"counts must be >= 1, got {text!r}")
    return counts


def symbols_per_client(delivered: float, rate: float, symbols: int, clients: int) -> int:
    """K such that rate * clients * K / symbols == delivered; ValueError where no whole K does."""
    exact = delivered * symbols / (rate * clients)
    count = round(exact)
    if count < 1 or count > symbols or abs(count - exact) > 1e-9 * max(1.0, exact):
        raise ValueError(f"{clients} clients cannot get {delivered:g} ticks/s from {rate:g}/s "
                         f"over {symbols} symbols with a whole number of symbols each "
                         f"({exact:g}); change --delivered, --rate or --clients")
    return count


def point(measurement: Measurement, clients: int, per_client: int) -> dict[str, object]:
    cpu = measurement.server_cpu
    delivered, frames = measurement.delivered_tps, measurement.frames_per_s
    step = Step.of(measurement)
    return {**step.to_json(), "clients": clients, "symbols_per_client": per_client,
            "cpu_us_per_tick": round(1e6 * cpu / delivered, 3) if cpu and delivered else None,
            "cpu_us_per_frame": round(1e6 * cpu / frames, 2) if cpu and frames else None,
            "ticks_per_frame": round(delivered / frames, 2) if frames else None}


def row(data: dict[str, object]) -> str:
    def number(key: str, spec: str) -> str:
        value = data.get(key)
        return format(value, spec) if isinstance(value, int | float) else "-"

    return (f"{number('clients', '>8,')} {number('symbols_per_client', '>7')} "
            f"{number('delivered_tps', '>12,.0f')} {number('frames_per_s', '>9,.0f')} "
            f"{number('ticks_per_frame', '>11.2f')} {number('server_cpu', '>6.0%')} "
            f"{number('cpu_us_per_tick', '>7.2f')} {number('cpu_us_per_frame', '>8.1f')} "
            f"{number('p50_ms', '>7.1f')} {number('p99_ms', '>7.1f')} "
            f"{number('on_time_share', '>8.3%')}  {data.get('verdict')}")


def main(args: argparse.Namespace) -> int:
    try:
        plan = [(clients, symbols_per_client(args.delivered, args.rate, args.symbols, clients))
                for clients in args.clients]
    except ValueError as error:
        print(f"ticker bench cost: {error}", file=sys.stderr)
        return 2
    log_dir = Path(args.log_dir) if args.log_dir else Path(tempfile.mkdtemp(prefix="ticker-cost-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    cores = Cores.pick()
    cores.pin_self()
    ours = next(kind for kind in KINDS if kind.name == "ours")
    started, clock = datetime.now(UTC), time.monotonic()
    print(f"cost sweep: {args.rate:g} ticks/s produced over {args.symbols} symbols, "
          f"{args.delivered:,.0f} delivered/s at every point; server on core {cores.server}, "
          f"load generator on core {cores.loadgen}; logs in {log_dir}\n  {HEADER}", flush=True)
    points = []
    for clients, per_client in plan:
        workload = Workload(symbols=args.symbols, clients=clients, symbols_per_client=per_client,
                            warmup_s=args.warmup, measure_s=args.measure)
        wait_for_quiet(10.0)
        # Room above the sweep's own connections, whatever server.max_connections says.
        limits = {"TICKER_SERVER_MAX_CONNECTIONS": str(clients + 100)}
        point_logs = log_dir / f"{clients}-clients"
        point_logs.mkdir(exist_ok=True)
        measurement = run_step(ours, args.rate, workload, cores, point_logs, patience=0.0,
                               extra_env=limits)
        points.append(point(measurement, clients, per_client))
        print("  " + row(points[-1]), flush=True)
    costs = [p["cpu_us_per_tick"] for p in points if isinstance(p["cpu_us_per_tick"], float)]
    if len(costs) >= 2:
        print(f"CPU-us per delivered tick, most clients against fewest: "
              f"{costs[-1] / costs[0]:.2f}x", flush=True)
    Path(args.out).write_text(json.dumps({
        "benchmark": "ticker bench cost", "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - clock, 1), "rate": args.rate,
        "delivered": args.delivered, "symbols": args.symbols,
        "machine": {"cpus": cores.count, "server_core": cores.server,
                    "loadgen_core": cores.loadgen},
        "others_load_before_run": others_load(0.5), "points": points}, indent=2) + "\n")
    print(f"Points written to {args.out}.")
    return 0


__all__ = ["add_arguments", "main", "symbols_per_client"]
