"""Bars with trade counts and VWAP, closed by a clock, and folded into longer bars."""

from __future__ import annotations

import pytest

from ticker.bars import DAY_MS, MINUTE_MS, BarSeries, TradeBar


def minute_series(*trades: tuple[float, float, int]) -> BarSeries:
    series = BarSeries(MINUTE_MS, keep=10)
    for ts, price, size in trades:
        series.add(ts, price, size)
    return series


def test_a_bar_counts_its_trades_and_weighs_its_average_price_by_volume() -> None:
    series = minute_series((1_000.0, 10.0, 100), (2_000.0, 12.0, 300), (59_999.0, 11.0, 100))
    bar = series.newest()
    assert bar == TradeBar(start=0, open=10.0, high=12.0, low=10.0, close=11.0, volume=500,
                           trades=3, vwap=pytest.approx((1000 + 3600 + 1100) / 500))
    # /api/bars keeps its shape: no trade count or VWAP there.
    assert series.last(1) == [{"start": 0, "open": 10.0, "high": 12.0, "low": 10.0,
                               "close": 11.0, "volume": 500}]


def test_closed_gives_the_bars_a_clock_has_finished_since_it_last_looked() -> None:
    series = minute_series((1_000.0, 10.0, 100), (61_000.0, 11.0, 100), (181_000.0, 12.0, 100))
    assert [bar.start for bar in series.closed(-1, 60_000)] == [0]
    assert [bar.start for bar in series.closed(-1, 180_000)] == [0, 60_000]
    # After looking at minute 0, only later ones; the forming bar at 180 s is never "closed".
    assert [bar.start for bar in series.closed(0, 180_000)] == [60_000]
    assert [bar.start for bar in series.closed(60_000, 240_000)] == [180_000]
    assert series.closed(180_000, 10**9) == []


def test_minute_bars_merge_into_a_day_that_equals_their_sum() -> None:
    minutes = minute_series((1_000.0, 10.0, 100), (30_000.0, 9.0, 100), (61_000.0, 13.0, 200),
                            (125_000.0, 11.0, 100))
    day = BarSeries(DAY_MS, keep=1)
    for bar in minutes.closed(-1, 180_000):
        day.merge(bar)
    assert day.newest() == TradeBar(start=0, open=10.0, high=13.0, low=9.0, close=11.0,
                                    volume=500, trades=4,
                                    vwap=pytest.approx((1000 + 900 + 2600 + 1100) / 500))
    # A bar of the next day starts a new day bar.
    day.merge(TradeBar(DAY_MS + 60_000, 20.0, 20.0, 20.0, 20.0, 10, 1, 20.0))
    assert day.newest() == TradeBar(DAY_MS, 20.0, 20.0, 20.0, 20.0, 10, 1, 20.0)


def test_a_series_keeps_its_last_bars_through_many_wraps_of_its_ring() -> None:
    series = BarSeries(1_000, keep=4)
    for second in range(23):
        series.add(second * 1_000 + 10, 100.0 + second, 100)
        series.add(second * 1_000 + 20, 99.0 + second, 200)
    assert len(series) == 4
    bars = series.last(10)
    assert [b["start"] for b in bars] == [19_000, 20_000, 21_000, 22_000]
    assert bars[0] == {"start": 19_000, "open": 119.0, "high": 119.0, "low": 118.0,
                       "close": 118.0, "volume": 300}
    assert [b["start"] for b in series.last(2)] == [21_000, 22_000]
    assert series.last(0) == []
    # The forming bar (22 s) is not closed until the clock passes its end.
    assert [b.start for b in series.closed(19_000, 22_500)] == [20_000, 21_000]
    assert [b.start for b in series.closed(0, 23_000)] == [19_000, 20_000, 21_000, 22_000]
