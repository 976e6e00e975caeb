"""The dashboard on a server that wants a token: opened once with ?token=, it streams, keeps the
token for the tab and takes it out of the address bar; opened without one, it says what is
missing instead of retrying for ever."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.servers import RunningServer, make_config, running_server
from tests.test_dashboard_e2e import ARTIFACTS, MS, Problems, chromium, debug, wait_points

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

TOKEN = "dashboard-token-0123456789"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with running_server(make_config(**{"auth.tokens": [TOKEN], "feed.tick_rate": 300.0})) as s:
        yield s


def test_a_token_in_the_address_is_kept_for_the_tab_and_hidden(
        browser: Browser, server: RunningServer) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10 * MS)
    problems = Problems(page, server.http_url)
    try:
        page.goto(f"{server.http_url}/?symbols=AAPL,MSFT&token={TOKEN}")
        page.wait_for_function("window.tickerDebug && tickerDebug.state === 'connected'")
        wait_points(page, "AAPL", 5)
        assert TOKEN not in page.url and "symbols=AAPL" in page.url
        page.reload()  # the tab remembers the token
        page.wait_for_function("window.tickerDebug && tickerDebug.state === 'connected'")
        wait_points(page, "MSFT", 5)
        assert debug(page, "gaps") == 0
        page.screenshot(path=str(ARTIFACTS / "dashboard-token.png"))
        assert problems.items == []
    finally:
        context.close()


def test_without_a_token_the_page_says_what_is_missing(browser: Browser,
                                                        server: RunningServer) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10 * MS)
    try:
        page.goto(server.http_url + "/")
        page.wait_for_function("window.tickerDebug && tickerDebug.state === 'offline'")
        note = page.locator(".toast")
        note.wait_for(state="visible")
        assert "access token" in note.inner_text(), note.inner_text()
        page.screenshot(path=str(ARTIFACTS / "dashboard-no-token.png"))
    finally:
        context.close()
