"""The cyclic garbage collector's policy for a server process: a full collection pauses the event
loop for what is new since the last one, not for everything alive.

CPython's full collection (generation 2) walks every object the collector tracks, with the event
loop stopped. Measured 2026-12-04 in `ticker serve` at 1,000 WebSocket clients: 123,496 tracked
objects (~120 per connection: uvicorn's and websockets' protocol objects, Starlette's WebSocket,
our subscriber and cursors...), and a 63 ms pause; with the fan-out's latency budget at 100 ms, a
full collection inside a measured window turned a passing step into a failing one, and at 10,000
clients the same walk is ten times as long. Which objects it walks is ours to choose:
``gc.freeze()`` moves every tracked object to a permanent generation that collections skip. So
after each full collection (its survivors are, by definition, alive), the policy freezes them;
the next one walks only what was allocated since, and young collections are unchanged.

What it costs: an object frozen, then later garbage only through a reference cycle, is not freed
until it is thawed (objects freed by reference counting, nearly all, leave the frozen set as they
die). So every ``thaw_interval`` seconds the frozen set is thawed, and the next full collection
walks everything once, frees such cycles, and freezes again.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ticker.collector")

PERIOD_S = 1.0  # how soon after a full collection its survivors are frozen
SLOW_PAUSE_S = 0.05  # full collections longer than this are logged


class Collector:
    def __init__(self, thaw_interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.thaw_interval = thaw_interval
        self._clock = clock
        self._freeze_due = False
        self._started_at = 0.0
        self._thawed_at = clock()
        self.full_collections = 0
        self.freezes = 0
        self.thaws = 0
        self.longest_pause = 0.0  # seconds, of a full collection
        self.last_pause = 0.0

    def start(self) -> None:
        """Freeze what the process holds once it is up (modules, the app, the hub), before any
        client: what is alive from the start stays out of every later walk."""
        gc.collect()
        gc.freeze()
        self.freezes += 1
        self._thawed_at = self._clock()

    def install(self) -> None:
        if self._on_collection not in gc.callbacks:
            gc.callbacks.append(self._on_collection)

    def uninstall(self) -> None:
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside the collector: only note things; the freeze waits for the next turn.
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started_at = time.perf_counter()
            return
        pause = time.perf_counter() - self._started_at
        self.full_collections += 1
        self.last_pause = pause
        self.longest_pause = max(self.longest_pause, pause)
        self._freeze_due = True
        if pause > SLOW_PAUSE_S:
            log.info("a full garbage collection paused the server for %.0f ms (%d objects "
                     "frozen before it)", pause * 1000, gc.get_freeze_count())

    def turn(self) -> None:
        """Freeze the survivors of a full collection since the last turn; thaw when due."""
        now = self._clock()
        if self.thaw_interval and now - self._thawed_at >= self.thaw_interval:
            self._thawed_at = now
            if gc.get_freeze_count():
                gc.unfreeze()
                self.thaws += 1
                log.info("thawed the frozen objects: the next full collection walks them all")
            self._freeze_due = False  # what it would freeze is the next full collection's
            return
        if self._freeze_due:
            self._freeze_due = False
            # Young objects move with the rest: collect their cycles first, so that only what
            # is alive is frozen (a young collection is short: it walks the young alone).
            gc.collect(1)
            gc.freeze()
            self.freezes += 1

    async def run(self) -> None:
        """Every PERIOD_S, a turn; call start() first (the server does, before it listens)."""
        self.install()
        try:
            while True:
                await asyncio.sleep(PERIOD_S)
                self.turn()
        finally:
            self.uninstall()


__all__ = ["Collector"]
