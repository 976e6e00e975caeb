"""The CSV importer's column logic: which layout a header means, and one row's ticks."""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from itertools import pairwise

SYMBOL_RE = re.compile(r"[A-Z0-9][A-Z0-9.\-]{0,15}")  # what protocol v1 lets a client subscribe
MISSING = frozenset({"", "na", "n/a", "#n/a", "nan", "null", "none", "-"})
DEFAULT_BAR_MS = 60_000.0  # a lone bar's length, when no neighbour tells

# Synonyms, most specific first. Names are compared lower-cased, with runs of spaces and
# underscores as one space and <> stripped ("Adj_Close" -> "adj close", "<DATE>" -> "date").
TIMESTAMP = ("timestamp", "datetime", "date time", "time stamp", "ts")
DATE = ("date", "day", "trade date")
CLOCK = ("time", "time of day")
SYMBOL = ("symbol", "ticker", "sym", "instrument")
PRICE = ("price", "trade price", "last price", "last", "close", "close/last", "adj close",
         "adjusted close")
SIZE = ("size", "volume", "vol", "qty", "quantity", "shares")
OPEN, HIGH, LOW = ("open",), ("high",), ("low",)
CLOSE = ("close", "close/last", "last", "adj close", "adjusted close")

LAYOUT_HINT = ("expected a time column (date, time, timestamp, datetime) and then either "
               "open/high/low/close[/volume], a symbol and a price, a price alone, or one "
               "column per symbol")


@dataclass(slots=True)
class RawTick:
    """A trade before sorting and sequencing; a bar (``ohlc``) until bars_to_ticks expands it."""

    symbol: str
    ts: float
    price: float
    size: int
    ohlc: tuple[float, float, float, float] | None = None


@dataclass(slots=True)
class Columns:
    names: list[str]
    layout: str
    time: int
    clock: int | None = None
    symbol: int | None = None
    price: int | None = None
    size: int | None = None
    ohlc: tuple[int, int, int, int] | None = None
    wide: list[tuple[int, str]] = field(default_factory=list)
    fixed_symbol: str | None = None

    @property
    def widest(self) -> int:
        """The highest index the time text needs."""
        return max(self.time, self.clock if self.clock is not None else -1)

    def time_text(self, row: list[str]) -> str:
        return row[self.time] if self.clock is None else f"{row[self.time]} {row[self.clock]}"

    def row_ticks(self, row: list[str], ts: float, line: int, delimiter: str) -> list[RawTick]:
        """The row's ticks ([] for a row without any price); ValueError says what is wrong."""
        if self.layout == "wide":
            return [RawTick(symbol, ts, _price(row[i], symbol, delimiter), 0)
                    for i, symbol in self.wide if row[i].lower() not in MISSING]
        symbol = self.fixed_symbol or _symbol(row[self.symbol or 0])
        size = 0
        if self.size is not None and row[self.size].lower() not in MISSING:
            size = _size(row[self.size], self.names[self.size], delimiter)
        if self.ohlc is not None:
            cells = [row[i] for i in self.ohlc]
            if all(cell.lower() in MISSING for cell in cells):
                return []
            o, h, lo, c = (_price(cell, name, delimiter)
                           for cell, name in zip(cells, ("open", "high", "low", "close"),
                                                 strict=True))
            if not lo <= min(o, c) or not h >= max(o, c):
                raise ValueError(f"inconsistent bar: open {o}, high {h}, low {lo}, close {c} "
                                 "(need low <= open, close <= high)")
            return [RawTick(symbol, ts, c, size, (o, h, lo, c))]
        cell = row[self.price or 0]
        if cell.lower() in MISSING:
            return []
        return [RawTick(symbol, ts, _price(cell, self.names[self.price or 0], delimiter), size)]


def normalize(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name.strip().strip("<>").lower()).strip()


def find_columns(header: list[str]) -> Columns:
    """The layout and column roles of a header row; ValueError if it fits no layout."""
    names = [normalize(name) for name in header]
    duplicates = sorted({n for n in names if names.count(n) > 1 and n})
    if duplicates:
        raise ValueError(f"duplicate column names: {', '.join(duplicates)}")

    def find(synonyms: tuple[str, ...]) -> int | None:
        return next((names.index(s) for s in synonyms if s in names), None)

    time, clock = find(TIMESTAMP), None
    if time is None:
        time, clock = find(DATE), find(CLOCK)
        if time is None:
            time, clock = clock, None
    if time is None:
        raise ValueError(f"no time column among {', '.join(header)}; {LAYOUT_HINT}")
    symbol, size = find(SYMBOL), find(SIZE)
    o, h, lo, c = find(OPEN), find(HIGH), find(LOW), find(CLOSE)
    if o is not None and h is not None and lo is not None and c is not None:
        return Columns(names, "ohlcv" if size is not None else "ohlc", time, clock, symbol,
                       size=size, ohlc=(o, h, lo, c))
    price = find(PRICE)
    if symbol is not None and price is None:
        raise ValueError(f"a symbol column but no price column (price, last, close) among "
                         f"{', '.join(header)}")
    if price is not None:
        return Columns(names, "long", time, clock, symbol, price, size)
    used = {time, clock}
    wide = [(i, _symbol(header[i], f"column {header[i]!r} is not a symbol (in a wide file every "
                        "column after the time is one symbol's prices)"))
            for i in range(len(header)) if i not in used]
    if not wide:
        raise ValueError(f"only a time column; {LAYOUT_HINT}")
    return Columns(names, "wide", time, clock, wide=wide)


def symbol_from_name(name: str, explicit: bool) -> str:
    """The given symbol, or the file name's stem up to its first '_' or space: ``aapl.csv`` and
    ``AAPL_daily.csv`` are AAPL, ``BRK-B.csv`` is BRK-B."""
    if explicit:
        return _symbol(name)
    stem = re.sub(r"(\.csv|\.txt|\.gz)+$", "", name, flags=re.IGNORECASE)
    stem = re.split(r"[_ ]", stem, maxsplit=1)[0]
    return _symbol(stem, f"cannot take a symbol from the file name {name!r}: give one "
                         "(--symbol) or add a symbol column")


def _symbol(text: str, problem: str | None = None) -> str:
    symbol = text.strip().upper()
    if not SYMBOL_RE.fullmatch(symbol):
        raise ValueError(problem or f"{text!r} is not a symbol (1-16 letters, digits, '.', '-')")
    return symbol


_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")


def number(text: str, what: str, delimiter: str) -> float:
    """A finite number; accepts a leading '$', thousands commas (1,234.5) and, in files
    delimited by ';', a decimal comma (1234,5)."""
    cleaned = text.strip().removeprefix("$")
    if _THOUSANDS.fullmatch(cleaned):
        cleaned = cleaned.replace(",", "")
    elif delimiter == ";" and _DECIMAL_COMMA.fullmatch(cleaned):
        cleaned = cleaned.replace(",", ".")
    try:
        value = float(cleaned)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} {text!r} is not a finite number")
    return value


def _price(text: str, what: str, delimiter: str) -> float:
    value = number(text, what, delimiter)
    if not value > 0:
        raise ValueError(f"{what} must be > 0, got {text!r}")
    return value


def _size(text: str, what: str, delimiter: str) -> int:
    value = number(text, what, delimiter)
    if value < 0:
        raise ValueError(f"{what} must be >= 0, got {text!r}")
    return round(value)


def bars_to_ticks(bars: list[RawTick]) -> list[RawTick]:
    """Four ticks per bar: open, the extreme nearer the open, the other extreme, close; at 0, 1/4,
    2/4 and 3/4 of the bar. A bar lasts the symbol's median bar spacing, cut short where the next
    bar starts sooner. The volume is split over the four as evenly as integers allow."""
    by_symbol: dict[str, list[RawTick]] = {}
    for bar in bars:
        by_symbol.setdefault(bar.symbol, []).append(bar)
    ticks: list[RawTick] = []
    for series in by_symbol.values():
        series.sort(key=lambda bar: bar.ts)
        gaps = [b.ts - a.ts for a, b in pairwise(series) if b.ts > a.ts]
        spacing = statistics.median(gaps) if gaps else DEFAULT_BAR_MS
        for k, bar in enumerate(series):
            o, h, lo, c = bar.ohlc or (bar.price,) * 4
            length = spacing if k + 1 == len(series) else min(spacing, series[k + 1].ts - bar.ts)
            path = (o, h, lo, c) if h - o <= o - lo else (o, lo, h, c)
            base, extra = divmod(bar.size, 4)
            for j, price in enumerate(path):
                ticks.append(RawTick(bar.symbol, bar.ts + length * j / 4, price,
                                     base + (1 if j < extra else 0)))
    return ticks
