"""A simulated US stock market, deterministic under a seed.

Prices follow a factor model (market, sector, idiosyncratic) in continuous trading time, with
clustered volatility and jumps, so charts and cross-stock correlations look like a real market.
Everything per tick uses only ``random`` and ``math``: the feed must outrun any real tick rate.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import AsyncIterator, Iterator, Sequence
from itertools import accumulate

from feeds.base import Clock, WallClock
from feeds.market import MarketParams, StockSpec
from ticker.errors import ConfigError
from ticker.model import SymbolInfo, Tick

TRADING_DAY_S = 6.5 * 3600.0
TRADING_YEAR_S = 252 * TRADING_DAY_S  # 5,896,800 s: volatilities are annualised over trading time
MAX_BATCH = 10_000
MARKET_VOL_SHARE = 0.2  # part of the log-vol variance all stocks share: market-wide calm or stress
PARETO_ALPHA = 1.3  # trade sizes: heavy tail like real prints, a few block trades among odd lots
MAX_LOTS = 1000
MIN_SLEEP_S = 0.001  # always advance the clock, even if float rounding leaves a tick a hair ahead


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
        """Every call replays the market from scratch, so the same seed gives the same ticks.

        Shared factors are Brownian motions advanced only forward and only when a stock needs
        them (the market on every tick, a sector when one of its stocks trades): an increment over
        any interval is then exactly N(0, dt), however irregular the trading.
        """
        p = self._params
        stocks = self._stocks
        n = len(stocks)
        rng = random.Random(self._seed)
        rnd, gauss = rng.random, rng.gauss
        exp, sqrt, log = math.exp, math.sqrt, math.log

        cum = list(accumulate(s.activity for s in stocks))
        total_w = cum[-1]
        last_i = n - 1
        mean_gap_s = 1.0 / self._tick_rate

        loads = [_loadings(s.volatility, p) for s in stocks]
        a_m = [m for m, _, _ in loads]
        a_s = [sc for _, sc, _ in loads]
        a_e = [e for _, _, e in loads]
        sector_ids: dict[str, int] = {}
        sec = [sector_ids.setdefault(s.sector, len(sector_ids)) for s in stocks]
        syms = [s.symbol for s in stocks]

        # log-vol x = x_market + x_stock, stationary std vol_of_vol; m = exp(x - s^2) has E[m^2]=1.
        kappa = math.log(2.0) / p.vol_halflife
        s2 = p.vol_of_vol**2
        sd_xm = sqrt(s2 * MARKET_VOL_SHARE)
        sd_xi = sqrt(s2 * (1.0 - MARKET_VOL_SHARE))
        jump_rate = p.jumps_per_day / TRADING_DAY_S
        jump_sd = p.jump_size
        inf = math.inf

        def next_jump_gap() -> float:
            return -log(1.0 - rnd()) / jump_rate if jump_rate > 0 else inf

        logp = [log(s.price) for s in stocks]
        x = [sd_xi * gauss() for _ in range(n)]
        x_m = sd_xm * gauss()
        next_jump = [next_jump_gap() for _ in range(n)]
        last_t = [0.0] * n
        last_mkt = [0.0] * n
        last_sec = [0.0] * n
        seq = [0] * n
        sec_level = [0.0] * len(sector_ids)
        sec_t = [0.0] * len(sector_ids)
        mkt = 0.0
        t = 0.0
        spread_frac = p.spread_bps / 1e4 * 0.5  # times 4**u below: a factor in [0.5, 2)
        neg_inv_alpha = -1.0 / PARETO_ALPHA
        ms_per_s = 1000.0

        while True:
            dt = -log(1.0 - rnd()) * mean_gap_s
            t += dt
            i = bisect_right(cum, rnd() * total_w)
            if i > last_i:
                i = last_i
            mkt += sqrt(dt) * gauss()
            decay = exp(-kappa * dt)
            x_m = x_m * decay + sd_xm * sqrt(1.0 - decay * decay) * gauss()
            k = sec[i]
            sec_level[k] += sqrt(t - sec_t[k]) * gauss()
            sec_t[k] = t

            dt_i = t - last_t[i]
            decay = exp(-kappa * dt_i)
            xi = x[i] = x[i] * decay + sd_xi * sqrt(1.0 - decay * decay) * gauss()
            # The multiplier is independent of this interval's increments, so it scales the
            # variance by E[m^2] = 1 on average: clustering without changing long-run volatility.
            r = exp(x_m + xi - s2) * (
                a_m[i] * (mkt - last_mkt[i])
                + a_s[i] * (sec_level[k] - last_sec[i])
                + a_e[i] * sqrt(dt_i) * gauss()
            )
            while next_jump[i] <= t:
                r += jump_sd * gauss()
                next_jump[i] += next_jump_gap()
            last_t[i], last_mkt[i], last_sec[i] = t, mkt, sec_level[k]
            lp = logp[i] = logp[i] + r

            # Quote and trade in integer cents: the 0.01 grid and bid <= price <= ask hold exactly.
            mid_c = exp(lp) * 100.0
            spread = int(mid_c * spread_frac * 4.0 ** rnd() + 0.5)
            if spread < 1:
                spread = 1
            bid = math.floor(mid_c - 0.5 * spread + 0.5)
            if bid < 1:
                bid = 1
            ask = bid + spread
            u = rnd()
            if u < 0.45:
                price = bid
            elif u < 0.9:
                price = ask
            elif spread > 1:
                price = bid + 1 + int((u - 0.9) * 10.0 * (spread - 1))
            else:
                price = bid if u < 0.95 else ask
            lots = int((1.0 - rnd()) ** neg_inv_alpha)
            seq[i] += 1
            yield Tick(
                syms[i],
                seq[i],
                round(start_ms + t * ms_per_s, 3),
                round(price / 100, 2),
                100 * (lots if lots < MAX_LOTS else MAX_LOTS),
                round(bid / 100, 2),
                round(ask / 100, 2),
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
