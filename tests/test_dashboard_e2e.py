"""The dashboard in a real browser (Debian's headless chromium, Playwright) against a real server.

Every test reads the page the way a user would (DOM, URL) or through ``window.tickerDebug``, the
page's read-only view of its own state (per-symbol seqs, duplicates, gaps, chart point counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response, sync_playwright

from tests.servers import UNIT, RunningServer, make_config, running_server

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TICK_RATE = 300.0
MS = 1000 * UNIT  # Playwright waits are in milliseconds


# -- fixtures -------------------------------------------------------------------------------------


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's headless chromium (skips the test where it is missing); the other dashboard test
    modules launch theirs through this too."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("TICKER_REQUIRE_ALL_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    # A fast stream can keep page.screenshot() waiting for fonts forever.
    os.environ["PW_TEST_SCREENSHOT_NO_FONTS_READY"] = "1"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with running_server(make_config(**{"feed.tick_rate": TICK_RATE})) as running:
        yield running


class Problems:
    """Console errors and warnings, uncaught exceptions, failed and non-local requests of a page."""

    def __init__(self, page: Page, origin: str) -> None:
        self.items: list[str] = []
        self.origin = origin
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.items.append(f"page error: {error}"))
        page.on("requestfailed", self._failed)
        page.on("request", self._request)
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.items.append(f"console.{message.type}: {message.text}")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.items.append(f"HTTP {response.status}: {response.url}")

    def _failed(self, request: Request) -> None:
        self.items.append(f"request failed: {request.url} {request.failure}")

    def _request(self, request: Request) -> None:
        if not request.url.startswith((self.origin, "ws://" + self.origin.split("//")[1], "data:")):
            self.items.append(f"request outside the server (CDN?): {request.url}")


@contextlib.contextmanager
def open_page(browser: Browser, base_url: str, path: str = "/") -> Iterator[tuple[Page, Problems]]:
    """A fresh laptop-sized page (own cookies, storage, cache) at ``path``, once connected."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(10 * MS)
    problems = Problems(page, base_url)
    try:
        page.goto(base_url + path)
        page.wait_for_function("window.tickerDebug && tickerDebug.state === 'connected'")
        yield page, problems
    finally:
        context.close()


def debug(page: Page, expression: str) -> Any:
    return page.evaluate(f"() => tickerDebug.{expression}")


def points(page: Page, symbol: str) -> int:
    return int(page.evaluate(
        "s => document.querySelector(`.chart[data-symbol='${s}'] .plot`).data?.[0].x.length ?? 0",
        symbol))


def wait_points(page: Page, symbol: str, more_than: int) -> None:
    page.wait_for_function(
        "([s, n]) => (document.querySelector(`.chart[data-symbol='${s}'] .plot`).data?.[0].x.length"
        " ?? 0) > n", arg=[symbol, more_than])


def url_query(page: Page) -> dict[str, str]:
    return dict(page.evaluate("() => Object.fromEntries(new URLSearchParams(location.search))"))


# -- loading, watchlist ---------------------------------------------------------------------------


def test_page_loads_clean_and_the_watchlist_streams_every_symbol(
        browser: Browser, server: RunningServer) -> None:
    symbols = [info.symbol for info in server.node.hub.symbols]
    assert len(symbols) == 22
    with open_page(browser, server.http_url) as (page, problems):
        rows = page.locator(".wl tbody tr")
        assert rows.evaluate_all("rows => rows.map(r => r.dataset.symbol)") == symbols
        # Every row gets a price, then prices move.
        page.wait_for_function("""() => [...document.querySelectorAll('.wl td.last')]
                                  .every(td => /^[\\d,]+\\.\\d\\d$/.test(td.textContent))""")
        before = rows.evaluate_all("rows => rows.map(r => r.querySelector('.last').textContent)")
        page.wait_for_function("""before => [...document.querySelectorAll('.wl td.last')]
                                  .filter((td, i) => td.textContent !== before[i]).length >= 5""",
                               arg=before)
        # Change since the open: an arrow beside the number, and a colour class on the row.
        page.wait_for_function("""() => [...document.querySelectorAll('.wl tbody tr')]
                                  .some(r => r.dataset.dir === 'up' || r.dataset.dir === 'down')""")
        moved = page.locator(".wl tbody tr[data-dir=up], .wl tbody tr[data-dir=down]").first
        assert re.match(r"^[▲▼] [+-]\d", moved.locator(".chg").inner_text())
        # The default selection is four charts, written into the URL so that a link reproduces it.
        assert url_query(page)["symbols"] == "AAPL,MSFT,NVDA,TSLA"
        assert page.locator(".chart").count() == 4
        assert page.locator(".conn").get_attribute("data-state") == "connected"
        time.sleep(0.5)  # streaming a while: errors from live updates show up too
        assert debug(page, "duplicates") == 0 and debug(page, "gaps") == 0
        assert problems.items == []


# -- add / remove, URL ----------------------------------------------------------------------------


def test_search_adds_a_live_chart_and_remove_takes_it_out_of_the_url(
        browser: Browser, server: RunningServer) -> None:
    with open_page(browser, server.http_url, "/?symbols=AAPL&window=1m") as (page, problems):
        search = page.locator("#search")
        search.fill("jpm")
        option = page.locator("#suggestions [role=option]").first
        assert option.inner_text().split() == ["JPM", "JPMorgan", "Chase"]
        search.fill("morgan")  # the company name matches too
        first_option = page.locator("#suggestions [role=option]").first
        assert first_option.get_attribute("data-symbol") == "JPM"
        search.press("Enter")
        chart = page.locator(".chart[data-symbol=JPM]")
        chart.wait_for()
        assert url_query(page)["symbols"] == "AAPL,JPM"
        wait_points(page, "JPM", 0)
        first = points(page, "JPM")
        wait_points(page, "JPM", first + 5)  # the line grows as ticks arrive
        chart.locator("button.remove").click()
        assert page.locator(".chart[data-symbol=JPM]").count() == 0
        assert url_query(page)["symbols"] == "AAPL"
        assert "JPM" not in debug(page, "charts")
        assert problems.items == []


def test_a_link_reproduces_the_candlestick_view(browser: Browser, server: RunningServer) -> None:
    path = "/?symbols=MSFT,JPM&view=candles&interval=5s"
    with open_page(browser, server.http_url, path) as (page, problems):
        assert page.locator(".chart").evaluate_all("c => c.map(e => e.dataset.symbol)") == [
            "MSFT", "JPM"]
        pressed = page.locator(".seg button[aria-pressed=true]").evaluate_all(
            "b => b.map(e => e.closest('.seg').dataset.setting + '=' + e.dataset.value)")
        assert pressed == ["view=candles", "interval=5s", "window=5m"]
        for symbol in ("MSFT", "JPM"):
            wait_points(page, symbol, 0)
            figure = page.evaluate(
                """s => { const gd = document.querySelector(`.chart[data-symbol='${s}'] .plot`);
                          return {types: gd.data.map(t => t.type), x: gd.data[0].x,
                                  close: gd.data[0].close, volume: gd.data[1].y,
                                  xaxis: gd.layout.xaxis.type}; }""", symbol)
            assert figure["types"] == ["candlestick", "bar"]
            assert figure["xaxis"] == "date"
            assert len(figure["x"]) >= 1 and len(figure["close"]) == len(figure["x"])
            assert len(figure["volume"]) == len(figure["x"]) and sum(figure["volume"]) > 0
            assert all(x % 5000 == 0 for x in figure["x"]), "bars start on 5 s boundaries"
        # The forming candle changes in place: its volume grows, the count barely moves.
        last_volume = "() => { const d = document.querySelector('.chart .plot').data; " \
                      "return [d[1].y.length, d[1].y[d[1].y.length - 1]]; }"
        count, volume = page.evaluate(last_volume)
        page.wait_for_function(f"([n, v]) => String(({last_volume})()) !== String([n, v])",
                               arg=[count, volume])
        assert page.evaluate(last_volume)[0] <= count + 1
        assert problems.items == []


# -- reconnect ------------------------------------------------------------------------------------


def test_a_restarted_server_is_a_new_run_and_the_page_starts_over(browser: Browser) -> None:
    config = make_config(**{"feed.tick_rate": TICK_RATE})
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    try:
        page = context.new_page()
        page.set_default_timeout(15 * MS)
        with running_server(config) as first:
            port = first.port
            page.goto(f"{first.http_url}/?symbols=NVDA&window=1m")
            page.wait_for_function("tickerDebug.state === 'connected' && "
                                   "tickerDebug.lastSeq.NVDA > 20")
            old_epoch = debug(page, "epoch")
        # Stopped: the page counts down to its next attempt, and keeps counting while refused.
        label = page.locator(".conn-label")
        page.wait_for_function("""() => /^reconnecting in \\d+\\.\\d s$/
                                  .test(document.querySelector('.conn-label').textContent)""")
        assert page.locator(".conn").get_attribute("data-state") == "reconnecting"
        time.sleep(1.0 * UNIT)
        assert label.inner_text().startswith("reconnecting")
        with running_server(config, port=port):
            page.wait_for_function(f"tickerDebug.state === 'connected' && "
                                   f"tickerDebug.epoch !== {old_epoch!r}")
            # A new run starts again at seq 1: everything held was dropped, nothing is a duplicate.
            page.wait_for_function("tickerDebug.lastSeq.NVDA > 30 && "
                                   "tickerDebug.charts.NVDA.state === 'live'")
            seq = debug(page, "lastSeq.NVDA")
            page.wait_for_function(f"tickerDebug.lastSeq.NVDA > {seq + 20}")
            assert label.inner_text() == "live"
            # The hello named a new epoch: the page dropped the old run and subscribed afresh,
            # rather than asking to resume seqs of a run that no longer exists.
            assert debug(page, "counts.resets") == 0
            assert debug(page, "counts.resumed") == 0
            assert debug(page, "duplicates") == 0
            assert debug(page, "gaps") == 0
            assert debug(page, "reconnects") >= 1
            chart = debug(page, "charts.NVDA")
            assert chart["seqGaps"] == 0 and chart["points"] > 0
            assert chart["lastSeq"] <= debug(page, "lastSeq.NVDA")
    finally:
        context.close()


class CuttableProxy:
    """A TCP relay between the page and the server, in its own thread, that the test can cut:
    every connection through it is reset at once, as when Wi-Fi drops, while the server runs on."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.refusing = False
        self._links: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proxy", daemon=True)
        self._thread.start()
        self._ready.wait(5 * UNIT)
        self.url = f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._links.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        self._links.discard(writer)
        writer.transport.abort()

    def cut(self, refuse_for: float) -> None:
        """Reset every connection, and refuse new ones for ``refuse_for`` seconds."""
        def cut() -> None:
            self.refusing = True
            for writer in list(self._links):
                writer.transport.abort()
            self._loop.call_later(refuse_for, setattr, self, "refusing", False)
        self._loop.call_soon_threadsafe(cut)

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            for writer in list(self._links):
                writer.transport.abort()
            await self._server.wait_closed()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5 * UNIT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5 * UNIT)
        self._loop.close()


def test_a_dropped_connection_resumes_with_no_gap_and_no_duplicate(
        browser: Browser, server: RunningServer) -> None:
    proxy = CuttableProxy(server.port)
    try:
        with open_page(browser, proxy.url, "/?symbols=NVDA&window=1m") as (page, _):
            page.wait_for_function("tickerDebug.charts.NVDA.state === 'live' && "
                                   "tickerDebug.lastSeq.NVDA > 0")
            wait_points(page, "NVDA", 10)
            before = page.evaluate("() => ({counts: tickerDebug.counts, chart: tickerDebug.charts."
                                   "NVDA, seq: tickerDebug.lastSeq.NVDA, reconnects: "
                                   "tickerDebug.reconnects})")
            proxy.cut(refuse_for=2.0 * UNIT)  # ~70 NVDA trades happen while the page is away
            page.wait_for_function("tickerDebug.state === 'reconnecting'")
            page.wait_for_function(f"tickerDebug.reconnects > {before['reconnects']} && "
                                   "tickerDebug.state === 'connected'")
            page.wait_for_function(f"tickerDebug.lastSeq.NVDA > {before['seq'] + 100}")
            page.wait_for_function("tickerDebug.charts.NVDA.pending === 0")
            after = page.evaluate("() => ({counts: tickerDebug.counts, chart: tickerDebug.charts."
                                  "NVDA, x: document.querySelector('.chart .plot').data[0].x})")
        counts, chart = after["counts"], after["chart"]
        # Resumed from the last seq held: the missed ticks came, not a snapshot.
        assert counts["resumed"] > before["counts"]["resumed"]
        assert counts["snapshots"] == before["counts"]["snapshots"]
        assert counts["resets"] == before["counts"]["resets"]
        assert counts["duplicates"] == 0 and counts["gaps"] == 0
        # The chart kept its data and drew every seq in order across the cut.
        assert chart["reloads"] == before["chart"]["reloads"]
        assert chart["seqGaps"] == 0
        x = after["x"]
        assert x == sorted(x)
        holes = [b - a for a, b in itertools.pairwise(x)]
        assert max(holes) < 1500, f"the line has a {max(holes):.0f} ms hole"
    finally:
        proxy.close()


# A tap on the page's WebSocket, installed before the app runs: records what the page sends and,
# when asked, swallows one tick of a symbol, as a buggy relay would.
TAP = """(() => {
    const Native = window.WebSocket;
    window.__sent = [];
    window.__drop = null;
    window.WebSocket = class extends Native {
        send(data) { window.__sent.push(JSON.parse(data)); super.send(data); }
        set onmessage(handler) {
            super.onmessage = (event) => {
                const message = JSON.parse(event.data);
                if (message.type === 'ticks' && window.__drop) {
                    const i = message.ticks.findIndex(t => t.symbol === window.__drop);
                    if (i >= 0) {
                        window.__dropped = message.ticks.splice(i, 1)[0];
                        window.__drop = null;
                        if (!message.ticks.length) return;
                    }
                }
                handler({data: JSON.stringify(message)});
            };
        }
    };
})()"""


def test_a_gap_resubscribes_with_resume_and_the_chart_never_sees_it(
        browser: Browser, server: RunningServer) -> None:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    try:
        context.add_init_script(TAP)
        page = context.new_page()
        page.set_default_timeout(10 * MS)
        page.goto(f"{server.http_url}/?symbols=NVDA&window=1m")
        page.wait_for_function("tickerDebug.charts.NVDA?.state === 'live'")
        wait_points(page, "NVDA", 10)
        resumed = debug(page, "counts.resumed")
        page.evaluate("() => { window.__sent.length = 0; window.__drop = 'NVDA'; }")
        page.wait_for_function("tickerDebug.gaps === 1")
        dropped = page.evaluate("() => window.__dropped.seq")
        page.wait_for_function(f"tickerDebug.lastSeq.NVDA > {dropped + 30}")
        sent = page.evaluate("() => window.__sent.filter(m => m.op !== 'ping')")
        assert sent == [
            {"op": "unsubscribe", "symbols": ["NVDA"]},
            {"op": "subscribe", "symbols": ["NVDA"],
             "resume": {"epoch": debug(page, "epoch"), "seqs": {"NVDA": dropped - 1}}},
        ]
        assert debug(page, "counts.resumed") == resumed + 1
        assert debug(page, "duplicates") == 0 and debug(page, "gaps") == 1
        chart = debug(page, "charts.NVDA")
        assert chart["seqGaps"] == 0 and chart["reloads"] == 1  # filled in, not redrawn
    finally:
        context.close()


# -- pause ----------------------------------------------------------------------------------------


def test_pause_freezes_the_charts_while_data_keeps_coming(
        browser: Browser, server: RunningServer) -> None:
    with open_page(browser, server.http_url, "/?symbols=NVDA,AAPL&window=1m") as (page, problems):
        wait_points(page, "NVDA", 10)
        page.locator("button.pause").click()
        assert page.locator(".paused-badge").is_visible()
        page.wait_for_timeout(200)  # a frame already under way may still draw
        frozen = points(page, "NVDA")
        taken = debug(page, "counts.taken")
        time.sleep(1.0)
        assert points(page, "NVDA") == frozen
        assert debug(page, "counts.taken") > taken + 100  # ~33 NVDA + the rest of 300/s
        waiting = debug(page, "charts.NVDA.pending")
        assert waiting > 10
        page.locator("button.pause").click()
        assert not page.locator(".paused-badge").is_visible()
        wait_points(page, "NVDA", frozen + waiting - 1)  # caught up: nothing was lost
        page.wait_for_function("tickerDebug.charts.NVDA.pending < 50")
        assert debug(page, "charts.NVDA.seqGaps") == 0
        assert problems.items == []


# -- hidden tab -----------------------------------------------------------------------------------

# Headless chromium never hides a page, so the test overrides what the page reads.
HIDE = """() => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
                 Object.defineProperty(document, 'visibilityState',
                                       {configurable: true, get: () => 'hidden'});
                 document.dispatchEvent(new Event('visibilitychange')); }"""
SHOW = """() => { delete document.hidden; delete document.visibilityState;
                 document.dispatchEvent(new Event('visibilitychange')); }"""


def test_a_hidden_tab_caps_what_waits_and_comes_back_from_a_fresh_snapshot(
        browser: Browser) -> None:
    # One busy symbol (~1500 trades/s) fills the cap in a few seconds.
    config = make_config(**{"feed.symbols": 1, "feed.tick_rate": 1500.0})
    with running_server(config) as server, open_page(
            browser, server.http_url, "/?symbols=S0001&window=1m") as (page, problems):
        page.wait_for_function("tickerDebug.charts.S0001?.state === 'live'")
        wait_points(page, "S0001", 10)
        cap = debug(page, "pendingCap")
        before = debug(page, "counts")
        reloads = debug(page, "charts.S0001.reloads")
        page.evaluate(HIDE)
        frozen = points(page, "S0001")
        peak = 0
        deadline = time.monotonic() + 15 * UNIT
        while debug(page, "charts.S0001.state") != "stale" and time.monotonic() < deadline:
            peak = max(peak, debug(page, "charts.S0001.pending"))
            time.sleep(0.1)
        # Past the cap the chart dropped what waited instead of growing.
        assert debug(page, "charts.S0001.state") == "stale"
        assert 0 < peak <= cap and debug(page, "charts.S0001.pending") == 0
        assert points(page, "S0001") == frozen
        page.evaluate(SHOW)
        page.wait_for_function("tickerDebug.charts.S0001.state === 'live' && "
                               f"tickerDebug.charts.S0001.reloads > {reloads}")
        wait_points(page, "S0001", 10)
        after = debug(page, "counts")
        # Unsubscribe + subscribe: one fresh snapshot, no resumed backlog.
        assert after["snapshots"] == before["snapshots"] + 1
        assert after["resumed"] == before["resumed"]
        assert after["duplicates"] == 0 and after["gaps"] == 0
        assert debug(page, "charts.S0001.seqGaps") == 0
        assert problems.items == []


# -- the look -------------------------------------------------------------------------------------


LAYOUT = """() => {
    const box = (s) => document.querySelector(s).getBoundingClientRect();
    const wl = box('.watchlist'), charts = box('.charts');
    return {overflow: document.documentElement.scrollWidth - innerWidth,
            theme: document.documentElement.dataset.theme,
            side: wl.right <= charts.left, stacked: wl.bottom <= charts.top,
            clipped: [...document.querySelectorAll('.wl td, .chart-head .px, .chart-head .chg')]
                .filter(e => e.scrollWidth > e.clientWidth + 1).length};
}"""


def test_screenshots_in_light_dark_and_on_a_phone(browser: Browser, server: RunningServer) -> None:
    """Saves tests/artifacts/dashboard{,-dark,-phone}.png (look at them) and checks what a
    screenshot cannot: nothing scrolls sideways, no number overflows its cell, the watchlist sits
    beside the charts on a laptop and above them on a phone, the theme follows the system."""
    ARTIFACTS.mkdir(exist_ok=True)
    with open_page(browser, server.http_url, "/?symbols=AAPL,NVDA,TSLA,JPM&window=1m") as (
            page, problems):
        wait_points(page, "AAPL", 20)
        time.sleep(3)  # about 5 s of data in all
        shots = [("dashboard", 1440, 900, "light"), ("dashboard-dark", 1440, 900, "dark"),
                 ("dashboard-phone", 390, 844, "light")]
        for name, width, height, scheme in shots:
            page.set_viewport_size({"width": width, "height": height})
            page.emulate_media(color_scheme="dark" if scheme == "dark" else "light")
            page.wait_for_function(f"document.documentElement.dataset.theme === '{scheme}'")
            page.wait_for_timeout(300)  # charts redrawn in the new size and colours
            layout = page.evaluate(LAYOUT)
            assert layout["overflow"] <= 0, f"{name}: the page scrolls sideways"
            assert layout["side"] if width > 1000 else layout["stacked"], name
            assert layout["clipped"] == 0, f"{name}: a number does not fit its cell"
            path = ARTIFACTS / f"{name}.png"
            page.screenshot(path=str(path))
            assert path.stat().st_size > 30_000
        if os.environ.get("TICKER_UPDATE_DOCS_SCREENSHOT") == "1":
            shutil.copyfile(ARTIFACTS / "dashboard.png", ROOT / "docs" / "dashboard.png")
        # The theme button overrides the system, and the choice is remembered.
        page.locator("button.theme").click()
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        assert page.evaluate("localStorage.getItem('ticker.theme')") == "dark"
        page.emulate_media(color_scheme="light")
        page.wait_for_timeout(100)
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        assert problems.items == []
