"""Parameters of the simulated market: the stocks it trades and how their prices move.

Kept apart from the simulation so the config loader can build them without running anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from ticker.errors import ConfigError


@dataclass(frozen=True, slots=True)
class StockSpec:
    """One simulated stock. ``volatility`` is annualised (0.25 = 25 %/year over 252 trading days);
    ``activity`` weights how often it trades relative to the others."""

    symbol: str
    name: str
    sector: str
    price: float
    volatility: float
    activity: float = 1.0

    def __post_init__(self) -> None:
        if not self.symbol or not self.symbol.isascii() or self.symbol != self.symbol.upper():
            raise ConfigError("symbol", f"must be an upper-case ASCII ticker, got {self.symbol!r}")
        _check_positive("price", self.price)
        _check_positive("activity", self.activity)
        if not 0.0 < self.volatility <= 5.0:
            raise ConfigError("volatility",
                              f"must be in (0, 5] (annualised), got {self.volatility}")


@dataclass(frozen=True, slots=True)
class MarketParams:
    """How prices move. The variance shares split each stock's variance between the whole market,
    its sector and itself, so two stocks of one sector correlate at about
    ``market_share + sector_share`` and two of different sectors at about ``market_share``."""

    market_share: float
    sector_share: float
    vol_halflife: float
    vol_of_vol: float
    jumps_per_day: float
    jump_size: float
    spread_bps: float

    def __post_init__(self) -> None:
        for key in ("market_share", "sector_share"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                raise ConfigError(key, f"must be in [0, 1), got {value}")
        if self.market_share + self.sector_share >= 1.0:
            raise ConfigError("sector_share", "market_share + sector_share must stay below 1")
        _check_positive("vol_halflife", self.vol_halflife)
        for key in ("vol_of_vol", "jumps_per_day", "jump_size"):
            if not getattr(self, key) >= 0:
                raise ConfigError(key, f"must be >= 0, got {getattr(self, key)}")
        _check_positive("spread_bps", self.spread_bps)


def _check_positive(key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(key, f"must be > 0, got {value}")
