"""How often one connection may send commands: a token bucket, sans I/O (the clock is passed in).

A client within the rate never notices it. One over it gets ``rate_limited`` errors for the ops
that do not fit; one that keeps going regardless (``strikes`` refused ops since it last sent an
op that fitted) is told to go: close 1008.
"""

from __future__ import annotations

from enum import Enum


class Verdict(Enum):
    ALLOW = "allow"
    REFUSE = "refuse"  # answer with a rate_limited error
    DISCONNECT = "disconnect"  # close the connection with 1008 (policy violation)


class OpRateLimiter:
    __slots__ = ("_burst", "_rate", "_strike_limit", "_strikes", "_tokens", "_updated")

    def __init__(self, rate: float, burst: int, strikes: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._strike_limit = strikes
        self._tokens = float(burst)
        self._updated = now
        self._strikes = 0

    def check(self, now: float) -> Verdict:
        """Whether one more op may be applied at ``now`` (seconds, any monotonic origin)."""
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens > 1.0 - 1e-9:  # float sums of exact refills land just below 1
            self._tokens -= 1.0
            self._strikes = 0
            return Verdict.ALLOW
        self._strikes += 1
        return Verdict.DISCONNECT if self._strikes >= self._strike_limit else Verdict.REFUSE

    def retry_after(self) -> float:
        """Seconds until the next op would fit."""
        return max(0.0, (1.0 - self._tokens) / self._rate)
