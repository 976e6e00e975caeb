"""A Clock for feeds under test: sleeping advances simulated wall time at once, and is recorded."""

from __future__ import annotations


class FakeClock:
    def __init__(self, now_ms: float) -> None:
        self.now = now_ms
        self.sleeps: list[tuple[float, float]] = []  # (now before, seconds)

    def now_ms(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append((self.now, seconds))
        self.now += seconds * 1000
