"""The simulated market's random walk, tick by tick: the model of feeds/simulated.py in motion.

Two implementations give the same ticks, bit for bit, from the same ``random()`` stream: the
compiled one (feeds/_market_walk.c, built by hatch_build.py) and this one, which runs where the C
is not built. Both take every random number from ``random()`` (a ``random.Random``'s method) in
the same order and do the same IEEE double arithmetic in the same order, with the libm functions
Python's math module calls; normals come in Box-Muller pairs, the second kept for the next call,
as ``random.gauss`` makes them (but ours, so no Python version can change the stream under us).

Prices follow a factor model (market, sector, idiosyncratic) in continuous trading time, with
clustered volatility and jumps. Shared factors are Brownian motions advanced only forward and only
when a stock needs them (the market on every tick, a sector when one of its stocks trades): an
increment over any interval is then exactly N(0, dt), however irregular the trading.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterator
from typing import NamedTuple

from ticker.model import Tick

PARETO_ALPHA = 1.3  # trade sizes: heavy tail like real prints, a few block trades among odd lots
MAX_LOTS = 1000
TWO_PI = 2.0 * math.pi


class Model(NamedTuple):
    """What the walk needs of the market, per stock and overall (simulated.py builds it)."""

    symbols: tuple[str, ...]
    sectors: tuple[int, ...]  # each stock's sector, numbered from 0
    sector_count: int
    cumulative_activity: tuple[float, ...]  # running sum of the stocks' activity weights
    market_loading: tuple[float, ...]  # per-sqrt-second weights of the three Brownian motions
    sector_loading: tuple[float, ...]
    own_loading: tuple[float, ...]
    log_prices: tuple[float, ...]  # at the start
    mean_gap_s: float  # between ticks, over all stocks
    kappa: float  # mean reversion of log-volatility, per second
    vol_variance: float  # of log-volatility, stationary
    sd_market_vol: float
    sd_stock_vol: float
    jump_rate: float  # per stock per second of trading
    jump_sd: float
    half_spread: float  # of the mid, typical


def micro_ms(ms: float) -> float:
    """``ms`` to the microsecond (the nearest multiple of 0.001, as a short decimal): the same
    arithmetic as the C, where Python's round() would need its decimal conversion."""
    return math.floor(ms * 1000.0 + 0.5) / 1000.0


def walk_in_python(model: Model, random: Callable[[], float], start_ms: float) -> Iterator[Tick]:
    """The ticks from ``start_ms`` on, for ever (feeds/_market_walk.c is the same loop in C)."""
    exp, sqrt, log, cos, sin, floor = math.exp, math.sqrt, math.log, math.cos, math.sin, math.floor
    spare: list[float] = []

    def gauss() -> float:
        if spare:
            return spare.pop()
        angle = random() * TWO_PI
        radius = sqrt(-2.0 * log(1.0 - random()))
        spare.append(sin(angle) * radius)
        return cos(angle) * radius

    jump_rate = model.jump_rate
    inf = math.inf

    def next_jump_gap() -> float:
        return -log(1.0 - random()) / jump_rate if jump_rate > 0 else inf

    n = len(model.symbols)
    syms = model.symbols
    sec = model.sectors
    cum = model.cumulative_activity
    total_w = cum[-1]
    last_i = n - 1
    a_m, a_s, a_e = model.market_loading, model.sector_loading, model.own_loading
    mean_gap_s, kappa, s2 = model.mean_gap_s, model.kappa, model.vol_variance
    sd_xm, sd_xi, jump_sd = model.sd_market_vol, model.sd_stock_vol, model.jump_sd
    spread_frac = model.half_spread
    neg_inv_alpha = -1.0 / PARETO_ALPHA

    logp = list(model.log_prices)
    x = [sd_xi * gauss() for _ in range(n)]
    x_m = sd_xm * gauss()
    next_jump = [next_jump_gap() for _ in range(n)]
    last_t = [0.0] * n
    last_mkt = [0.0] * n
    last_sec = [0.0] * n
    seq = [0] * n
    sec_level = [0.0] * model.sector_count
    sec_t = [0.0] * model.sector_count
    mkt = 0.0
    t = 0.0

    while True:
        dt = -log(1.0 - random()) * mean_gap_s
        t += dt
        i = bisect_right(cum, random() * total_w)
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

        # Quote and trade in integer cents: the 0.01 grid and bid <= price <= ask hold exactly
        # (and cents / 100 is the double nearest the 2-decimal price: no rounding needed).
        mid_c = exp(lp) * 100.0
        spread = int(mid_c * spread_frac * 4.0 ** random() + 0.5)
        if spread < 1:
            spread = 1
        bid = floor(mid_c - 0.5 * spread + 0.5)
        if bid < 1:
            bid = 1
        ask = bid + spread
        u = random()
        if u < 0.45:
            price = bid
        elif u < 0.9:
            price = ask
        elif spread > 1:
            price = bid + 1 + int((u - 0.9) * 10.0 * (spread - 1))
        else:
            price = bid if u < 0.95 else ask
        lots = int((1.0 - random()) ** neg_inv_alpha)
        seq[i] += 1
        yield Tick(syms[i], seq[i], micro_ms(start_ms + t * 1000.0), price / 100,
                   100 * (lots if lots < MAX_LOTS else MAX_LOTS), bid / 100, ask / 100)
