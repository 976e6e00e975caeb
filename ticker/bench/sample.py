"""What the sampled clients check on every tick: seq continuity, and latency within the window.

The load generator runs this for a few dozen clients only, so it may parse; it still runs once per
tick, hence the flat code and the local variables.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

ON_TIME_MS = 100.0  # "on time" = received within this long after the feed produced the tick


class Window:
    """The measured window [t0, t1) in Unix ms of tick ``ts``, shared by all sampled clients.

    A tick belongs to the window by the time the feed produced it, not by when it arrived: a
    server that falls behind then owes the ticks it has not sent yet.
    """

    __slots__ = ("first_seq", "last_seq", "latencies", "newest_ts", "on_time", "received",
                 "t0", "t1")

    def __init__(self) -> None:
        self.t0 = math.inf  # nothing is in the window until it opens
        self.t1 = math.inf
        self.latencies: array[float] = array("d")
        self.on_time = 0
        self.received = 0
        # Per symbol, the seqs of the first and last in-window ticks any sampled client received:
        # their span is what the feed produced for that symbol in the window.
        self.first_seq: dict[str, int] = {}
        self.last_seq: dict[str, int] = {}
        self.newest_ts = 0.0

    def open(self, t0: float, t1: float) -> None:
        self.t0, self.t1 = t0, t1

    def add(self, symbol: str, seq: int, latency: float) -> None:
        self.latencies.append(latency)
        self.received += 1
        if latency <= ON_TIME_MS:
            self.on_time += 1
        first = self.first_seq.get(symbol)
        if first is None or seq < first:
            self.first_seq[symbol] = seq
        if seq > self.last_seq.get(symbol, 0):
            self.last_seq[symbol] = seq

    def produced(self, symbol: str) -> int:
        """Ticks of ``symbol`` the feed produced in the window, as far as the sample saw them."""
        first = self.first_seq.get(symbol)
        return 0 if first is None else self.last_seq[symbol] - first + 1

    def owed(self, subscriptions: Iterable[Sequence[str]]) -> int:
        return sum(self.produced(symbol) for symbols in subscriptions for symbol in symbols)


class SampleStream:
    """One sampled client's view: per-symbol seqs must rise by exactly 1 (snapshot, then live)."""

    __slots__ = ("duplicates", "gaps", "last", "window")

    def __init__(self, window: Window) -> None:
        self.window = window
        self.last: dict[str, int] = {}
        self.gaps = 0  # seqs skipped
        self.duplicates = 0  # seqs received again or out of order

    def snapshot(self, symbol: str, ticks: Sequence[dict[str, Any]]) -> None:
        if ticks:
            self.last[symbol] = ticks[-1]["seq"]

    def ticks(self, ticks: Sequence[dict[str, Any]], now_ms: float) -> None:
        window = self.window
        t0, t1 = window.t0, window.t1
        last = self.last
        for tick in ticks:
            symbol = tick["symbol"]
            seq = tick["seq"]
            previous = last.get(symbol)
            if previous is not None:
                if seq <= previous:
                    self.duplicates += 1
                    continue
                if seq != previous + 1:
                    self.gaps += seq - previous - 1
            last[symbol] = seq
            ts = tick["ts"]
            if ts > window.newest_ts:
                window.newest_ts = ts
            if t0 <= ts < t1:
                window.add(symbol, seq, now_ms - ts)


def percentiles(values: Sequence[float], points: Sequence[float]) -> list[float]:
    """Nearest-rank percentiles (0-100) of ``values``; NaN for each point if there are none."""
    if not values:
        return [math.nan for _ in points]
    ordered = sorted(values)
    last = len(ordered) - 1
    return [ordered[min(last, max(0, math.ceil(p / 100.0 * len(ordered)) - 1))] for p in points]


__all__ = ["ON_TIME_MS", "SampleStream", "Window", "percentiles"]
