"""OHLCV bars aggregated from trades, per symbol and interval, in bounded memory."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TypedDict

INTERVALS_MS = {"1s": 1_000, "5s": 5_000, "1m": 60_000}
MINUTE_MS = 60_000
DAY_MS = 86_400_000


class Bar(TypedDict):
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: int


@dataclass(frozen=True, slots=True)
class TradeBar:
    """A bar with its trade count and volume-weighted average price, as market-data APIs such as
    Alpaca's carry them (/api/bars keeps the plain :class:`Bar`)."""

    start: int
    open: float
    high: float
    low: float
    close: float
    volume: int
    trades: int
    vwap: float


# A bar is a list, mutated in place as trades arrive: [start, open, high, low, close, volume,
# trades, turnover]; turnover (sum of price x size) gives the VWAP without a division per trade.
_START, _OPEN, _HIGH, _LOW, _CLOSE, _VOLUME, _TRADES, _TURNOVER = range(8)


class BarSeries:
    """The last ``keep`` bars of one interval; the newest one may still be forming."""

    __slots__ = ("_bars", "_interval")

    def __init__(self, interval_ms: int, keep: int) -> None:
        self._interval = interval_ms
        self._bars: deque[list[float]] = deque(maxlen=keep)

    def add(self, ts: float, price: float, size: int) -> None:
        # Literal indexes (see the layout above): this runs for every tick and interval.
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
            bar[6] += 1
            bar[7] += price * size
        elif not bars or start > bars[-1][0]:
            bars.append([start, price, price, price, price, size, 1, price * size])
        # A trade older than the newest bar (clock skew between feeds) is left out rather than
        # rewriting a bar that clients have already drawn.

    def merge(self, bar: TradeBar) -> None:
        """Fold a finished bar of a shorter interval into this series (minute bars into days)."""
        start = bar.start - bar.start % self._interval
        bars = self._bars
        turnover = bar.vwap * bar.volume
        if bars and bars[-1][_START] == start:
            current = bars[-1]
            current[_HIGH] = max(current[_HIGH], bar.high)
            current[_LOW] = min(current[_LOW], bar.low)
            current[_CLOSE] = bar.close
            current[_VOLUME] += bar.volume
            current[_TRADES] += bar.trades
            current[_TURNOVER] += turnover
        elif not bars or start > bars[-1][_START]:
            bars.append([start, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trades,
                         turnover])

    def last(self, limit: int) -> list[Bar]:
        count = min(limit, len(self._bars))
        return [
            Bar(start=int(b[0]), open=b[1], high=b[2], low=b[3], close=b[4], volume=int(b[5]))
            for b in list(self._bars)[len(self._bars) - count:]
        ]

    def closed(self, after_start: float, before_ms: float) -> list[TradeBar]:
        """Bars that start after ``after_start`` and end by ``before_ms``, oldest first: the
        ones a clock now at ``before_ms`` has closed since it last looked at ``after_start``."""
        found = []
        for bar in reversed(self._bars):  # newest first: the wanted ones are at the end
            if bar[_START] <= after_start:
                break
            if bar[_START] + self._interval <= before_ms:
                found.append(_trade_bar(bar))
        found.reverse()
        return found

    def newest(self) -> TradeBar | None:
        return _trade_bar(self._bars[-1]) if self._bars else None


def _trade_bar(bar: list[float]) -> TradeBar:
    volume = int(bar[_VOLUME])
    vwap = bar[_TURNOVER] / volume if volume else bar[_CLOSE]
    return TradeBar(start=int(bar[_START]), open=bar[_OPEN], high=bar[_HIGH], low=bar[_LOW],
                    close=bar[_CLOSE], volume=volume, trades=int(bar[_TRADES]), vwap=vwap)
