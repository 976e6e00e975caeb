"""A simulated US stock market, deterministic under a seed.

Prices follow a factor model (market, sector, idiosyncratic) in continuous trading time, with
clustered volatility and jumps, so charts and cross-stock correlations look like a real market.
The walk itself is feeds/market_walk.py (and feeds/_market_walk.c, the same loop compiled): the
feed must outrun any real tick rate, and in a benchmark it shares the server's core.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from itertools import accumulate

from feeds.base import Clock, WallClock
from feeds.market import MarketParams, StockSpec
from feeds.market_walk import Model, walk_in_python
from ticker.errors import ConfigError
from ticker.model import SymbolInfo, Tick

TRADING_DAY_S = 6.5 * 3600.0
TRADING_YEAR_S = 252 * TRADING_DAY_S  # 5,896,800 s: volatilities are annualised over trading time
MAX_BATCH = 10_000
MARKET_VOL_SHARE = 0.2  # part of the log-vol variance all stocks share: market-wide calm or stress
MIN_SLEEP_S = 0.001  # always advance the clock, even if float rounding leaves a tick a hair ahead
PYTHON_WALK_ENV = "TICKER_PYTHON_MARKET_WALK"  # set: walk in Python even where the C is built

CompiledWalk = Callable[[Model, Callable[[], float], float, type[Tick]], Iterator[Tick]]
compiled_walk: CompiledWalk | None
try:
    from feeds._market_walk import walk as compiled_walk
except ImportError:  # not built (no C compiler where it was installed): hatch_build.py
    compiled_walk = None


class SimulatedFeed:
    """A Feed whose prices come from a seeded random process instead of an exchange.

    ``ticks`` is the whole model in simulated time, so tests and recorders can run it far faster
    than real time; ``batches`` only paces it against a clock.
    """

    kind = "simulated"

    def __init__(
        self,
        stocks: Sequence[StockSpec],
        params: MarketParams,
        tick_rate: float,
        seed: int,
        clock: Clock | None = None,
    ) -> None:
        if not stocks:
            raise ConfigError("stocks", "the simulated market needs at least one stock")
        names = [s.symbol for s in stocks]
        if len(set(names)) != len(names):
            raise ConfigError("stocks", "symbols must be unique")
        if not (tick_rate > 0 and math.isfinite(tick_rate)):
            raise ConfigError("tick_rate", f"must be a finite number > 0, got {tick_rate}")
        self._stocks = tuple(stocks)
        self._params = params
        self._tick_rate = float(tick_rate)
        self._seed = seed
        self._clock: Clock = clock if clock is not None else WallClock()
        # Typed as the Feed protocol's (mutable, hence invariant) attribute; the value is a tuple.
        self.symbols: Sequence[SymbolInfo] = tuple(
            SymbolInfo(s.symbol, s.name, s.sector, s.price) for s in stocks
        )

    def ticks(self, start_ms: float) -> Iterator[Tick]:
        """Every call replays the market from scratch, so the same seed gives the same ticks,
        from the compiled walk (feeds/_simulated.c) or, where it is not built, from Python."""
        model = self._model()
        rng = random.Random(self._seed)
        if compiled_walk is not None and not os.environ.get(PYTHON_WALK_ENV):
            return compiled_walk(model, rng.random, start_ms, Tick)
        return walk_in_python(model, rng.random, start_ms)

    def _model(self) -> Model:
        p = self._params
        stocks = self._stocks
        loads = [_loadings(s.volatility, p) for s in stocks]
        sector_ids: dict[str, int] = {}
        sectors = [sector_ids.setdefault(s.sector, len(sector_ids)) for s in stocks]
        s2 = p.vol_of_vol**2
        return Model(
            symbols=tuple(s.symbol for s in stocks),
            sectors=tuple(sectors),
            sector_count=len(sector_ids),
            cumulative_activity=tuple(accumulate(s.activity for s in stocks)),
            market_loading=tuple(m for m, _, _ in loads),
            sector_loading=tuple(sc for _, sc, _ in loads),
            own_loading=tuple(e for _, _, e in loads),
            log_prices=tuple(math.log(s.price) for s in stocks),
            mean_gap_s=1.0 / self._tick_rate,
            # log-vol x = x_market + x_stock, stationary std vol_of_vol; m = exp(x - s^2) has
            # E[m^2] = 1.
            kappa=math.log(2.0) / p.vol_halflife,
            vol_variance=s2,
            sd_market_vol=math.sqrt(s2 * MARKET_VOL_SHARE),
            sd_stock_vol=math.sqrt(s2 * (1.0 - MARKET_VOL_SHARE)),
            jump_rate=p.jumps_per_day / TRADING_DAY_S,
            jump_sd=p.jump_size,
            half_spread=p.spread_bps / 1e4 * 0.5,  # times 4**u below: a factor in [0.5, 2)
        )

    async def batches(self) -> AsyncIterator[list[Tick]]:
        """Releases ticks as their simulated time comes due on the clock.

        A consumer that fell behind gets the backlog in pieces of at most MAX_BATCH, so no single
        batch can grow without bound.
        """
        clock = self._clock
        it = self.ticks(clock.now_ms())
        pending = next(it)
        while True:
            now = clock.now_ms()
            if pending.ts > now:
                await clock.sleep(max((pending.ts - now) / 1000.0, MIN_SLEEP_S))
                continue
            batch = [pending]
            pending = next(it)
            while pending.ts <= now and len(batch) < MAX_BATCH:
                batch.append(pending)
                pending = next(it)
            yield batch


def _loadings(vol: float, p: MarketParams) -> tuple[float, float, float]:
    """Per-sqrt-second weights of the market, sector and own Brownian motions.

    Jumps are stock news, so their variance comes out of the idiosyncratic diffusion first: the
    market and sector variances stay at their configured shares and correlations stay as
    configured. Only jumps beyond that eat into the factors, down to a 10 % diffusive floor so a
    jump-heavy stock still moves between jumps.
    """
    var = vol * vol
    jump_var = p.jumps_per_day * 252 * p.jump_size**2
    diffusive = max(var - jump_var, 0.1 * var)
    shared = p.market_share + p.sector_share
    common = min(shared * var, diffusive)
    scale = common / (shared * var * TRADING_YEAR_S) if shared > 0 else 0.0
    return (
        math.sqrt(p.market_share * var * scale),
        math.sqrt(p.sector_share * var * scale),
        math.sqrt((diffusive - common) / TRADING_YEAR_S),
    )


def synthetic_universe(n: int, seed: int) -> list[StockSpec]:
    """Load tests need many plausible stocks without anyone writing a config for them."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = random.Random(seed)
    log_lo, log_hi = math.log(10.0), math.log(500.0)
    act_lo, act_hi = math.log(0.5), math.log(3.0)
    specs = []
    for k in range(1, n + 1):
        specs.append(
            StockSpec(
                symbol=f"S{k:04d}",
                name=f"Synthetic Stock {k:04d}",
                sector=f"Sector {(k - 1) % 10 + 1}",
                price=round(math.exp(rng.uniform(log_lo, log_hi)), 2),
                volatility=round(rng.uniform(0.15, 0.6), 4),
                activity=round(math.exp(rng.uniform(act_lo, act_hi)), 4),
            )
        )
    return specs
