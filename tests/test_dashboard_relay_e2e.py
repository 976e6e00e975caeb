"""The dashboard of a relay node, in a real browser: B (`--feed ticker:ws://A/ws`) serves the page,
A (the simulated market) is upstream, both real `ticker serve` processes. The page must say where
its data comes from (the feed badge), show A's symbols with A's names and prices, and chart them.
Saves /tmp/dashboard-relay.png (look at it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.processes import ticker_node, wait_ready
from tests.servers import UNIT, make_config, running_server
from tests.test_dashboard_e2e import chromium, debug, open_page, wait_points

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

SCREENSHOT = Path("/tmp/dashboard-relay.png")
PRICE = r"^[\d,]+\.\d\d$"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(A's URL, B's URL): B relays A."""
    cwd = tmp_path_factory.mktemp("relay")
    with ticker_node("--tick-rate", "300", "--seed", "7", cwd=cwd) as (_, upstream), \
            ticker_node("--feed", f"ticker:ws://127.0.0.1:{upstream}/ws", cwd=cwd) as (_, port):
        wait_ready(port)
        yield f"http://127.0.0.1:{upstream}", f"http://127.0.0.1:{port}"


def badge(page: Page) -> dict[str, Any]:
    """The feed badge once the page has drawn it from the hello (its status bar redraws every
    250 ms)."""
    page.wait_for_function("document.querySelector('.feed').textContent.trim() !== ''")
    return dict(page.locator(".feed").evaluate(
        "e => ({text: e.textContent, kind: e.dataset.kind, title: e.title})"))


def test_the_dashboard_of_a_relay_shows_the_upstream_s_market_and_says_relay(
        browser: Browser, relay: tuple[str, str]) -> None:
    upstream, node = relay
    rows = httpx.get(f"{upstream}/api/symbols", timeout=5 * UNIT).json()
    epoch = httpx.get(f"{upstream}/readyz", timeout=5 * UNIT).json()["epoch"]
    symbols = [row["symbol"] for row in rows]
    assert {"AAPL", "MSFT"} <= set(symbols)
    with open_page(browser, node, "/?symbols=AAPL,MSFT&window=1m") as (page, problems):
        shown = badge(page)
        assert shown["text"].strip().lower() == "relay", shown
        assert shown["kind"] == "live", shown
        assert shown["title"], shown
        assert debug(page, "epoch") == epoch, "the relay passes the upstream's epoch on"

        # The watchlist: A's symbols in A's order, each titled with A's company name.
        watchlist = page.locator(".wl tbody tr")
        assert watchlist.evaluate_all("rows => rows.map(r => r.dataset.symbol)") == symbols
        page.wait_for_function("""n => [...document.querySelectorAll('.wl tbody tr')]
                                  .filter(r => r.title.includes(' \u00B7 ')).length === n""",
                               arg=len(symbols))
        titles = watchlist.evaluate_all("rows => rows.map(r => r.title)")
        assert titles == [f"{row['symbol']} \u00B7 {row['name']}" for row in rows]
        assert all(row["name"] for row in rows)
        page.wait_for_function("""() => [...document.querySelectorAll('.wl td.last')]
                                  .every(td => /^[\\d,]+\\.\\d\\d$/.test(td.textContent))""")
        for price in watchlist.locator("td.last").all_inner_texts():
            assert re.match(PRICE, price), price

        # The charts draw the relayed ticks, and the line grows.
        assert page.locator(".chart").evaluate_all("c => c.map(e => e.dataset.symbol)") == [
            "AAPL", "MSFT"]
        for symbol in ("AAPL", "MSFT"):
            wait_points(page, symbol, 20)
        assert debug(page, "duplicates") == 0 and debug(page, "gaps") == 0
        assert page.locator(".conn").get_attribute("data-state") == "connected"
        page.screenshot(path=str(SCREENSHOT))
        assert SCREENSHOT.stat().st_size > 30_000
        assert problems.items == []


def test_the_badge_of_the_simulated_market_says_simulated(browser: Browser) -> None:
    with running_server(make_config()) as server, \
            open_page(browser, server.http_url, "/?symbols=AAPL") as (page, problems):
        shown = badge(page)
        assert shown["text"].strip().lower() == "simulated", shown
        assert shown["kind"] == "simulated", shown
        assert problems.items == []
