"""The types every layer shares: a trade tick and a symbol's description. Stdlib only."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tick:
    """One trade, in wire order: orjson serialises it field by field into protocol v1's tick object.

    ``ts`` is Unix time in milliseconds (sub-millisecond float) at which the feed produced the
    trade; ``seq`` counts the symbol's trades within one feed run (epoch), starting at 1.
    """

    symbol: str
    seq: int
    ts: float
    price: float
    size: float  # shares (an int), or a fraction of a coin on a crypto feed
    bid: float
    ask: float


_INF = float("inf")


def is_sane(tick: Tick) -> bool:
    """Whether a tick's values are possible: finite positive price, bid and ask, a size >= 0."""
    # Chained comparisons are False for NaN, so this one line also refuses NaN.
    return (0.0 < tick.price < _INF and 0.0 < tick.bid < _INF and 0.0 < tick.ask < _INF
            and tick.size >= 0)


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """``open`` is the session's reference price when the feed knows it (the simulated market's
    opening price), so every server node reports the same change since the open."""

    symbol: str
    name: str = ""
    sector: str = ""
    open: float | None = None


@dataclass(frozen=True, slots=True)
class FeedStart:
    """Announces a feed run: everything after it, up to the next FeedStart, belongs to ``epoch``."""

    epoch: str
    feed: str
    symbols: tuple[SymbolInfo, ...]


@dataclass(frozen=True, slots=True)
class TickBatch:
    """Ticks produced together; one batch may mix symbols, each symbol's seqs ascend."""

    epoch: str
    ticks: tuple[Tick, ...]


FeedEvent = FeedStart | TickBatch
