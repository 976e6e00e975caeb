"""OHLCV bars aggregated from trades, per symbol and interval, in bounded memory."""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
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


# The forming bar is a list, mutated in place as trades arrive: [start, open, high, low, close,
# volume, trades, turnover]; turnover (sum of price x size) gives the VWAP without a division per
# trade. A closed bar is stored as those 8 values in a ring of doubles: 64 bytes, where a list of
# Python floats holds about 330 (at the defaults, 100 symbols' bars took 356 MB that way).
_START, _OPEN, _HIGH, _LOW, _CLOSE, _VOLUME, _TRADES, _TURNOVER = range(8)
_FIELDS = 8


class BarSeries:
    """The last ``keep`` bars of one interval; the newest one may still be forming."""

    __slots__ = ("_capacity", "_forming", "_interval", "_oldest", "_ring", "_size")

    def __init__(self, interval_ms: int, keep: int) -> None:
        self._interval = interval_ms
        self._capacity = max(0, keep - 1)  # closed bars kept beside the forming one
        self._ring = array("d")
        self._size = 0  # closed bars in the ring
        self._oldest = 0  # the ring slot of the oldest closed bar
        self._forming: list[float] | None = None

    def add(self, ts: float, price: float, size: float) -> None:
        # Literal indexes (see the layout above): this runs for every tick and interval.
        start = ts - ts % self._interval
        bar = self._forming
        if bar is not None and bar[0] == start:
            if price > bar[2]:
                bar[2] = price
            elif price < bar[3]:
                bar[3] = price
            bar[4] = price
            bar[5] += size
            bar[6] += 1
            bar[7] += price * size
        elif bar is None or start > bar[0]:
            if bar is not None:
                self._close(bar)
            self._forming = [start, price, price, price, price, size, 1, price * size]
        # A trade older than the newest bar (clock skew between feeds) is left out rather than
        # rewriting a bar that clients have already drawn.

    def merge(self, bar: TradeBar) -> None:
        """Fold a finished bar of a shorter interval into this series (minute bars into days)."""
        start = bar.start - bar.start % self._interval
        current = self._forming
        turnover = bar.vwap * bar.volume
        if current is not None and current[_START] == start:
            current[_HIGH] = max(current[_HIGH], bar.high)
            current[_LOW] = min(current[_LOW], bar.low)
            current[_CLOSE] = bar.close
            current[_VOLUME] += bar.volume
            current[_TRADES] += bar.trades
            current[_TURNOVER] += turnover
        elif current is None or start > current[_START]:
            if current is not None:
                self._close(current)
            self._forming = [start, bar.open, bar.high, bar.low, bar.close, bar.volume,
                             bar.trades, turnover]

    def _close(self, bar: list[float]) -> None:
        capacity = self._capacity
        if not capacity:
            return
        if self._size < capacity:
            self._ring.extend(bar)
            self._size += 1
        else:
            at = self._oldest * _FIELDS
            self._ring[at:at + _FIELDS] = array("d", bar)
            self._oldest = (self._oldest + 1) % capacity

    def __len__(self) -> int:
        return self._size + (self._forming is not None)

    def _newest_first(self) -> Iterator[list[float]]:
        if self._forming is not None:
            yield self._forming
        ring, capacity, oldest = self._ring, self._capacity, self._oldest
        for k in range(self._size - 1, -1, -1):
            at = (oldest + k) % capacity * _FIELDS
            yield ring[at:at + _FIELDS].tolist()

    def last(self, limit: int) -> list[Bar]:
        bars = list(islice(self._newest_first(), max(0, limit)))
        bars.reverse()
        return [Bar(start=int(b[0]), open=b[1], high=b[2], low=b[3], close=b[4],
                    volume=int(b[5])) for b in bars]

    def closed(self, after_start: float, before_ms: float) -> list[TradeBar]:
        """Bars that start after ``after_start`` and end by ``before_ms``, oldest first: the
        ones a clock now at ``before_ms`` has closed since it last looked at ``after_start``."""
        found = []
        for bar in self._newest_first():  # newest first: the wanted ones are at the end
            if bar[_START] <= after_start:
                break
            if bar[_START] + self._interval <= before_ms:
                found.append(_trade_bar(bar))
        found.reverse()
        return found

    def newest(self) -> TradeBar | None:
        return _trade_bar(self._forming) if self._forming is not None else None


def _trade_bar(bar: list[float]) -> TradeBar:
    volume = int(bar[_VOLUME])
    vwap = bar[_TURNOVER] / volume if volume else bar[_CLOSE]
    return TradeBar(start=int(bar[_START]), open=bar[_OPEN], high=bar[_HIGH], low=bar[_LOW],
                    close=bar[_CLOSE], volume=volume, trades=int(bar[_TRADES]), vwap=vwap)
