"""The Feed interface: an async iterator of tick batches, with the symbols it trades."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from ticker.model import SymbolInfo, Tick


class Feed(Protocol):
    """A source of sequenced ticks.

    The feed assigns each symbol's ``seq`` (1, 2, 3, ... within one run) so that every consumer,
    in every process, sees the same numbers. Iterating yields batches of ticks that were due at the
    same moment; each batch is non-empty and ordered by ``ts``.
    """

    kind: str

    @property
    def symbols(self) -> Sequence[SymbolInfo]: ...

    def batches(self) -> AsyncIterator[list[Tick]]: ...


class Clock(Protocol):
    """Wall time for pacing; tests and fast recording replace it."""

    def now_ms(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class WallClock:
    def now_ms(self) -> float:
        return time.time() * 1000.0

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
