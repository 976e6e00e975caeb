"""A feed whose ticks the test pushes by hand: for tests that need quiet or exact streams."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

from ticker.model import SymbolInfo, Tick


class ScriptedFeed:
    kind = "scripted"

    def __init__(self, symbols: Sequence[str]) -> None:
        self._symbols = tuple(SymbolInfo(symbol) for symbol in symbols)
        self._seqs = dict.fromkeys(symbols, 0)
        self._queue: asyncio.Queue[list[Tick]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def symbols(self) -> Sequence[SymbolInfo]:
        return self._symbols

    async def batches(self) -> AsyncIterator[list[Tick]]:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        while True:
            yield await self._queue.get()

    def push(self, symbol: str, count: int = 1, price: float = 100.0, ts: float | None = None,
             size: int = 100, spread: float = 0.01) -> list[Tick]:
        """Produce ``count`` ticks of ``symbol`` (callable from any thread), at ``ts`` (Unix ms;
        default: now) for a test that needs the market's clock in its hands."""
        ticks = []
        for _ in range(count):
            self._seqs[symbol] += 1
            at = round(time.time() * 1000, 3) if ts is None else ts
            ticks.append(Tick(symbol, self._seqs[symbol], at, price, size,
                              round(price - spread, 2), round(price + spread, 2)))
        assert self._loop is not None and self._queue is not None, "the feed has not started"
        self._loop.call_soon_threadsafe(self._queue.put_nowait, ticks)
        return ticks
