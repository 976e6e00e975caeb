"""The dashboard over its fallback transports, in a real browser against a real server: a server
that refuses WebSockets gets SSE, one that serves neither gets long polling, ``?transport=poll``
forces polling. Whatever the transport, the charts and the watchlist stream, the indicator names
the transport, and the store sees no duplicate and no gap.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.servers import UNIT, make_config, running_server
from tests.test_dashboard_e2e import (
    ARTIFACTS,
    MS,
    TICK_RATE,
    Problems,
    chromium,
    debug,
    points,
    wait_points,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched

# What a refused transport, or a stream closed to reopen it, leaves in the console: expected
# here, and nothing else is.
EXPECTED = re.compile(r"WebSocket connection to .* failed|HTTP 404: \S+/sse\?"
                      r"|EventSource's response has a MIME type|Failed to load resource"
                      r"|request failed: \S+/sse\?\S+ net::ERR_ABORTED")

# Counts the EventSources the page opens and, when asked, swallows one tick of a symbol from an
# SSE "ticks" event, as a buggy proxy would: the page must notice the gap and fill it.
SSE_TAP = """(() => {
    const Native = window.EventSource;
    window.__sources = 0;
    window.__drop = null;
    window.EventSource = class extends Native {
        constructor(...args) { super(...args); window.__sources += 1; }
        addEventListener(type, listener, options) {
            if (type !== 'ticks') return super.addEventListener(type, listener, options);
            return super.addEventListener(type, (event) => {
                const message = JSON.parse(event.data);
                const i = window.__drop ? message.ticks.findIndex(t => t.symbol === window.__drop)
                                        : -1;
                if (i < 0) return listener(event);
                window.__dropped = message.ticks.splice(i, 1)[0];
                window.__drop = null;
                if (message.ticks.length) listener({data: JSON.stringify(message)});
            }, options);
        }
    };
})()"""


@contextlib.contextmanager
def dashboard(browser: Browser, base_url: str, path: str) -> Iterator[tuple[Page, Problems]]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(SSE_TAP)
    page = context.new_page()
    page.set_default_timeout(10 * MS)
    problems = Problems(page, base_url)
    try:
        page.goto(base_url + path)
        page.wait_for_function("window.tickerDebug && tickerDebug.state === 'connected'")
        yield page, problems
    finally:
        context.close()


def check_streaming(page: Page, symbols: list[str]) -> None:
    """Charts grow, watchlist prices move, and the store kept every seq exact."""
    for symbol in symbols:
        page.wait_for_function(f"tickerDebug.charts.{symbol}?.state === 'live'")
        wait_points(page, symbol, 3)
    counts = {symbol: points(page, symbol) for symbol in symbols}
    prices = page.locator(".wl td.last").evaluate_all("cells => cells.map(c => c.textContent)")
    for symbol in symbols:
        wait_points(page, symbol, counts[symbol] + 5)
    page.wait_for_function("""before => [...document.querySelectorAll('.wl td.last')]
                              .filter((td, i) => td.textContent !== before[i]).length >= 5""",
                           arg=prices)
    assert debug(page, "duplicates") == 0 and debug(page, "gaps") == 0
    for symbol in symbols:
        assert debug(page, f"charts.{symbol}.seqGaps") == 0


def unexpected(problems: Problems) -> list[str]:
    return [item for item in problems.items if not EXPECTED.search(item)]


def test_without_websocket_the_page_falls_back_to_sse(browser: Browser) -> None:
    config = make_config(**{"feed.tick_rate": TICK_RATE, "server.transports": ["sse", "poll"]})
    with running_server(config) as server, dashboard(
            browser, server.http_url, "/?symbols=NVDA,AAPL&window=1m") as (page, problems):
        assert debug(page, "transport") == "sse"
        assert page.locator(".conn-label").inner_text() == "live"
        assert page.locator(".conn-via").inner_text() == "SSE"
        assert page.locator(".rtt").inner_text() == "\u2014"  # nothing to ping over SSE
        check_streaming(page, ["NVDA", "AAPL"])
        assert page.evaluate("window.__sources") == 1
        page.screenshot(path=str(ARTIFACTS / "dashboard-sse.png"))

        # A tick lost on the way: the page resubscribes, which over SSE means a new stream; its
        # snapshot fills the hole, and no chart is redrawn from scratch.
        reloads = debug(page, "charts.NVDA.reloads")
        page.evaluate("window.__drop = 'NVDA'")
        page.wait_for_function("tickerDebug.gaps === 1 && window.__sources === 2")
        dropped = page.evaluate("window.__dropped.seq")
        page.wait_for_function(f"tickerDebug.charts.NVDA.lastSeq > {dropped + 10}")
        recent = [t["seq"] for t in debug(page, "recent('NVDA')")]
        assert recent == list(range(recent[0], recent[0] + len(recent)))
        assert dropped in recent
        assert debug(page, "counts.continued") >= 2  # every symbol's snapshot merged
        assert debug(page, "duplicates") == 0
        assert debug(page, "charts.NVDA.seqGaps") == 0
        assert debug(page, "charts.NVDA.reloads") == reloads
        assert unexpected(problems) == []


def test_without_websocket_or_sse_the_page_long_polls(browser: Browser) -> None:
    config = make_config(**{"feed.tick_rate": TICK_RATE, "server.transports": ["poll"]})
    with running_server(config) as server, dashboard(
            browser, server.http_url, "/?symbols=TSLA,JPM&window=1m") as (page, problems):
        assert debug(page, "transport") == "poll"
        assert page.locator(".conn-via").inner_text() == "polling"
        check_streaming(page, ["TSLA", "JPM"])
        assert re.fullmatch(r"[\d.]+ ms", page.locator(".rtt").inner_text())
        assert page.locator(".feed").inner_text().lower() == "simulated"
        page.screenshot(path=str(ARTIFACTS / "dashboard-poll.png"))
        assert unexpected(problems) == []


def test_transport_in_the_url_forces_long_polling(browser: Browser) -> None:
    with running_server(make_config(**{"feed.tick_rate": TICK_RATE})) as server:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        try:
            page = context.new_page()
            page.set_default_timeout(10 * MS)
            sockets: list[str] = []
            page.on("websocket", lambda ws: sockets.append(ws.url))
            problems = Problems(page, server.http_url)
            page.goto(f"{server.http_url}/?symbols=MSFT&transport=poll")
            page.wait_for_function("window.tickerDebug && tickerDebug.state === 'connected'")
            assert debug(page, "transport") == "poll"
            check_streaming(page, ["MSFT"])
            assert sockets == []
            assert "transport=poll" in page.url  # kept when the page rewrites its URL
            assert problems.items == []
        finally:
            context.close()


def test_a_restarted_server_over_sse_reconnects_and_continues(browser: Browser) -> None:
    config = make_config(**{"feed.tick_rate": TICK_RATE, "server.transports": ["sse", "poll"]})
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    try:
        page = context.new_page()
        page.set_default_timeout(15 * MS)
        with running_server(config) as first:
            port = first.port
            page.goto(f"{first.http_url}/?symbols=NVDA&window=1m")
            page.wait_for_function("tickerDebug.state === 'connected' && "
                                   "tickerDebug.charts.NVDA?.state === 'live'")
            assert debug(page, "transport") == "sse"
            old_epoch = debug(page, "epoch")
        page.wait_for_function("tickerDebug.state === 'reconnecting'")
        assert page.locator(".conn-label").inner_text().startswith("reconnecting")
        time.sleep(0.5 * UNIT)
        with running_server(config, port=port):
            page.wait_for_function(f"tickerDebug.state === 'connected' && "
                                   f"tickerDebug.epoch !== {old_epoch!r}")
            assert debug(page, "transport") == "sse"
            page.wait_for_function("tickerDebug.charts.NVDA.state === 'live' && "
                                   "tickerDebug.lastSeq.NVDA > 10")
            wait_points(page, "NVDA", points(page, "NVDA") + 5)
            assert page.locator(".conn-label").inner_text() == "live"
            assert debug(page, "reconnects") >= 1
            assert debug(page, "duplicates") == 0 and debug(page, "gaps") == 0
            assert debug(page, "charts.NVDA.seqGaps") == 0
    finally:
        context.close()
