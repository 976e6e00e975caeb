"""The picows load generator (``ticker bench fanout --latency picows``): all clients of one ramp
step, as picows connections in one process. The default is ``ticker.bench.kernel_loadgen``.

``ticker bench fanout`` runs it on its own core as
``python -m ticker.bench.loadgen WORKLOAD_JSON URL TICK_RATE SERVER_PID``; it prints one
Measurement as JSON on stdout and logs to stderr.

To stay far from being the bottleneck, most clients never parse: they count the ticks in a frame
with ``bytes.count(b'"seq"')`` (a C loop over the payload). Only the sampled clients decode with
orjson, to check seqs and to measure latency against the tick's ``ts``, taken as ``time.time()``
when the frame's callback ran: the generator's own event-loop delay is part of that latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass

import orjson
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from ticker.bench.cpu import machine_seconds, process_seconds, stolen_seconds
from ticker.bench.generator import Tracker, cpu_share, generator_main
from ticker.bench.measurement import Measurement
from ticker.bench.sample import SampleStream, Window, percentiles
from ticker.bench.workload import Workload, client_symbols, sample_indices, symbol_names

log = logging.getLogger("ticker.bench.loadgen")

TICKS_HEAD = b'{"type":"ticks"'  # how ours and the baselines start a "ticks" message
SEQ_KEY = b'"seq"'  # once per tick object; nothing else in a "ticks" message holds it
CONNECT_CONCURRENCY = 100  # handshakes in flight: well below uvicorn's listen backlog of 2048
GRACE_S = 0.3  # after the window, for ticks produced before its end to arrive on time
CLOSE_TIMEOUT_S = 2.0
STALLED_RCVBUF = 4096  # bytes: a stalled client's socket fills within a fraction of a second
_DATA = (WSMsgType.TEXT, WSMsgType.BINARY)


class BenchClient(WSListener):
    def __init__(self, request: bytes, sample: SampleStream | None, tracker: Tracker) -> None:
        super().__init__()
        self.request = request
        self.sample = sample
        self.tracker = tracker
        self.ticks = 0
        self.frames = 0
        self.subscribed = False
        self.closing = False  # we are closing it: not a drop
        self._parts: list[bytes] = []  # a fragmented message so far

    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, self.request)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind in _DATA or kind is WSMsgType.CONTINUATION:
            payload = frame.get_payload_as_bytes()
            if not frame.fin or self._parts:
                self._parts.append(payload)
                if not frame.fin:
                    return
                payload, self._parts = b"".join(self._parts), []
            if self.sample is None and payload.startswith(TICKS_HEAD):
                self.frames += 1
                self.ticks += payload.count(SEQ_KEY)
            else:
                self._parse(payload)
        elif kind is WSMsgType.CLOSE:
            code = frame.get_close_code()
            if not self.closing:
                self.tracker.close_codes[str(code.value)] += 1
            if not transport.is_close_frame_sent:
                transport.send_close(code)
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.closing:
            self.tracker.disconnects += 1

    def _parse(self, payload: bytes) -> None:
        message = orjson.loads(payload)
        kind = message.get("type")
        if kind == "ticks":
            ticks = message["ticks"]
            self.frames += 1
            self.ticks += len(ticks)
            if self.sample is not None:
                self.sample.ticks(ticks, time.time() * 1000.0)
        elif kind == "snapshot":
            if self.sample is not None:
                self.sample.snapshot(message["symbol"], message["ticks"])
        elif kind == "subscribed":
            if not self.subscribed:
                self.subscribed = True
                self.tracker.on_subscribed()
        elif kind == "error":
            self.tracker.errors += 1
            log.warning("server error: %s", message)


class StalledClient(WSListener):
    """Subscribes, then never reads again: its receive buffer (made small) fills, then the
    server's send buffer; the server must drop it by its slow-client policy without the
    measured clients noticing."""

    def __init__(self, request: bytes, tracker: Tracker) -> None:
        super().__init__()
        self.request = request
        self.tracker = tracker
        self.stalled = False

    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, self.request)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self.stalled or frame.msg_type is not WSMsgType.TEXT:
            return
        if orjson.loads(frame.get_payload_as_bytes()).get("type") == "subscribed":
            self.stalled = True
            self.tracker.stalled += 1
            underlying = transport.underlying_transport
            sock = underlying.get_extra_info("socket")
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
            underlying.pause_reading()


@dataclass(frozen=True, slots=True)
class Reading:
    """Counters and CPU times at one instant."""

    wall: float
    ticks: int
    sample_ticks: int
    frames: int
    own_cpu: float | None
    server_cpu: float | None
    busy_cpu: float | None
    newest_ts: float
    stolen_cpu: float | None


class Fleet:
    """All clients of one step, and what they share."""

    def __init__(self, workload: Workload) -> None:
        names = symbol_names(workload)
        self.sampled = sample_indices(workload)
        self.window = Window()
        self.tracker = Tracker(workload.clients)
        self.subscriptions = [client_symbols(i, workload, names) for i in range(workload.clients)]
        chosen = set(self.sampled)
        self.clients = [
            BenchClient(orjson.dumps({"op": "subscribe", "symbols": symbols}),
                        SampleStream(self.window) if i in chosen else None, self.tracker)
            for i, symbols in enumerate(self.subscriptions)
        ]
        everything = orjson.dumps({"op": "subscribe", "symbols": names})
        self.stalled = [StalledClient(everything, self.tracker) for _ in range(workload.stalled)]
        self.transports: list[WSTransport] = []
        self.stalled_transports: list[WSTransport] = []

    def read(self, server_pid: int) -> Reading:
        clients = self.clients
        return Reading(time.time(), sum(c.ticks for c in clients),
                       sum(c.ticks for c in clients if c.sample is not None),
                       sum(c.frames for c in clients),
                       process_seconds(os.getpid()), process_seconds(server_pid),
                       machine_seconds(), self.window.newest_ts, stolen_seconds())

    async def connect(self, url: str) -> None:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def connect(client: WSListener, into: list[WSTransport]) -> None:
            async with gate:
                try:
                    transport, _ = await ws_connect(lambda: client, url,
                                                    websocket_handshake_timeout=20.0)
                except Exception as error:  # refused, reset, handshake timeout: count, go on
                    log.warning("connect failed: %r", error)
                    return
                into.append(transport)

        await asyncio.gather(*(connect(client, self.transports) for client in self.clients),
                             *(connect(client, self.stalled_transports)
                               for client in self.stalled))

    async def close(self) -> None:
        """Close politely, so the server's clean-up is not part of the next step."""
        for transport in self.stalled_transports:
            transport.disconnect(graceful=False)  # it reads nothing, not even a close
        for client in self.clients:
            client.closing = True
        for transport in self.transports:
            if not transport.is_disconnected:
                transport.send_close(WSCloseCode.OK)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(t.wait_disconnected() for t in self.transports)),
                CLOSE_TIMEOUT_S)
        for transport in self.transports:
            transport.disconnect(graceful=False)


async def run_step(workload: Workload, url: str, tick_rate: float,
                   server_pid: int) -> Measurement:
    fleet = Fleet(workload)
    result = Measurement(tick_rate, workload.clients, 0, sample_clients=len(fleet.sampled))
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
    else:
        before, after = await measure(fleet, workload, server_pid)
        record(result, fleet, workload, before, after)
    await fleet.close()
    return result


async def measure(fleet: Fleet, workload: Workload, server_pid: int) -> tuple[Reading, Reading]:
    """Warm up, then read the counters at both ends of the window; wait for late arrivals."""
    t0 = time.time() + workload.warmup_s
    t1 = t0 + workload.measure_s
    fleet.window.open(t0 * 1000.0, t1 * 1000.0)
    # A full collection of this process's heap (1000 clients) can pause it for tens of ms: that
    # would be our latency, not the server's. Parsed messages hold no cycles: refcounting frees
    # them without the collector.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        await asyncio.sleep(t0 - time.time())
        before = fleet.read(server_pid)
        await asyncio.sleep(t1 - time.time())
        after = fleet.read(server_pid)
        await asyncio.sleep(GRACE_S)
    finally:
        gc.enable()
    return before, after


def record(result: Measurement, fleet: Fleet, workload: Workload, before: Reading,
           after: Reading) -> None:
    seconds = after.wall - before.wall
    window, tracker = fleet.window, fleet.tracker
    result.window_s = round(seconds, 4)
    result.delivered = after.ticks - before.ticks
    result.sample_delivered = after.sample_ticks - before.sample_ticks
    result.frames = after.frames - before.frames
    result.server_cpu = cpu_share(before.server_cpu, after.server_cpu, seconds)
    result.loadgen_cpu = cpu_share(before.own_cpu, after.own_cpu, seconds)
    busy = cpu_share(before.busy_cpu, after.busy_cpu, seconds)
    if busy is not None and result.server_cpu is not None and result.loadgen_cpu is not None:
        result.other_cpu = round(max(0.0, busy - result.server_cpu - result.loadgen_cpu), 4)
    result.stolen_cpu = cpu_share(before.stolen_cpu, after.stolen_cpu, seconds)
    result.freshest_lag_ms = round(window.t1 - after.newest_ts, 2)
    sampled_subscriptions = [fleet.subscriptions[i] for i in fleet.sampled]
    result.sample_owed = window.owed(sampled_subscriptions)
    result.sample_received = window.received
    result.sample_on_time = window.on_time
    result.owed, result.uncovered_symbols = owed_by_all(window, fleet.subscriptions,
                                                        sampled_subscriptions)
    result.owed_tps = round(result.owed / workload.measure_s, 1)
    if window.latencies:
        low, p50, p99, top = percentiles(window.latencies, (0, 50, 99, 100))
        result.min_ms, result.p50_ms = round(low, 3), round(p50, 3)
        result.p99_ms, result.max_ms = round(p99, 3), round(top, 3)
    streams = [c.sample for c in fleet.clients if c.sample is not None]
    result.gaps = sum(s.gaps for s in streams)
    result.duplicates = sum(s.duplicates for s in streams)
    result.disconnects = tracker.disconnects
    result.stalled = tracker.stalled
    result.close_codes = dict(tracker.close_codes)
    result.errors = tracker.errors


def owed_by_all(window: Window, subscriptions: list[list[str]],
                sampled: list[list[str]]) -> tuple[int, int]:
    """Ticks all clients were owed, and how many symbols no sampled client holds: only the
    sample sees seqs, so those are counted at the sampled symbols' mean."""
    covered = {symbol for symbols in sampled for symbol in symbols}
    mean = sum(window.produced(s) for s in covered) / len(covered)
    owed = sum(window.produced(s) if s in covered else mean
               for symbols in subscriptions for s in symbols)
    held = {symbol for symbols in subscriptions for symbol in symbols}
    return round(owed), len(held - covered)


def main(argv: list[str] | None = None) -> int:
    return generator_main("ticker.bench.loadgen", run_step, argv)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["BenchClient", "Tracker", "main", "owed_by_all", "run_step"]
