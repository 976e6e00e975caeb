"""The simulated market's walk: the compiled one (feeds/_market_walk.c) and the Python one
(feeds/market_walk.py) give the same ticks bit for bit, whatever the market; the compiled ticks are
real Ticks; bad input is an error, not a crash; nothing leaks."""

from __future__ import annotations

import dataclasses
import gc
import os
import random
import sys
from itertools import islice

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds import simulated
from feeds.market import MarketParams, StockSpec
from feeds.market_walk import Model, micro_ms, walk_in_python
from feeds.simulated import SimulatedFeed, synthetic_universe
from ticker.model import Tick

compiled = simulated.compiled_walk
needs_compiled = pytest.mark.skipif(compiled is None, reason="feeds/_market_walk.c not built")
START_MS = 1_700_000_000_000.0
CALM = MarketParams(market_share=0.3, sector_share=0.2, vol_halflife=600.0, vol_of_vol=0.3,
                    jumps_per_day=1.0, jump_size=0.005, spread_bps=0.5)


def test_the_compiled_walk_is_built_where_the_tools_are() -> None:
    if compiled is None:
        message = "feeds/_market_walk.c was not compiled (hatch_build.py): the walk runs in Python"
        if os.environ.get("TICKER_REQUIRE_ALL_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def both_walks(feed: SimulatedFeed, count: int,
               monkeypatch: pytest.MonkeyPatch) -> tuple[list[Tick], list[Tick]]:
    with monkeypatch.context() as patch:
        patch.delenv(simulated.PYTHON_WALK_ENV, raising=False)
        fast = list(islice(feed.ticks(START_MS), count))
        patch.setenv(simulated.PYTHON_WALK_ENV, "1")
        slow = list(islice(feed.ticks(START_MS), count))
    return fast, slow


@needs_compiled
@pytest.mark.parametrize("params", [
    CALM,
    # News all day long: the jump loop runs often, several jumps per tick at times.
    MarketParams(market_share=0.5, sector_share=0.3, vol_halflife=30.0, vol_of_vol=1.5,
                 jumps_per_day=5000.0, jump_size=0.05, spread_bps=40.0),
    # No shared factors, no jumps, constant volatility, spreads under a cent.
    MarketParams(market_share=0.0, sector_share=0.0, vol_halflife=600.0, vol_of_vol=0.0,
                 jumps_per_day=0.0, jump_size=0.0, spread_bps=0.01),
], ids=["calm", "stormy", "flat"])
def test_compiled_and_python_walks_give_the_same_ticks(params: MarketParams,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    feed = SimulatedFeed(synthetic_universe(100, 3), params, tick_rate=2000.0, seed=11)
    fast, slow = both_walks(feed, 50_000, monkeypatch)
    assert fast == slow
    # Equal as floats is not enough: the wire carries their shortest repr.
    assert orjson.dumps([dataclasses.astuple(t) for t in fast[-1000:]]) == \
        orjson.dumps([dataclasses.astuple(t) for t in slow[-1000:]])
    assert len({t.symbol for t in fast}) == 100


@needs_compiled
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**64), stocks=st.integers(1, 12), rate=st.floats(0.01, 1e5),
       price=st.floats(0.01, 100_000.0), jumps=st.floats(0.0, 1e4),
       spread=st.floats(0.001, 500.0), halflife=st.floats(1.0, 1e6))
def test_the_walks_agree_on_any_market(seed: int, stocks: int, rate: float, price: float,
                                       jumps: float, spread: float, halflife: float) -> None:
    specs = [StockSpec(f"X{k}", f"Stock {k}", f"Sector {k % 3}", price * (k + 1), 0.3, 1.0 + k)
             for k in range(stocks)]
    params = MarketParams(market_share=0.3, sector_share=0.2, vol_halflife=halflife,
                          vol_of_vol=0.4, jumps_per_day=jumps, jump_size=0.01, spread_bps=spread)
    feed = SimulatedFeed(specs, params, tick_rate=rate, seed=seed)
    with pytest.MonkeyPatch.context() as patch:
        fast, slow = both_walks(feed, 2_000, patch)
    assert fast == slow


@needs_compiled
def test_compiled_ticks_are_ordinary_frozen_ticks() -> None:
    assert compiled is not None
    tick = next(SimulatedFeed(synthetic_universe(5, 1), CALM, 10.0, seed=2).ticks(START_MS))
    assert type(tick) is Tick
    assert tick == Tick(tick.symbol, tick.seq, tick.ts, tick.price, tick.size, tick.bid,
                        tick.ask)
    assert hash(tick) == hash(dataclasses.replace(tick))
    with pytest.raises(dataclasses.FrozenInstanceError):
        tick.price = 1.0  # type: ignore[misc]
    assert isinstance(tick.seq, int) and isinstance(tick.size, int)
    assert tick.bid <= tick.price <= tick.ask
    assert set(orjson.loads(orjson.dumps(tick))) == {"symbol", "seq", "ts", "price", "size",
                                                    "bid", "ask"}


def test_times_are_whole_microseconds_as_short_decimals() -> None:
    for ms in (START_MS + 0.0004999, START_MS + 123.4565, 1.5, 0.0):
        stamped = micro_ms(ms)
        assert abs(stamped - ms) <= 0.0005 + 1e-6
        assert len(repr(stamped).split(".")[1]) <= 3


def model_of(stocks: int = 3) -> Model:
    return SimulatedFeed(synthetic_universe(stocks, 1), CALM, 10.0, seed=1)._model()


@needs_compiled
def test_bad_models_are_errors_not_crashes() -> None:
    assert compiled is not None
    model = model_of()
    rng = random.Random(1).random
    with pytest.raises(ValueError, match="log_prices"):
        compiled(model._replace(log_prices=(1.0,)), rng, START_MS, Tick)
    with pytest.raises(ValueError, match="sectors"):
        compiled(model._replace(sectors=(0, 0, 7)), rng, START_MS, Tick)
    with pytest.raises(ValueError, match="symbols"):
        compiled(model._replace(symbols=()), rng, START_MS, Tick)
    with pytest.raises(TypeError):
        compiled(model._replace(kappa="fast"), rng, START_MS, Tick)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="slot"):
        compiled(model, rng, START_MS, dict)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        compiled(model, rng, START_MS)  # type: ignore[call-arg]


@needs_compiled
def test_an_error_from_random_reaches_the_caller_and_the_walk_goes_on() -> None:
    assert compiled is not None
    source = random.Random(5)
    fail_at = {60}
    calls = 0

    def flaky() -> float:
        nonlocal calls
        calls += 1
        if calls in fail_at:
            raise RuntimeError("entropy ran out")
        return source.random()

    walk = compiled(model_of(), flaky, START_MS, Tick)
    got = [next(walk) for _ in range(3)]  # the start takes 7 draws, a tick 9 to 11 (no jump)
    assert all(isinstance(t, Tick) for t in got)
    with pytest.raises(RuntimeError, match="entropy"):
        list(islice(walk, 100))
    assert isinstance(next(walk), Tick)


@needs_compiled
def test_the_compiled_walk_leaks_nothing() -> None:
    assert compiled is not None
    model = model_of(4)
    symbol = model.symbols[0]

    def run() -> None:
        walk = compiled(model, random.Random(3).random, START_MS, Tick)
        ticks = list(islice(walk, 20_000))
        assert {t.symbol for t in ticks} == set(model.symbols)

    run()
    gc.collect()
    before = sys.getrefcount(symbol), sys.getrefcount(Tick), sys.getrefcount(model.log_prices)
    for _ in range(3):
        run()
    gc.collect()
    assert (sys.getrefcount(symbol), sys.getrefcount(Tick),
            sys.getrefcount(model.log_prices)) == before


def test_the_python_walk_is_the_one_the_feed_uses_without_the_c(
        monkeypatch: pytest.MonkeyPatch) -> None:
    feed = SimulatedFeed(synthetic_universe(10, 2), CALM, 50.0, seed=9)
    monkeypatch.setattr(simulated, "compiled_walk", None)
    ticks = list(islice(feed.ticks(START_MS), 500))
    assert ticks == list(islice(walk_in_python(feed._model(), random.Random(9).random, START_MS),
                                500))
    assert all(t.bid <= t.price <= t.ask for t in ticks)
