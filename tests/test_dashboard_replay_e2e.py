"""Replay mode of the dashboard, in a real browser against a real server with a recordings
directory: a link opens a recording with an unmistakable REPLAY badge, the charts are built from
the replayed ticks at their recorded times, pause/resume/seek/speed drive /ws/replay, the end is
shown, and "Back to live" returns to the market. Saves screenshots to tests/artifacts/.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from feeds.capture import record_fast
from feeds.simulated import SimulatedFeed
from tests.servers import RunningServer, make_config, running_server
from tests.test_dashboard_e2e import (
    ARTIFACTS,
    LAYOUT,
    MS,
    Problems,
    chromium,
    debug,
    points,
    url_query,
    wait_points,
)
from ticker.config import load_config

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched

START_MS = 1_763_880_000_000.0  # Sun Nov 23 2025, 06:40 UTC
SECONDS = 180.0
SYMBOLS = ["AAPL", "MSFT", "JPM"]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("recordings")
    defaults = load_config().feed
    stocks = [s for s in defaults.universe if s.symbol in SYMBOLS]
    record_fast(SimulatedFeed(stocks, defaults.market, 40.0, seed=11),
                directory / "session.jsonl", SECONDS, START_MS)
    record_fast(SimulatedFeed(stocks[:1], defaults.market, 20.0, seed=3),
                directory / "short.jsonl.gz", 20.0, START_MS + 3_600_000)
    return directory


@pytest.fixture(scope="module")
def server(recordings: Path) -> Iterator[RunningServer]:
    config = make_config(**{"recordings.dir": str(recordings), "feed.tick_rate": 200.0})
    with running_server(config) as running:
        yield running


@pytest.fixture(scope="module")
def span(server: RunningServer) -> tuple[float, float]:
    listing = httpx.get(f"{server.http_url}/api/recordings").json()
    session = next(r for r in listing if r["name"] == "session.jsonl")
    return session["first_ts"], session["last_ts"]


@contextlib.contextmanager
def replay_page(browser: Browser, base_url: str, path: str,
                scheme: str = "light") -> Iterator[tuple[Page, Problems, list[str]]]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    page.set_default_timeout(10 * MS)
    problems = Problems(page, base_url)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        page.goto(base_url + path)
        page.wait_for_function("window.tickerDebug && tickerDebug.mode === 'replay' && "
                               "tickerDebug.state === 'connected'")
        yield page, problems, requested
    finally:
        context.close()


def replay_state(page: Page) -> dict[str, Any]:
    return dict(debug(page, "replay"))


def chart_x(page: Page, symbol: str) -> list[float]:
    """The chart's x values as Unix ms (the page shifts them to read as local time)."""
    return list(page.evaluate(
        """s => { const shift = -new Date().getTimezoneOffset() * 60000;
                  return document.querySelector(`.chart[data-symbol='${s}'] .plot`).data[0].x
                      .map(x => x - shift); }""", symbol))


def test_a_replay_link_plays_pauses_seeks_and_ends(
        browser: Browser, server: RunningServer, span: tuple[float, float]) -> None:
    first, last = span
    path = "/?replay=session.jsonl&speed=10&symbols=AAPL,MSFT&window=1m"
    with replay_page(browser, server.http_url, path) as (page, problems, requested):
        # Unmistakable: the badge with the speed, the band, the tab title, no "live" anywhere.
        assert page.locator(".replaybar").is_visible()
        assert page.locator(".replay-badge").inner_text() == "REPLAY x10"
        assert page.locator(".conn-label").inner_text() == "playing"
        assert page.title().startswith("REPLAY")
        assert page.locator(".chart .live").first.inner_text() == "Follow"
        # The watchlist is the recording's symbols; the charts are the ones asked for.
        rows = page.locator(".wl tbody tr").evaluate_all("r => r.map(e => e.dataset.symbol)")
        assert rows == SYMBOLS
        assert page.locator(".chart").evaluate_all("c => c.map(e => e.dataset.symbol)") == [
            "AAPL", "MSFT"]
        # The picker lists every recording, this one chosen.
        options = page.locator(".replay-select option").evaluate_all("o => o.map(e => e.value)")
        assert options == ["session.jsonl", "short.jsonl.gz"]
        assert page.locator(".replay-select").input_value() == "session.jsonl"
        # The search offers the recording's symbols only, not the live market's.
        search = page.locator("#search")
        search.fill("nvda")
        assert page.locator("#suggestions li.empty").is_visible()
        search.fill("jp")
        assert page.locator("#suggestions [role=option]").evaluate_all(
            "o => o.map(e => e.dataset.symbol)") == ["JPM"]
        search.press("Escape")

        # Charts fill with the recorded ticks, at their recorded times; the live server's bars
        # are never asked for.
        wait_points(page, "AAPL", 20)
        xs = chart_x(page, "AAPL")
        assert first <= min(xs) and max(xs) <= last
        assert max(xs) - min(xs) > 1_000
        assert not [url for url in requested if "/api/bars" in url]
        page.wait_for_function("""() => [...document.querySelectorAll('.wl td.last')]
                                  .every(td => /^[\\d,]+\\.\\d\\d$/.test(td.textContent))""")

        # Pause holds the position (and the charts); resume moves on.
        page.locator(".replay-play").click()
        page.wait_for_function("tickerDebug.replay.paused === true")
        assert page.locator(".conn-label").inner_text() == "paused"
        time.sleep(0.3)  # ticks already on their way
        held, drawn = replay_state(page)["position"], points(page, "AAPL")
        time.sleep(1.0)
        assert replay_state(page)["position"] == held
        assert points(page, "AAPL") == drawn
        page.locator(".replay-play").click()
        page.wait_for_function(f"tickerDebug.replay.position > {held + 2_000}")
        assert replay_state(page)["paused"] is False

        # The slider seeks: a new run from the target; every tick drawn is at or after it.
        epoch = debug(page, "epoch")
        aim = round(first + (last - first) * 0.7)
        page.locator(".replay-slider").fill(str(aim))
        target = float(url_query(page)["at"])  # the seek went into the URL, as the slider's step
        assert abs(target - aim) <= 100        # snapped it
        page.wait_for_function(f"tickerDebug.epoch !== {epoch!r} && "
                               f"tickerDebug.replay.position >= {target}")
        wait_points(page, "AAPL", 5)
        assert min(chart_x(page, "AAPL")) >= target
        assert all(t["ts"] >= target for t in debug(page, "recent('AAPL')"))
        assert debug(page, "duplicates") == 0 and debug(page, "gaps") == 0

        # Faster, to the end: said in the bar and the indicator; "Replay" plays it again.
        page.locator(".speeds button[data-speed='60']").click()
        assert page.locator(".replay-badge").inner_text() == "REPLAY x60"
        assert "speed=60" in page.url
        page.wait_for_function("tickerDebug.replay.ended === true", timeout=15 * MS)
        assert "End of recording" in page.locator(".replay-note").inner_text()
        assert page.locator(".conn-label").inner_text() == "ended"
        assert page.locator(".replay-play").inner_text().strip() == "Replay"
        page.locator(".replay-play").click()
        page.wait_for_function(f"!tickerDebug.replay.ended && tickerDebug.replay.position > 0 && "
                               f"tickerDebug.replay.position < {target}")
        assert problems.items == []


def test_the_live_page_opens_a_recording_and_comes_back_to_live(
        browser: Browser, server: RunningServer) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(10 * MS)
        problems = Problems(page, server.http_url)
        page.goto(f"{server.http_url}/?symbols=AAPL,JPM&window=1m")
        page.wait_for_function("window.tickerDebug && tickerDebug.state === 'connected'")
        assert debug(page, "mode") == "live"
        assert page.locator(".replaybar").is_hidden()
        page.locator(".replay-open").click()
        items = page.locator(".replay-menu .recording")
        items.first.wait_for()
        assert items.evaluate_all("a => a.map(e => e.dataset.name)") == [
            "session.jsonl", "short.jsonl.gz"]
        assert re.search(r"3 symbols · [\d,]+ trades", items.first.inner_text())
        page.screenshot(path=str(ARTIFACTS / "replay-menu.png"))
        items.first.click()
        page.wait_for_function("tickerDebug.mode === 'replay' && tickerDebug.state === 'connected'")
        assert page.locator(".replay-badge").inner_text() == "REPLAY x10"
        assert "replay=session.jsonl" in page.url and "symbols=AAPL,JPM" in page.url
        wait_points(page, "AAPL", 5)

        page.locator(".replay-live").click()
        page.wait_for_function("tickerDebug.mode === 'live' && tickerDebug.state === 'connected'")
        assert page.locator(".replaybar").is_hidden()
        assert page.locator(".replay-badge").is_hidden()
        assert "replay=" not in page.url and "symbols=AAPL,JPM" in page.url
        assert page.locator(".conn-label").inner_text() == "live"
        # The live market again: all 22 symbols, times of today.
        assert page.locator(".wl tbody tr").count() == 22
        wait_points(page, "AAPL", 5)
        assert min(chart_x(page, "AAPL")) > time.time() * 1000 - 3_600_000
        assert problems.items == []
    finally:
        context.close()


def test_replay_screenshots_in_light_and_dark(
        browser: Browser, server: RunningServer, span: tuple[float, float]) -> None:
    """Saves tests/artifacts/replay{,-dark,-phone}.png: look at them."""
    first, _ = span
    ARTIFACTS.mkdir(exist_ok=True)
    path = "/?replay=session.jsonl&speed=60&symbols=AAPL,MSFT,JPM&window=1m"
    with replay_page(browser, server.http_url, path) as (page, problems, _):
        page.wait_for_function(f"tickerDebug.replay.position > {first + 100_000}",
                               timeout=15 * MS)
        page.locator(".replay-play").click()
        page.wait_for_function("tickerDebug.replay.paused === true")
        page.wait_for_timeout(400)  # the last frames drawn
        shots = [("replay", 1440, 900, "light"), ("replay-dark", 1440, 900, "dark"),
                 ("replay-phone", 390, 844, "light")]
        for name, width, height, scheme in shots:
            page.set_viewport_size({"width": width, "height": height})
            page.emulate_media(color_scheme=scheme)
            page.wait_for_function(f"document.documentElement.dataset.theme === '{scheme}'")
            page.wait_for_timeout(300)
            layout = page.evaluate(LAYOUT)
            assert layout["overflow"] <= 0, f"{name}: the page scrolls sideways"
            assert layout["clipped"] == 0, f"{name}: a number does not fit its cell"
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
        assert problems.items == []
