"""The last check before a tick is published: impossible values never reach a client.

A feed with a bug, a hand-edited recording or a bad import could yield a NaN, an infinite, zero or
negative price, or a negative size (orjson would even send NaN as null). Such ticks are dropped
here, at the source, and the symbol's later ticks are renumbered so that its seqs stay
contiguous: clients see a market with one trade fewer, not a gap or a reset.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ticker.model import Tick, is_sane
from ticker.stats import Stats

log = logging.getLogger("ticker.guard")

class TickGuard:
    """One per feed run (an epoch: seqs start over with it)."""

    def __init__(self, stats: Stats | None = None) -> None:
        self._dropped: dict[str, int] = {}  # per symbol, ticks dropped so far in this run
        self._stats = stats
        self.rejected = 0

    def check(self, ticks: Sequence[Tick]) -> Sequence[Tick]:
        """``ticks`` unchanged when all are sane and nothing was dropped before (the usual case,
        kept cheap); otherwise the sane ones, renumbered."""
        if not self._dropped and all(map(is_sane, ticks)):
            return ticks
        kept: list[Tick] = []
        dropped = self._dropped
        for tick in ticks:
            if not is_sane(tick):
                self._reject(tick)
                continue
            behind = dropped.get(tick.symbol)
            kept.append(tick if not behind else Tick(
                tick.symbol, tick.seq - behind, tick.ts, tick.price, tick.size, tick.bid,
                tick.ask))
        return kept

    def _reject(self, tick: Tick) -> None:
        self._dropped[tick.symbol] = self._dropped.get(tick.symbol, 0) + 1
        self.rejected += 1
        if self._stats is not None:
            self._stats.rejected_ticks += 1
        if self.rejected <= 10 or self.rejected % 1000 == 0:
            log.warning("dropped an impossible tick (%d so far): %s seq %d price %r size %r "
                        "bid %r ask %r", self.rejected, tick.symbol, tick.seq, tick.price,
                        tick.size, tick.bid, tick.ask)
