"""REST endpoints and static files, over real HTTP against a real server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.servers import RunningServer, make_config, running_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with running_server(make_config()) as running:
        time.sleep(1.2)  # let every symbol trade and a few 1 s bars close
        yield running


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, timeout=5) as client:
        yield client


def test_symbols_lists_every_symbol_with_price_and_change(http: httpx.Client) -> None:
    response = http.get("/api/symbols")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    symbols = response.json()
    assert len(symbols) == 22
    for row in symbols:
        assert {"symbol", "price", "open", "change", "change_pct", "seq"} <= set(row)
    aapl = next(row for row in symbols if row["symbol"] == "AAPL")
    assert aapl["seq"] > 0
    assert aapl["change"] == pytest.approx(aapl["price"] - aapl["open"], abs=0.005)
    assert aapl["change_pct"] == pytest.approx(100 * aapl["change"] / aapl["open"], abs=0.01)


def test_bars_are_ohlcv_in_time_order(http: httpx.Client) -> None:
    body = http.get("/api/bars", params={"symbol": "aapl", "interval": "1s", "limit": 5}).json()
    assert body["symbol"] == "AAPL"
    assert body["interval"] == "1s"
    bars = body["bars"]
    assert 1 <= len(bars) <= 5
    starts = [bar["start"] for bar in bars]
    assert starts == sorted(starts)
    assert all(start % 1000 == 0 for start in starts)
    for bar in bars:
        assert bar["low"] <= min(bar["open"], bar["close"])
        assert bar["high"] >= max(bar["open"], bar["close"])
        assert bar["volume"] > 0
        assert bar["volume"] % 100 == 0
    assert body["seq"] > 0
    everything = http.get("/api/bars", params={"symbol": "AAPL", "limit": 10**9})
    assert everything.status_code == 200
    assert len(everything.json()["bars"]) >= len(bars)
    minute = http.get("/api/bars", params={"symbol": "AAPL", "interval": "1m"}).json()["bars"]
    assert minute
    assert minute[-1]["start"] % 60_000 == 0
    assert sum(b["volume"] for b in minute) >= sum(b["volume"] for b in bars)


@pytest.mark.parametrize(("params", "status", "code"), [
    ({}, 400, "bad_request"),
    ({"symbol": "ZZZZ"}, 404, "unknown_symbol"),
    ({"symbol": "AAPL", "interval": "3s"}, 400, "bad_request"),
    ({"symbol": "AAPL", "limit": "abc"}, 400, "bad_request"),
    ({"symbol": "AAPL", "limit": "0"}, 400, "bad_request"),
    ({"symbol": "AAPL", "limit": "-5"}, 400, "bad_request"),
    ({"symbol": "AAPL", "colour": "red"}, 400, "bad_request"),
])
def test_bad_bar_requests_get_a_json_4xx(http: httpx.Client, params: dict[str, str],
                                         status: int, code: str) -> None:
    response = http.get("/api/bars", params=params)
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error"
    assert body["code"] == code
    assert body["message"]


def test_health_and_readiness(http: httpx.Client, server: RunningServer) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["epoch"] == server.node.hub.epoch


def test_the_page_and_plotly_are_served_locally(http: httpx.Client) -> None:
    page = http.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "<html" in page.text
    plotly = http.get("/vendor/plotly.min.js")
    assert plotly.status_code == 200
    assert "javascript" in plotly.headers["content-type"]
    assert len(plotly.content) > 1_000_000
    assert b"plotly" in plotly.content[:2000].lower()
    assert "max-age" in plotly.headers["cache-control"]
