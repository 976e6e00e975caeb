"""What the server counts while it works: plain integers bumped on the hot paths.

A Prometheus client counter takes a lock on every increment; these are attribute additions, read
only when /metrics is scraped (ticker/metrics.py). Single-threaded (the event loop), so no lock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import orjson
from prometheus_client import Histogram

TRANSPORTS = ("ws", "sse", "poll", "replay", "alpaca")


class LatencySampler:
    """Delivery latency, observed for one batch of ticks in ``every``: plenty for a histogram,
    and it keeps the cost (decoding a tick's timestamp, the histogram's lock) off the hot path."""

    __slots__ = ("_countdown", "every", "histogram")

    def __init__(self, every: int = 16) -> None:
        self.every = every
        self._countdown = every
        self.histogram = Histogram(
            "ticker_delivery_latency_seconds",
            "From a tick's feed timestamp to its hand-over to a client's socket (sampled)",
            registry=None,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0))

    def due(self) -> bool:
        self._countdown -= 1
        if self._countdown:
            return False
        self._countdown = self.every
        return True

    def observe(self, encoded_tick: bytes) -> None:
        """``encoded_tick`` is a protocol v1 tick; its ``ts`` is Unix milliseconds."""
        ts = orjson.loads(encoded_tick)["ts"]
        self.histogram.observe(max(0.0, time.time() - ts / 1000.0))


class TransportStats:
    __slots__ = ("bytes", "conflated", "connections", "direct_frames", "frames", "latency",
                 "socket_frames", "ticks")

    def __init__(self, latency: LatencySampler | None = None) -> None:
        self.latency = latency or LatencySampler()
        self.connections = 0  # open now
        self.ticks = 0  # ticks handed to clients
        self.frames = 0  # WebSocket messages, SSE events, poll replies
        self.bytes = 0
        self.conflated = 0  # ticks skipped under max_rate (a later tick carried the news)
        self.direct_frames = 0  # frames written to the transport directly (transport/frames.py)
        self.socket_frames = 0  # of those, sent on the socket by ticker._frames itself


class Stats:
    def __init__(self) -> None:
        self.latency = LatencySampler()
        self.transports = {name: TransportStats(self.latency) for name in TRANSPORTS}
        self.errors: Counter[str] = Counter()  # protocol error replies, by code
        self.closes: Counter[int] = Counter()  # close frames the server sent, by code
        self.stalled = 0  # clients dropped because a send did not complete in time
        self.pings = 0  # keep-alive pings sent to quiet WebSockets (ticker/transport/keepalive.py)
        self.unanswered_pings = 0  # WebSockets failed (1011) for not answering one
        self.refused: Counter[str] = Counter()  # handshakes refused, by reason
        self.rejected_ticks = 0  # impossible ticks a feed produced, dropped (ticker/guard.py)
        self.unreadable_lines = 0  # recording lines a replay skipped (feeds/recording.py)
        self.upstream_skipped = 0  # upstream messages a live feed skipped (feeds/live/)
        self._lock = threading.Lock()

    def upstream_skip(self) -> None:
        """A live feed skipped an upstream message it could not use (called on the loop)."""
        self.upstream_skipped += 1

    def unreadable_line(self) -> None:
        """A replay skipped a line it could not read; called from the replay's reader thread."""
        with self._lock:
            self.unreadable_lines += 1

    def open_connections(self) -> int:
        return sum(transport.connections for transport in self.transports.values())
