"""How long to wait before the next reconnect: capped exponential backoff with full jitter.

Full jitter (a uniform delay between 0 and the current ceiling) spreads the reconnects of many
clients that lost the same server at the same moment, so they do not come back in one wave.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(self, initial: float = 0.5, cap: float = 20.0,
                 uniform: Callable[[float, float], float] = random.uniform) -> None:
        if not 0 < initial <= cap:
            raise ValueError(f"need 0 < initial <= cap, got {initial} and {cap}")
        self.initial = initial
        self.cap = cap
        self._uniform = uniform
        self._ceiling = initial

    def next_delay(self) -> float:
        """The wait before the next attempt; each call doubles the ceiling, up to ``cap``."""
        ceiling = self._ceiling
        self._ceiling = min(self.cap, ceiling * 2)
        # Never quite zero: a server that refuses at once must not be hammered in a loop.
        return max(self.initial / 10, self._uniform(0.0, ceiling))

    def reset(self) -> None:
        """After a connection that worked: the next failure starts from ``initial`` again."""
        self._ceiling = self.initial
