"""Tests of the simulated market: run it in simulated time and check it statistically.

Statistical tests use fixed seeds, so they are deterministic; tolerances are still set at several
standard errors of each estimate, so that a different seed would pass as well.
"""

from __future__ import annotations

import asyncio
import math
import statistics
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import combinations, islice, pairwise, takewhile

import pytest

from feeds.market import MarketParams, StockSpec
from feeds.simulated import MAX_BATCH, TRADING_YEAR_S, SimulatedFeed, synthetic_universe
from tests.clocks import FakeClock
from ticker.errors import ConfigError
from ticker.model import Tick

DAY_S = 6.5 * 3600
START_MS = 1_700_000_000_000.0

PARAMS = MarketParams(
    market_share=0.3,
    sector_share=0.2,
    vol_halflife=600.0,
    vol_of_vol=0.3,
    jumps_per_day=1.0,
    jump_size=0.005,
    spread_bps=1.5,
)

STOCKS = [
    StockSpec("AAPL", "Apple Inc.", "Technology", 190.0, 0.28, 3.0),
    StockSpec("MSFT", "Microsoft Corp.", "Technology", 410.0, 0.25, 2.5),
    StockSpec("NVDA", "NVIDIA Corp.", "Technology", 480.0, 0.50, 2.5),
    StockSpec("JPM", "JPMorgan Chase & Co.", "Financials", 195.0, 0.22, 1.5),
    StockSpec("BAC", "Bank of America Corp.", "Financials", 35.0, 0.25, 1.5),
    StockSpec("XOM", "Exxon Mobil Corp.", "Energy", 115.0, 0.24, 1.0),
    StockSpec("CVX", "Chevron Corp.", "Energy", 155.0, 0.23, 1.0),
]
SYMBOLS = [s.symbol for s in STOCKS]

# The long run behind the statistical tests. 0.6 ticks/s keeps it to ~350k ticks (a few seconds),
# and even the quietest stock still trades every ~22 s, well inside the 300 s sampling grid. 25
# days give ~1950 returns per stock and ~340 vol half-lives, so the vol-clustering noise on the
# realized vol is ~2 %, the sampling noise ~2 %: the 15 % tolerance is about 5 standard errors.
LONG_RATE = 0.6
LONG_DAYS = 25
GRID_S = 300.0


def run_for(feed: SimulatedFeed, seconds: float) -> list[Tick]:
    end_ms = START_MS + seconds * 1000
    return list(takewhile(lambda t: t.ts <= end_ms, feed.ticks(START_MS)))


def sample_mids(ticks: Iterable[Tick], symbols: list[str], step_s: float) -> list[list[float]]:
    """Each stock's last quoted mid at every grid time, starting one hour in (all have traded)."""
    last: dict[str, float] = {}
    rows: list[list[float]] = []
    due = START_MS + 3600 * 1000
    for t in ticks:
        while t.ts > due:
            rows.append([last[s] for s in symbols])
            due += step_s * 1000
        last[t.symbol] = (t.bid + t.ask) / 2
    return rows


def log_returns(rows: list[list[float]]) -> list[list[float]]:
    """Per-stock columns of log returns between consecutive grid samples."""
    return [[math.log(b[j] / a[j]) for a, b in pairwise(rows)] for j in range(len(rows[0]))]


def annual_vol(returns: list[float], step_s: float) -> float:
    return statistics.pstdev(returns) * math.sqrt(TRADING_YEAR_S / step_s)


def kurtosis(xs: list[float]) -> float:
    mu = statistics.fmean(xs)
    m2 = statistics.fmean((x - mu) ** 2 for x in xs)
    m4 = statistics.fmean((x - mu) ** 4 for x in xs)
    return m4 / m2**2


def standardized(xs: list[float]) -> list[float]:
    mu, sd = statistics.fmean(xs), statistics.pstdev(xs)
    return [(x - mu) / sd for x in xs]


@pytest.fixture(scope="module")
def long_run() -> list[Tick]:
    return run_for(SimulatedFeed(STOCKS, PARAMS, LONG_RATE, seed=7), LONG_DAYS * DAY_S)


@pytest.fixture(scope="module")
def long_returns(long_run: list[Tick]) -> list[list[float]]:
    return log_returns(sample_mids(long_run, SYMBOLS, GRID_S))


def test_symbols_follow_the_stocks() -> None:
    feed = SimulatedFeed(STOCKS, PARAMS, 10.0, seed=1)
    assert feed.kind == "simulated"
    assert [s.symbol for s in feed.symbols] == SYMBOLS
    assert feed.symbols[3].name == "JPMorgan Chase & Co."
    assert feed.symbols[3].sector == "Financials"


def test_rejects_bad_config() -> None:
    with pytest.raises(ConfigError):
        SimulatedFeed([], PARAMS, 10.0, seed=1)
    with pytest.raises(ConfigError):
        SimulatedFeed(STOCKS, PARAMS, 0.0, seed=1)
    with pytest.raises(ConfigError):
        SimulatedFeed(STOCKS + STOCKS[:1], PARAMS, 10.0, seed=1)


def test_same_seed_same_ticks_other_seed_other_ticks() -> None:
    def first(seed: int) -> list[Tick]:
        return list(islice(SimulatedFeed(STOCKS, PARAMS, 50.0, seed).ticks(START_MS), 5000))

    a, b = first(11), first(11)
    assert a == b  # dataclass equality compares every field
    feed = SimulatedFeed(STOCKS, PARAMS, 50.0, 11)
    assert list(islice(feed.ticks(START_MS), 5000)) == list(islice(feed.ticks(START_MS), 5000))
    c = first(12)
    assert [t.price for t in c] != [t.price for t in a]
    assert [t.ts for t in c] != [t.ts for t in a]


def test_quotes_and_trades_are_valid(long_run: list[Tick]) -> None:
    for t in long_run:
        assert 0.01 <= t.bid <= t.price <= t.ask, t
        for x in (t.bid, t.price, t.ask):
            assert abs(x * 100 - round(x * 100)) < 1e-6, t
            assert x == round(x, 2), t
        assert t.size >= 100, t
        assert t.size % 100 == 0, t
    # Bid-ask bounce: trades hit both sides, and some print inside the spread.
    at_bid = sum(t.price == t.bid for t in long_run) / len(long_run)
    at_ask = sum(t.price == t.ask for t in long_run) / len(long_run)
    assert 0.4 < at_bid < 0.55
    assert 0.4 < at_ask < 0.55


def test_sizes_are_heavy_tailed(long_run: list[Tick]) -> None:
    sizes = [t.size for t in long_run]
    median = statistics.median(sizes)
    assert max(sizes) >= 100 * median
    assert sum(s >= 1000 for s in sizes) / len(sizes) > 0.02


def test_spreads_are_tight_but_positive(long_run: list[Tick]) -> None:
    rel = [(t.ask - t.bid) / ((t.ask + t.bid) / 2) * 1e4 for t in long_run if t.symbol == "NVDA"]
    assert min(rel) > 0
    assert 0.5 < statistics.median(rel) < 5  # bps, around the configured 1.5


def test_seqs_count_up_and_time_never_goes_back(long_run: list[Tick]) -> None:
    seen: Counter[str] = Counter()
    prev_ts = START_MS
    for t in long_run:
        seen[t.symbol] += 1
        assert t.seq == seen[t.symbol]
        assert t.ts >= prev_ts
        prev_ts = t.ts
    assert set(seen) == set(SYMBOLS)


def test_tick_rate_and_activity_weights(long_run: list[Tick]) -> None:
    elapsed_s = (long_run[-1].ts - START_MS) / 1000
    rate = len(long_run) / elapsed_s
    assert abs(rate / LONG_RATE - 1) < 0.02  # ~350k ticks: Poisson error ~0.2 %
    counts = Counter(t.symbol for t in long_run)
    total_w = sum(s.activity for s in STOCKS)
    for s in STOCKS:
        share = counts[s.symbol] / len(long_run)
        assert abs(share / (s.activity / total_w) - 1) < 0.04, s.symbol


def test_realized_vol_matches_config(long_returns: list[list[float]]) -> None:
    for spec, rets in zip(STOCKS, long_returns, strict=True):
        vol = annual_vol(rets, GRID_S)
        assert abs(vol / spec.volatility - 1) < 0.15, (spec.symbol, vol, spec.volatility)


def test_sector_correlation(long_returns: list[list[float]]) -> None:
    within: list[float] = []
    across: list[float] = []
    for i, j in combinations(range(len(STOCKS)), 2):
        rho = statistics.correlation(long_returns[i], long_returns[j])
        (within if STOCKS[i].sector == STOCKS[j].sector else across).append(rho)
    assert min(within) > 0.3
    assert min(across) > 0.1
    mean_within, mean_across = statistics.fmean(within), statistics.fmean(across)
    # The per-stock vol multiplier is idiosyncratic: E[m_i m_j] = exp(-0.8 * vol_of_vol^2) ~ 0.93
    # shaves ~7 % off the factor correlations, and trading asynchronously a little more (Epps);
    # hence bands reaching lower than higher around 0.5 and 0.3.
    shares = PARAMS.market_share + PARAMS.sector_share
    assert 0.8 * shares < mean_within < 1.1 * shares
    assert 0.7 * PARAMS.market_share < mean_across < 1.1 * PARAMS.market_share
    assert mean_within > mean_across + 0.1


def _pooled_kurtosis(jumps_per_day: float, vol_of_vol: float) -> float:
    params = MarketParams(0.3, 0.2, 600.0, vol_of_vol, jumps_per_day, 0.006, 1.5)
    stocks = [
        StockSpec("AAA", "A", "One", 100.0, 0.3),
        StockSpec("BBB", "B", "Two", 50.0, 0.3),
        StockSpec("CCC", "C", "Three", 80.0, 0.3),
    ]
    # Three stocks at 0.15 ticks/s each trade every ~20 s: the 300 s returns barely depend on when
    # they last traded. 30 days give ~7000 pooled returns: kurtosis standard error ~0.06 if normal.
    ticks = run_for(SimulatedFeed(stocks, params, 0.15, seed=3), 30 * DAY_S)
    returns = log_returns(sample_mids(ticks, [s.symbol for s in stocks], GRID_S))
    return kurtosis([z for col in returns for z in standardized(col)])


def test_jumps_make_fat_tails() -> None:
    # 4 jumps a day of 0.6 % carry ~40 % of the variance: expected kurtosis ~12.
    assert _pooled_kurtosis(jumps_per_day=4.0, vol_of_vol=0.0) > 6.0


def test_no_jumps_no_vol_clustering_is_gaussian() -> None:
    assert abs(_pooled_kurtosis(jumps_per_day=0.0, vol_of_vol=0.0) - 3.0) < 0.35


def test_batches_release_due_ticks_and_sleep_until_the_next() -> None:
    clock = FakeClock(START_MS)
    feed = SimulatedFeed(STOCKS, PARAMS, 50.0, seed=5, clock=clock)
    got: list[tuple[float, list[Tick], int]] = []

    async def consume() -> None:
        gen = feed.batches()
        async for batch in gen:
            got.append((clock.now, batch, len(clock.sleeps)))
            if sum(len(b) for _, b, _ in got) >= 3000:
                break
        await gen.aclose()  # type: ignore[attr-defined]

    asyncio.run(consume())
    flat = [t for _, b, _ in got for t in b]
    assert flat == list(islice(feed.ticks(START_MS), len(flat)))
    assert clock.sleeps, "a 50 ticks/s feed must wait for its ticks"
    for k, (now, batch, _) in enumerate(got):
        assert batch, "never an empty batch"
        assert all(t.ts <= now for t in batch)
        if k + 1 < len(got):
            assert got[k + 1][1][0].ts > now, "a due tick was held back"
    # Every sleep ends at (or, below the 1 ms floor, just past) the next tick's time.
    due = [t.ts for t in flat]
    for before, seconds in clock.sleeps:
        nxt = due[bisect_right(due, before)]
        assert seconds > 0
        assert before + seconds * 1000 >= nxt - 1e-3
        assert before + seconds * 1000 <= max(nxt, before + 1.0) + 1e-3


def test_batches_catch_up_in_bounded_pieces() -> None:
    clock = FakeClock(START_MS)
    feed = SimulatedFeed(STOCKS, PARAMS, 50.0, seed=5, clock=clock)
    sizes: list[int] = []
    flat: list[Tick] = []

    async def consume() -> None:
        gen = feed.batches()
        async for batch in gen:
            if not sizes:
                clock.now += 1000 * 1000.0  # the consumer stalls 1000 s: ~50k ticks fall due
            sizes.append(len(batch))
            flat.extend(batch)
            if len(sizes) == 5:
                break
        await gen.aclose()  # type: ignore[attr-defined]

    asyncio.run(consume())
    assert sizes[1:] == [MAX_BATCH] * 4
    assert flat == list(islice(feed.ticks(START_MS), len(flat)))


def _ticks_of(feed: SimulatedFeed, n: int) -> Iterator[Tick]:
    return islice(feed.ticks(START_MS), n)


def test_synthetic_universe() -> None:
    specs = synthetic_universe(500, seed=9)
    assert len(specs) == 500
    assert len({s.symbol for s in specs}) == 500
    assert [s.symbol for s in specs[:2]] == ["S0001", "S0002"]
    assert specs[-1].symbol == "S0500"
    assert len({s.sector for s in specs}) == 10
    for s in specs:
        assert 10 <= s.price <= 500
        assert s.price == round(s.price, 2)
        assert 0.15 <= s.volatility <= 0.6
        assert 0.5 <= s.activity <= 3
    assert synthetic_universe(500, seed=9) == specs
    assert synthetic_universe(500, seed=10) != specs
    assert len(synthetic_universe(1, seed=9)) == 1
    with pytest.raises(ValueError, match="n must be >= 1"):
        synthetic_universe(0, seed=9)
    feed = SimulatedFeed(specs, PARAMS, 1000.0, seed=9)
    assert len({t.symbol for t in _ticks_of(feed, 20_000)}) > 450
