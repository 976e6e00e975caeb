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

    def push(self, symbol: str, count: int = 1, price: float = 100.0) -> list[Tick]:
        """Produce ``count`` ticks of ``symbol`` (callable from any thread)."""
        ticks = []
        for _ in range(count):
            self._seqs[symbol] += 1
            ticks.append(Tick(symbol, self._seqs[symbol], round(time.time() * 1000, 3), price,
                              100, round(price - 0.01, 2), round(price + 0.01, 2)))
        assert self._loop is not None and self._queue is not None, "the feed has not started"
        self._loop.call_soon_threadsafe(self._queue.put_nowait, ticks)
        return ticks
