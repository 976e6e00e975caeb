"""The fan-out workload: how many clients, who subscribes to what, which clients are sampled.

Every server under test (ours and the baselines) trades the same synthetic universe with the same
seed, so the same workload means the same ticks on the wire.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from feeds.simulated import synthetic_universe

# Rates of a ramp, per decade: fine enough to place a capacity within ~30 %, coarse enough that a
# whole ramp of four servers stays within the time budget.
LADDER = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0)


@dataclass(frozen=True, slots=True)
class Workload:
    symbols: int = 100
    clients: int = 1000
    symbols_per_client: int = 10
    sample: int = 50  # clients that parse every message (latency, gaps); the rest only count
    seed: int = 1
    warmup_s: float = 2.0
    measure_s: float = 5.0
    stalled: int = 0  # more clients, on every symbol, that stop reading once subscribed

    def __post_init__(self) -> None:
        for key in ("symbols", "clients", "symbols_per_client", "sample"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.stalled < 0:
            raise ValueError(f"stalled must be >= 0, got {self.stalled}")
        if self.symbols_per_client > self.symbols:
            raise ValueError(f"symbols per client ({self.symbols_per_client}) exceeds the "
                             f"number of symbols ({self.symbols})")
        if self.warmup_s < 0 or self.measure_s <= 0:
            raise ValueError("warm-up must be >= 0 s and the measured window > 0 s")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Workload:
        return cls(**data)


def symbol_names(workload: Workload) -> list[str]:
    """The names ``ticker serve --symbols N`` trades (S0001..SN), from the same function."""
    return [stock.symbol for stock in synthetic_universe(workload.symbols, workload.seed)]


def client_symbols(index: int, workload: Workload, names: list[str]) -> list[str]:
    """Client i takes the next ``symbols_per_client`` symbols after client i-1's, wrapping around,
    so every symbol gets the same number of subscribers when the counts divide evenly."""
    count = workload.symbols_per_client
    start = index * count
    return [names[(start + k) % len(names)] for k in range(count)]


def sample_indices(workload: Workload) -> list[int]:
    """Sampled clients spread over the connection order (a server may favour early or late
    connections) and, together, subscribed to every symbol.

    A client's symbols depend only on ``index mod period``, so the sample walks through the
    residues while stepping evenly through the indices.
    """
    clients, size = workload.clients, min(workload.sample, workload.clients)
    if size == clients:
        return list(range(clients))
    period = workload.symbols // math.gcd(workload.symbols, workload.symbols_per_client)
    chosen: list[int] = []
    seen: set[int] = set()
    for k in range(size):
        base = k * clients // size
        index = base - base % period + k % period
        while index >= clients or index in seen:
            index = (index + 1) % clients
        seen.add(index)
        chosen.append(index)
    return sorted(chosen)


def ladder(start: float, stop: float) -> list[float]:
    """Rates from ``start`` up to ``stop``: 1, 1.5, 2, 3, 4, 5, 7 times each power of ten."""
    rates: list[float] = []
    decade = 10.0 ** math.floor(math.log10(start))
    while decade <= stop:
        rates.extend(m * decade for m in LADDER if start <= m * decade <= stop)
        decade *= 10.0
    return rates


__all__ = ["Workload", "client_symbols", "ladder", "sample_indices", "symbol_names"]
