"""OHLCV bars aggregated from trades, per symbol and interval, in bounded memory."""

from __future__ import annotations

from collections import deque
from typing import TypedDict

INTERVALS_MS = {"1s": 1_000, "5s": 5_000, "1m": 60_000}


class Bar(TypedDict):
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: int


class BarSeries:
    """The last ``keep`` bars of one interval; the newest one may still be forming."""

    __slots__ = ("_bars", "_interval")

    def __init__(self, interval_ms: int, keep: int) -> None:
        self._interval = interval_ms
        self._bars: deque[list[float]] = deque(maxlen=keep)  # [start, o, h, l, c, volume]

    def add(self, ts: float, price: float, size: int) -> None:
        start = ts - ts % self._interval
        bars = self._bars
        if bars and bars[-1][0] == start:
            bar = bars[-1]
            if price > bar[2]:
                bar[2] = price
            elif price < bar[3]:
                bar[3] = price
            bar[4] = price
            bar[5] += size
        elif not bars or start > bars[-1][0]:
            bars.append([start, price, price, price, price, size])
        # A trade older than the newest bar (clock skew between feeds) is left out rather than
        # rewriting a bar that clients have already drawn.

    def last(self, limit: int) -> list[Bar]:
        count = min(limit, len(self._bars))
        return [
            Bar(start=int(b[0]), open=b[1], high=b[2], low=b[3], close=b[4], volume=int(b[5]))
            for b in list(self._bars)[len(self._bars) - count:]
        ]
