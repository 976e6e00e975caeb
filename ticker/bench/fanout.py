"""``ticker bench fanout``: how many ticks/s one server core delivers to many subscribers.

Workload (field notes, "Fan-out speed"): N symbols, the feed producing T ticks/s in total, C
WebSocket clients each subscribed to K symbols, so every tick goes to C*K/N clients. For each
server (ours, then the three baselines in bench/baselines/) the rate T ramps up; each step starts
the server afresh, pinned to one core, and runs the load generator (``ticker.bench.loadgen``) on the
other core: connect and subscribe, warm up, measure, judge (``ticker.bench.measurement``). A
server's ramp stops at its first step that is not sustained; its sustained capacity is the most
delivered ticks/s of its good steps. A server that fails its first step is tried at lower rates.

How ticks are counted, the same way for every server (``--latency kernel``, the default): every
client's socket carries the kernel's receive time of each read (``SO_TIMESTAMPNS``); the
generator only records reads during the window and decodes them afterwards
(``ticker.bench.kernel_loadgen``), so every tick of every client is checked. A tick is owed for
the window if the feed produced it (its ``ts``) inside the window: per symbol, the seq range the
clients saw with such a ``ts``, times that symbol's subscribers. Delivered: ticks whose frame
arrived in the window. Latency: the kernel arrival of the read that completed the tick's frame
minus ``ts`` (both CLOCK_REALTIME); "on time" is within 100 ms. ``--latency picows`` runs the
older generator (``ticker.bench.loadgen``): picows clients that count ticks, and a sample of them
that parses every tick and stamps it with ``time.time()`` when its callback ran, which adds the
generator's own event-loop delay to the latency.

This machine may be shared: each step reports the CPU other programs used meanwhile, waits a
little for them to quieten first, and a failed step they disturbed is run once more.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ticker.bench.cpu import others_load
from ticker.bench.measurement import KERNEL, NOISY_CPU, PICOWS, Measurement
from ticker.bench.report import Ramp, Step, latency_json, ramp_title, row, summary, to_json
from ticker.bench.servers import (
    KIND_NAMES,
    KINDS,
    Cores,
    ServerKind,
    free_port,
    missing_baselines,
    pinned,
    running,
    server_command,
)
from ticker.bench.workload import Workload, ladder

DESCRIPTION = (
    "Ramp the tick rate of our server, then of three baselines (bench/baselines/), each pinned "
    "to one core, with a load generator on the other; print delivered ticks/s, share on time, "
    "latency, gaps and CPU per step, each server's sustained capacity (>= 99.9 % of owed ticks "
    "within 100 ms, p99 < 100 ms) and our ratio to each; write every step as JSON.")
MIN_RATE = 10.0  # the lowest a ramp falls back to
MAX_RATE = 200_000.0  # ticks/s produced: 20 M delivered with the default workload
QUIET_WAIT_S = 10.0  # at most this long before a step for other programs to stop using the cores
QUICK_STEPS = 2
SKIP_BELOW_CPU = 0.5  # a step using less of the server's core than this lets the ramp skip ahead
LOADGENS = {KERNEL: "ticker.bench.kernel_loadgen", PICOWS: "ticker.bench.loadgen"}
DIGEST_S_PER_TICK = 5e-6  # the kernel generator decodes after the window: time allowed per tick


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help=f"short steps (0.5 s warm-up, 1 s measured), at most {QUICK_STEPS} "
                             "per server: a smoke test, not a measurement")
    parser.add_argument("--clients", type=int, default=1000, help="WebSocket clients (1000)")
    parser.add_argument("--symbols-per-client", type=int, default=10, metavar="K",
                        help="symbols each client subscribes to (10)")
    parser.add_argument("--symbols", type=int, default=100, metavar="N",
                        help="synthetic symbols S0001..SN the feed trades (100)")
    parser.add_argument("--latency", choices=tuple(LOADGENS), default=KERNEL,
                        help="kernel: every client's kernel receive timestamps (SO_TIMESTAMPNS), "
                             "decoded after the window (default); picows: the older generator, "
                             "a sample of picows clients stamping ticks when Python got them")
    parser.add_argument("--sample", type=int, default=50,
                        help="with --latency picows: clients that parse every message, for "
                             "latency and gaps (50)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulated market (1)")
    parser.add_argument("--warmup", type=float, help="seconds before each measurement (2)")
    parser.add_argument("--measure", type=float, help="seconds measured per step (5)")
    parser.add_argument("--rates", type=_rates, metavar="T,T,...",
                        help="our ramp, in ticks/s produced (default 1000, 1500, 2000, 3000, "
                             "4000, 5000, 7000, 10000, ...)")
    parser.add_argument("--baseline-rates", type=_rates, metavar="T,T,...",
                        help="the baselines' ramp (default 50, 70, 100, 150, 200, 300, ...)")
    parser.add_argument("--only", type=_kinds, action="append", metavar="SERVER[,SERVER]",
                        help=f"run only these servers, of {', '.join(KIND_NAMES)} (default: ours "
                             "and the three baselines)")
    parser.add_argument("--out", default="bench-fanout.json", metavar="PATH",
                        help="where to write every step as JSON (bench-fanout.json)")
    parser.add_argument("--log-dir", metavar="DIR",
                        help="server and load generator logs (default: a new temp directory)")


def _rates(text: str) -> list[float]:
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected rates like 1000,2000, got {text!r}") from None
    if not rates or any(rate <= 0 for rate in rates):
        raise argparse.ArgumentTypeError(f"rates must be > 0, got {text!r}")
    return rates


def _kinds(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in KIND_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown server {', '.join(unknown) or text!r}; choose from {', '.join(KIND_NAMES)}")
    return names


def main(args: argparse.Namespace) -> int:
    try:
        workload = _workload(args)
    except ValueError as error:
        print(f"ticker bench fanout: {error}", file=sys.stderr)
        return 2
    kinds = _selected(args)
    if not kinds:
        return 2
    log_dir = Path(args.log_dir) if args.log_dir else Path(tempfile.mkdtemp(prefix="ticker-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    cores = Cores.pick()
    load = others_load(1.0)
    cores.pin_self()
    _say(f"fan-out benchmark: logs in {log_dir}; " + (
        f"server on core {cores.server}, load generator on core {cores.loadgen}"
        if cores.server is not None else "NOT pinned (fewer than two cores, or no taskset)"))
    if load is not None and load > NOISY_CPU:
        _say(f"warning: other programs are using {load:.0%} of a core; expect noisy results")
    started, clock = datetime.now(UTC), time.monotonic()
    # A smoke test does not wait for a quiet machine; a measurement does.
    patience = 0.0 if args.quick else QUIET_WAIT_S

    def step(kind: ServerKind, rate: float) -> Measurement:
        return run_step(kind, rate, workload, cores, log_dir, patience, args.latency)

    ramps = []
    for kind in kinds:
        _say("\n" + ramp_title(kind, workload, args.latency))
        rates, below = _ramp_rates(kind, args)
        ramps.append(run_ramp(kind, rates, step, below))
    seconds = time.monotonic() - clock
    _say("\n" + summary(ramps, workload, seconds))
    extra = {"started": started.isoformat(timespec="seconds"), "duration_s": round(seconds, 1),
             "machine": {"cpus": cores.count, "server_core": cores.server,
                         "loadgen_core": cores.loadgen, "python": platform.python_version()},
             "others_load_before_run": load, "logs": str(log_dir),
             "latency": latency_json(args.latency)}
    Path(args.out).write_text(json.dumps(to_json(ramps, workload, extra), indent=2) + "\n")
    _say(f"Steps written to {args.out}.")
    return 0


def _workload(args: argparse.Namespace) -> Workload:
    quick = args.quick
    warmup = args.warmup if args.warmup is not None else (0.5 if quick else 2.0)
    measure = args.measure if args.measure is not None else (1.0 if quick else 5.0)
    return Workload(symbols=args.symbols, clients=args.clients,
                    symbols_per_client=args.symbols_per_client, sample=args.sample,
                    seed=args.seed, warmup_s=warmup, measure_s=measure)


def _selected(args: argparse.Namespace) -> list[ServerKind]:
    if args.only:
        wanted = {name for names in args.only for name in names}
        kinds = [kind for kind in KINDS if kind.name in wanted]
    else:
        kinds = [kind for kind in KINDS if kind.by_default]
    missing = missing_baselines()
    if missing and any(kind.script in missing for kind in kinds):
        print(f"ticker bench fanout: baseline scripts not found ({', '.join(missing)}); the "
              "baselines run from a source checkout only", file=sys.stderr)
        kinds = [kind for kind in kinds if kind.script not in missing]
    return kinds


def _ramp_rates(kind: ServerKind, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """The rates up, and those to fall back on (highest first) if the first one fails."""
    given = args.rates if kind.script is None else args.baseline_rates
    rates: list[float] = given or ladder(kind.first_rate, MAX_RATE)
    if args.quick:
        return rates[:QUICK_STEPS], []
    below = [rate for rate in ladder(MIN_RATE, rates[0]) if rate < rates[0]]
    return rates, below[::-1]


def run_ramp(kind: ServerKind, rates: list[float],
             step: Callable[[ServerKind, float], Measurement],
             below: list[float] | None = None) -> Ramp:
    """Up the rates until the first step that is not sustained (or not trustworthy).

    While the server uses under half its core, the ramp skips ahead to at least twice the rate;
    after a failure it goes back to try the rates it skipped. If even the first rate fails, it
    goes down through ``below`` (highest first) until a step holds, so that a slow server still
    gets a capacity rather than "none".
    """
    ramp = Ramp(kind)
    index, good = 0, -1
    while index < len(rates):
        if not _attempt(ramp, kind, rates[index], step):
            for skipped in rates[good + 1:index] if good >= 0 else []:
                if not _attempt(ramp, kind, skipped, step):
                    break
            break
        good = index
        index = _next(rates, index, ramp.steps[-1].measurement)
    if ramp.best is None:
        for rate in below or []:
            if _attempt(ramp, kind, rate, step):
                break
    return ramp


def _next(rates: list[float], index: int, last: Measurement) -> int:
    """The next rate to try: the next one, or the first at twice this one if far from the limit."""
    if last.server_cpu is None or last.server_cpu >= SKIP_BELOW_CPU:
        return index + 1
    target = 2 * rates[index]
    return next((i for i in range(index + 1, len(rates)) if rates[i] >= target), index + 1)


def _attempt(ramp: Ramp, kind: ServerKind, rate: float,
             step: Callable[[ServerKind, float], Measurement]) -> bool:
    """One step at ``rate``, once more if other programs disturbed it; True if it held."""
    result = Step.of(step(kind, rate))
    ramp.steps.append(result)
    _say(row(result))
    if not result.verdict.sustained and result.measurement.noisy:
        # This machine may be shared: a step other programs disturbed gets one more try.
        m = result.measurement
        _say(f"  {'':>10} other programs used {_share(m.other_cpu)} of a core and the "
             f"hypervisor took {_share(m.stolen_cpu)} (steal) during that step: once more")
        result = Step.of(step(kind, rate))
        ramp.steps.append(result)
        _say(row(result))
    return result.verdict.sustained


def run_step(kind: ServerKind, rate: float, workload: Workload, cores: Cores,
             log_dir: Path, patience: float = QUIET_WAIT_S, latency: str = KERNEL,
             extra_env: dict[str, str] | None = None) -> Measurement:
    name = f"{kind.name}-{rate:g}"
    if patience > 0:
        wait_for_quiet(patience)
    port = free_port()
    command = server_command(kind, port, workload.symbols, rate, workload.seed)
    try:
        with running(command, cores.server, log_dir / f"{name}-server.log", port,
                     {**kind.env(), **(extra_env or {})}) as server:
            return run_loadgen(workload, port, rate, server.pid, cores.loadgen,
                               log_dir / f"{name}-loadgen.log", latency)
    except RuntimeError as error:
        return Measurement(rate, workload.clients, 0, failure=str(error))


def run_loadgen(workload: Workload, port: int, rate: float, server_pid: int, core: int | None,
                log_path: Path, latency: str = KERNEL) -> Measurement:
    command = [sys.executable, "-m", LOADGENS[latency], json.dumps(workload.to_json()),
               f"ws://127.0.0.1:{port}/ws", f"{rate:g}", str(server_pid)]
    timeout = 60.0 + workload.clients / 20 + workload.warmup_s + workload.measure_s
    if latency == KERNEL:  # it decodes everything it recorded after the window
        owed_per_s = rate * workload.clients * workload.symbols_per_client / workload.symbols
        timeout += owed_per_s * (workload.measure_s + 1.0) * DIGEST_S_PER_TICK
    with log_path.open("wb") as log:
        try:
            done = subprocess.run(pinned(command, core), stdout=subprocess.PIPE, stderr=log,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return Measurement(rate, workload.clients, 0,
                               failure=f"load generator timed out (log: {log_path})")
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        return Measurement(rate, workload.clients, 0,
                           failure=f"load generator exited with {done.returncode} "
                                   f"(log: {log_path})")
    return Measurement.from_json(json.loads(lines[-1]))


def wait_for_quiet(limit_s: float) -> None:
    """This machine may be shared: start a step when other programs leave the cores alone."""
    deadline = time.monotonic() + limit_s
    load = others_load(0.5)
    if load is None or load <= NOISY_CPU:
        return
    _say(f"  {'':>10} other programs are using {load:.0%} of a core: waiting up to "
         f"{limit_s:.0f} s")
    while load is not None and load > NOISY_CPU and time.monotonic() < deadline:
        load = others_load(1.0)


def _say(text: str) -> None:
    print(text, flush=True)


def _share(cores: float | None) -> str:
    return "?" if cores is None else f"{cores:.0%}"


__all__ = ["add_arguments", "main", "run_ramp", "run_step"]
