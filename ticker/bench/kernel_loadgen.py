"""The load generator with kernel receive timestamps: every client measured, none sampled.

``ticker bench fanout`` runs it on its own core as
``python -m ticker.bench.kernel_loadgen WORKLOAD_JSON URL TICK_RATE SERVER_PID``; it prints one
Measurement as JSON on stdout and logs to stderr (the same contract as the picows generator,
``ticker.bench.loadgen``).

Every client is a plain non-blocking TCP socket with ``SO_TIMESTAMPNS`` set, watched by one event
loop (``add_reader``), speaking WebSocket through ``ticker.bench.wsframes``. Three phases:

- live, until shortly before the window: the handshake, the subscription, pings answered; frames
  are cut as they come and only control and non-tick messages are looked at;
- recorded, from ``LEAD_S`` before the window to ``GRACE_S`` after it: each readable socket gets
  one ``recvmsg``, kept as it came (bytes, ancillary data with the kernel's receive time, and the
  time the read returned), nothing decoded, so the generator's own delay is not the latency and
  its CPU stays low while the server is measured;
- after the window, with every connection closed: ``ticker.bench.arrivals`` cuts the frames out of
  the reads, stamps each with the kernel arrival of the read that completed it, decodes the ticks
  and checks seqs and latency for every client.

The seq checks start afresh with the recording, ``LEAD_S`` before the window: ticks of the
warm-up before that are not checked (the window's are, all of them). Pings that come while
recorded go unanswered: a server drops the clients if the recording outlasts its ping timeout
(ours and uvicorn's default: 20 s), so a measured window should stay well under that.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
import time
from array import array
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from ticker.bench.cpu import machine_seconds, process_seconds, stolen_seconds
from ticker.bench.generator import Tracker, cpu_share, generator_main
from ticker.bench.kernel_client import Client
from ticker.bench.measurement import KERNEL, Measurement
from ticker.bench.recorder import Recording
from ticker.bench.sample import Window, percentiles
from ticker.bench.workload import Workload, client_symbols, symbol_names
from ticker.bench.wsframes import FrameError

log = logging.getLogger("ticker.bench.kernel_loadgen")

CONNECT_CONCURRENCY = 100  # handshakes in flight: well below uvicorn's listen backlog of 2048
LEAD_S = 0.5  # recording starts this long before the window: the live phase's backlog drains
GRACE_S = 0.3  # after the window, for ticks produced before its end to arrive on time
CLOSE_TIMEOUT_S = 2.0
PING_TIMEOUT_S = 20.0  # uvicorn's default, and ``server.ws_ping_interval`` in config.toml


@dataclass(frozen=True, slots=True)
class Reading:
    """CPU times at one instant."""

    wall: float
    own_cpu: float | None
    server_cpu: float | None
    busy_cpu: float | None
    stolen_cpu: float | None

    @classmethod
    def now(cls, server_pid: int) -> Reading:
        return cls(time.time(), process_seconds(os.getpid()), process_seconds(server_pid),
                   machine_seconds(), stolen_seconds())


class Fleet:
    """All clients of one step."""

    def __init__(self, workload: Workload) -> None:
        names = symbol_names(workload)
        self.tracker = Tracker(workload.clients)
        self.subscriptions = [client_symbols(i, workload, names) for i in range(workload.clients)]
        self.clients = [Client(orjson.dumps({"op": "subscribe", "symbols": symbols}),
                               self.tracker) for symbols in self.subscriptions]
        everything = orjson.dumps({"op": "subscribe", "symbols": names})
        self.stalled = [Client(everything, self.tracker, stalls=True)
                        for _ in range(workload.stalled)]

    async def connect(self, url: str) -> None:
        parts = urlsplit(url)
        host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def connect(client: Client) -> None:
            async with gate:
                try:
                    await client.connect(host, port, path)
                except (OSError, TimeoutError, FrameError) as error:
                    log.warning("connect failed: %r", error)
                    client.closing = True  # never counted as a drop: it never subscribed
                    client.abort()

        await asyncio.gather(*(connect(client) for client in self.clients + self.stalled))

    async def close(self) -> None:
        """Close politely, so that the server's clean-up is not part of the next step."""
        everyone = self.clients + self.stalled
        for client in everyone:
            client.close()
        pending = [client.done for client in everyone if client.is_open]
        if pending:
            await asyncio.wait(pending, timeout=CLOSE_TIMEOUT_S)
        for client in everyone:
            client.abort()

    def digest(self, window: Window, t0_ns: int, t1_ns: int) -> None:
        for client in self.clients:
            client.log.digest(window, t0_ns, t1_ns)
            if client.log.close_code is not None:  # a close that came while recorded
                self.tracker.close_codes[str(client.log.close_code)] += 1


@dataclass(slots=True)
class Outcome:
    """A step's measurement, with the fleet and window it came from (for tests)."""

    measurement: Measurement
    fleet: Fleet
    window: Window


async def measure_fleet(workload: Workload, url: str, tick_rate: float,
                        server_pid: int) -> Outcome:
    fleet = Fleet(workload)
    window = Window()
    result = Measurement(tick_rate, workload.clients, 0, sample_clients=workload.clients,
                         latency_source=KERNEL)
    started = time.monotonic()
    await fleet.connect(url)
    # A loaded server accepts slowly; give it time in proportion to the clients, then go on
    # with whoever made it, and say so.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(fleet.tracker.all_subscribed.wait(), 10.0 + workload.clients / 50)
    result.subscribed = fleet.tracker.subscribed
    log.info("%d of %d clients subscribed in %.1f s", result.subscribed, workload.clients,
             time.monotonic() - started)
    if result.subscribed < workload.clients:
        result.failure = f"only {result.subscribed} of {workload.clients} clients subscribed"
        await fleet.close()
        return Outcome(result, fleet, window)
    if LEAD_S + workload.measure_s + GRACE_S > PING_TIMEOUT_S / 2:
        log.warning("recording for %.1f s: pings go unanswered meanwhile, and a server drops "
                    "clients after its ping timeout (ours: %.0f s)",
                    LEAD_S + workload.measure_s + GRACE_S, PING_TIMEOUT_S)
    t0 = time.time() + workload.warmup_s
    t1 = t0 + workload.measure_s
    window.open(t0 * 1000.0, t1 * 1000.0)
    # A full collection of this process's heap can pause it for tens of ms, and the recorded
    # reads and decoded ticks hold no cycles: refcounting frees them without the collector.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        await asyncio.sleep(max(0.0, t0 - LEAD_S - time.time()))
        recording = Recording(fleet.clients)
        recording.start()
        await recording.until(t0)
        before = Reading.now(server_pid)
        await recording.until(t1)
        after = Reading.now(server_pid)
        await recording.until(t1 + GRACE_S)
        recording.stop()
        await fleet.close()
        clock = time.perf_counter()
        fleet.digest(window, round(t0 * 1e9), round(t1 * 1e9))
        result.digest_s = round(time.perf_counter() - clock, 3)
    finally:
        gc.enable()
        gc.unfreeze()
    record(result, fleet, window, workload, before, after)
    log.info("recorded reads cut and decoded in %.1f s after the window; %d ticks arrived in it",
             result.digest_s, result.delivered)
    return Outcome(result, fleet, window)


async def run_step(workload: Workload, url: str, tick_rate: float,
                   server_pid: int) -> Measurement:
    return (await measure_fleet(workload, url, tick_rate, server_pid)).measurement


def record(result: Measurement, fleet: Fleet, window: Window, workload: Workload,
           before: Reading, after: Reading) -> None:
    seconds = after.wall - before.wall
    logs = [client.log for client in fleet.clients]
    tracker = fleet.tracker
    result.window_s = workload.measure_s  # exact: arrivals are counted by their kernel stamps
    result.delivered = result.sample_delivered = sum(entry.delivered for entry in logs)
    result.frames = sum(entry.frames for entry in logs)
    result.reads = sum(entry.reads for entry in logs)
    result.untimestamped_reads = sum(entry.untimestamped for entry in logs)
    result.server_cpu = cpu_share(before.server_cpu, after.server_cpu, seconds)
    result.loadgen_cpu = cpu_share(before.own_cpu, after.own_cpu, seconds)
    busy = cpu_share(before.busy_cpu, after.busy_cpu, seconds)
    if busy is not None and result.server_cpu is not None and result.loadgen_cpu is not None:
        result.other_cpu = round(max(0.0, busy - result.server_cpu - result.loadgen_cpu), 4)
    result.stolen_cpu = cpu_share(before.stolen_cpu, after.stolen_cpu, seconds)
    result.freshest_lag_ms = round(window.t1 - window.newest_ts, 2)
    result.owed = result.sample_owed = window.owed(fleet.subscriptions)
    result.owed_tps = round(result.owed / workload.measure_s, 1)
    result.sample_received = window.received
    result.sample_on_time = window.on_time
    if window.latencies:
        low, p50, p99, top = percentiles(window.latencies, (0, 50, 99, 100))
        result.min_ms, result.p50_ms = round(low, 3), round(p50, 3)
        result.p99_ms, result.max_ms = round(p99, 3), round(top, 3)
    lows, lags = array("d"), array("d")
    for entry in logs:
        lows.extend(entry.low_latencies)
        lags.extend(entry.read_lags)
    if lows:
        p50, p99 = percentiles(lows, (50, 99))
        result.p50_low_ms, result.p99_low_ms = round(p50, 3), round(p99, 3)
    result.early_frames = sum(entry.early_frames for entry in logs)
    if lags:
        p50, p99, top = percentiles(lags, (50, 99, 100))
        result.read_lag_p50_ms, result.read_lag_p99_ms = round(p50, 3), round(p99, 3)
        result.read_lag_max_ms = round(top, 3)
    streams = [entry.stream for entry in logs if entry.stream is not None]
    result.gaps = sum(stream.gaps for stream in streams)
    result.duplicates = sum(stream.duplicates for stream in streams)
    result.disconnects = tracker.disconnects
    result.stalled = tracker.stalled
    result.close_codes = dict(tracker.close_codes)
    result.errors = tracker.errors + sum(entry.errors for entry in logs)


def main(argv: list[str] | None = None) -> int:
    return generator_main("ticker.bench.kernel_loadgen", run_step, argv)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Fleet", "Outcome", "main", "measure_fleet", "record", "run_step"]
