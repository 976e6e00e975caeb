"""``ticker bench slow``: what stalled clients cost everyone else.

The fan-out workload (``ticker bench fanout``: 1000 clients x 10 of 100 symbols) at one rate,
measured in pairs of steps: one with only those clients, one with ``--stalled`` more clients that
subscribe to every symbol and then stop reading (reading paused, a 4 KB receive buffer). The
server must drop those by its slow-client policy (send timeout, or too far behind: 4008) while
the measured clients see no difference. The two kinds of step alternate, so that drift on a
shared machine hits both alike; the verdict compares the medians of each kind, with the spread
between steps of the same kind as the noise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ticker.bench.cpu import others_load
from ticker.bench.fanout import run_step
from ticker.bench.measurement import Measurement, judge
from ticker.bench.servers import KINDS, Cores
from ticker.bench.workload import Workload

DESCRIPTION = (
    "The fan-out workload at one rate, in alternating steps without and with clients that stop "
    "reading; prints the measured clients' latency in each and the difference, writes JSON.")
OURS = KINDS[0]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=2000.0,
                        help="ticks/s produced (2000: 200k/s delivered, ~10 %% of capacity)")
    parser.add_argument("--stalled", type=int, default=50,
                        help="clients on every symbol that stop reading (50)")
    parser.add_argument("--clients", type=int, default=1000, help="measured clients (1000)")
    parser.add_argument("--sample", type=int, default=50,
                        help="of which parse every tick, for latency and gaps (50)")
    parser.add_argument("--pairs", type=int, default=3, help="steps of each kind (3)")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds before each measurement (3): the stalled clients fill up")
    parser.add_argument("--measure", type=float, default=5.0, help="seconds measured (5)")
    parser.add_argument("--out", default="bench-slow.json", metavar="PATH",
                        help="where to write every step as JSON (bench-slow.json)")


def main(args: argparse.Namespace) -> int:
    if args.stalled < 1 or args.pairs < 1 or args.rate <= 0:
        print("ticker bench slow: --stalled and --pairs must be >= 1, --rate > 0",
              file=sys.stderr)
        return 2
    cores = Cores.pick()
    cores.pin_self()
    log_dir = Path(tempfile.mkdtemp(prefix="ticker-bench-slow-"))
    load = others_load(1.0)
    try:
        plain = Workload(clients=args.clients, sample=args.sample, warmup_s=args.warmup,
                         measure_s=args.measure)
    except ValueError as error:
        print(f"ticker bench slow: {error}", file=sys.stderr)
        return 2
    stalled = dataclasses.replace(plain, stalled=args.stalled)
    print(f"{plain.clients} clients x {plain.symbols_per_client} of {plain.symbols} symbols at "
          f"{args.rate:,.0f} ticks/s produced; with or without {args.stalled} stalled clients "
          f"on every symbol; logs in {log_dir}")
    print(f"  {'stalled':>7} {'delivered/s':>12} {'on time':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'gaps':>5} {'dropped':>7} {'server':>6}  verdict")
    steps: dict[int, list[Measurement]] = {0: [], args.stalled: []}
    for _ in range(args.pairs):
        for workload in (plain, stalled):
            m = run_step(OURS, args.rate, workload, cores, log_dir)
            steps[workload.stalled].append(m)
            print(_row(workload.stalled, m), flush=True)
    lines, verdict = _summary(steps, args.stalled)
    print("\n".join(lines))
    Path(args.out).write_text(json.dumps({
        "benchmark": "slow", "rate": args.rate, "stalled": args.stalled, "pairs": args.pairs,
        "others_load_before_run": load, "verdict": verdict,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "steps": [{"stalled_clients": n, **m.to_json()} for n, ms in steps.items() for m in ms],
    }, indent=2) + "\n")
    print(f"Steps written to {args.out}.")
    return 0


def _row(stalled: int, m: Measurement) -> str:
    verdict = judge(m)
    if m.failure:
        return f"  {stalled:>7}  {m.failure}"
    return (f"  {stalled:>7} {m.delivered_tps:>12,.0f} {m.on_time_share:>8.3%} "
            f"{m.p50_ms or 0:>7.1f} {m.p99_ms or 0:>7.1f} {m.max_ms or 0:>7.1f} {m.gaps:>5} "
            f"{m.disconnects:>7} {m.server_cpu or 0:>6.0%}  {verdict.reason or 'ok'}"
            + (f" ({m.stalled} stalled)" if stalled else ""))


def _summary(steps: dict[int, list[Measurement]], stalled: int) -> tuple[list[str], str]:
    """Median p50/p99 of each kind; the difference counts as noise when it is within the spread
    of p99 between steps of the same kind."""
    lines = []
    medians: dict[int, tuple[float, float]] = {}
    spread = 0.0
    for n, ms in steps.items():
        good = [m for m in ms if m.p99_ms is not None and m.p50_ms is not None]
        if not good:
            return [f"no measured step with {n} stalled clients"], "not measured"
        p99s = [m.p99_ms for m in good if m.p99_ms is not None]
        medians[n] = (statistics.median(m.p50_ms for m in good if m.p50_ms is not None),
                      statistics.median(p99s))
        spread = max(spread, max(p99s) - min(p99s))
        lines.append(f"{n:>3} stalled: median p50 {medians[n][0]:.1f} ms, p99 {medians[n][1]:.1f} "
                     f"ms (p99 {min(p99s):.1f}-{max(p99s):.1f} over {len(good)} steps)")
    all_good = all(judge(m).sustained for ms in steps.values() for m in ms)
    all_stalled = all(m.stalled == stalled for m in steps[stalled])
    difference = medians[stalled][1] - medians[0][1]
    within = difference <= spread
    verdict = ("within noise" if within else "costs the others") + (
        "" if all_good else "; some step lost, delayed or dropped ticks") + (
        "" if all_stalled else "; not every stalled client subscribed")
    lines.append(f"p99 with stalled clients minus without: {difference:+.1f} ms; spread between "
                 f"steps of one kind: {spread:.1f} ms: {verdict}")
    return lines, verdict


__all__ = ["add_arguments", "main"]
