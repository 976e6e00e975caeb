"""web/protocol.js mirrors ticker/protocol.py: the same version, message types, ops, error codes and
close codes, and the messages it builds are ones the server's parser accepts. The page's other
protocol duties are checked here too, as plain modules: the reconnect backoff (connection.js) and
the seq bookkeeping behind "no gap, no duplicate" (store.js).

The module is imported in Chromium (no node needed): Playwright serves web/ from disk under a
made-up origin, so no server runs. A text-level check also runs where Chromium is missing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route, sync_playwright

from ticker import protocol
from ticker.protocol import Ping, Subscribe, Unsubscribe, parse_command

WEB = Path(__file__).resolve().parent.parent / "web"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ORIGIN = "http://ticker.test"


def test_protocol_js_names_every_python_constant() -> None:
    source = (WEB / "protocol.js").read_text()
    assert re.search(rf"export const PROTOCOL_VERSION = {protocol.PROTOCOL_VERSION};", source)
    for name in (*protocol.MESSAGE_TYPES, *protocol.OPS, *protocol.ERROR_CODES):
        assert f'"{name}"' in source, f"protocol.js lacks {name!r}"
    for name, code in protocol.CLOSE_CODES.items():
        assert re.search(rf"\b{name}: {code},", source), f"protocol.js lacks {name}: {code}"


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("TICKER_REQUIRE_ALL_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.route(f"{ORIGIN}/**", _serve_web)
        page.goto(f"{ORIGIN}/blank.html")
        yield page
        browser.close()


def _serve_web(route: Route) -> None:
    name = route.request.url.removeprefix(ORIGIN + "/")
    if name == "blank.html":
        route.fulfill(body="<!doctype html><title>protocol</title>", content_type="text/html")
    elif re.fullmatch(r"[a-z-]+\.js", name) and (WEB / name).exists():
        route.fulfill(path=WEB / name, content_type="text/javascript")
    else:
        route.fulfill(status=404)


def js(page: Page, body: str) -> Any:
    """Evaluate ``body`` (which may use ``p``, the imported module) and return its JSON value."""
    return page.evaluate(f"async () => {{ const p = await import('/protocol.js'); {body} }}")


@pytest.mark.browser
def test_constants_equal_the_python_ones(page: Page) -> None:
    mirror = js(page, "return {version: p.PROTOCOL_VERSION, types: p.MESSAGE_TYPES, ops: p.OPS, "
                      "errors: p.ERROR_CODES, closes: p.CLOSE_CODES};")
    assert mirror == {
        "version": protocol.PROTOCOL_VERSION,
        "types": list(protocol.MESSAGE_TYPES),
        "ops": list(protocol.OPS),
        "errors": list(protocol.ERROR_CODES),
        "closes": protocol.CLOSE_CODES,
    }
    # Frozen: no other module can edit the contract at run time.
    assert js(page, "return [p.MESSAGE_TYPES, p.OPS, p.ERROR_CODES, p.CLOSE_CODES]"
                    ".every(Object.isFrozen);")


@pytest.mark.browser
def test_terminal_close_codes_are_the_documented_ones(page: Page) -> None:
    codes = sorted({1000, 1006, 1009, 1012, 4000, 4499, 4999, 5000,
                    *protocol.CLOSE_CODES.values()})
    terminal = js(page, f"return {json.dumps(codes)}.filter(p.isTerminalClose);")
    assert terminal == [code for code in codes if protocol.is_terminal_close(code)]
    assert {1003, 1007, 1008, 1009, protocol.CLOSE_BAD_REQUEST} <= set(terminal)
    assert protocol.CLOSE_IDLE not in terminal
    assert protocol.CLOSE_SLOW_CONSUMER not in terminal  # "reconnect and resume"


@pytest.mark.browser
def test_reconnect_backoff_doubles_from_half_a_second_to_twenty_with_jitter(page: Page) -> None:
    delays = page.evaluate("""async () => {
        const {backoffDelay} = await import('/connection.js');
        const at = (r) => Array.from({length: 12}, (_, n) => backoffDelay(n, () => r));
        return {low: at(0), mid: at(0.5), high: at(1)};
    }""")
    assert delays["mid"][:7] == [500, 1000, 2000, 4000, 8000, 16000, 20000]
    assert delays["mid"][-1] == 20000  # capped
    assert delays["low"][0] == 375 and delays["high"][0] == 625  # +-25 % jitter
    assert delays["low"][-1] == 15000 and delays["high"][-1] == 20000


@pytest.mark.browser
def test_messages_it_builds_are_accepted_by_the_server_parser(page: Page) -> None:
    built = js(page, """return [
        p.subscribe(["AAPL", "msft"], {id: 1}),
        p.subscribe(["AAPL"], {resume: {epoch: "e1", seqs: {AAPL: 1042}}}),
        p.unsubscribe(["MSFT"], {id: "u"}),
        p.ping(7),
    ].map(JSON.stringify);""")
    commands = [parse_command(text) for text in built]
    assert commands[0] == Subscribe(("AAPL", "MSFT"), 1)
    subscribe_with_resume = commands[1]
    assert isinstance(subscribe_with_resume, Subscribe)
    assert subscribe_with_resume.resume is not None
    assert subscribe_with_resume.resume.epoch == "e1"
    assert subscribe_with_resume.resume.seqs == {"AAPL": 1042}
    assert commands[2] == Unsubscribe(("MSFT",), "u")
    assert commands[3] == Ping(7)
    assert {json.loads(text)["op"] for text in built} <= set(protocol.OPS)


@pytest.mark.browser
def test_the_store_keeps_each_symbols_seqs_exact(page: Page) -> None:
    """web/store.js, the client half of "no gap, no duplicate": fed messages as the server sends
    them, it counts and drops duplicates, reports gaps, resumes from what it holds, and starts
    over on a snapshot or a new epoch."""
    result = page.evaluate("""async () => {
        const {Store} = await import('/store.js');
        const taken = [], resets = [], gaps = [];
        const store = new Store({onTick: (t) => taken.push(t.seq), onReset: (s) => resets.push(s),
                                 onGap: (s) => gaps.push(s)});
        const tick = (seq) => ({symbol: 'AAPL', seq, ts: 1e12 + seq, price: 100, size: 100,
                                bid: 99.99, ask: 100.01});
        const out = {};
        store.hello({type: 'hello', version: 1, epoch: 'e1', feed: 'simulated',
                     symbols: ['AAPL', 'MSFT']});
        out.resumeBefore = store.resume();
        store.snapshot({type: 'snapshot', symbol: 'AAPL', epoch: 'e1', reset: false,
                        ticks: [tick(1), tick(2), tick(3)]});
        store.ticks({type: 'ticks', ticks: [tick(4), tick(4), tick(3), tick(5)]});
        out.afterDuplicates = {...store.counts, last: store.get('AAPL').lastSeq,
                               open: store.get('AAPL').open};
        store.ticks({type: 'ticks', ticks: [tick(9)]});  // 6..8 missing
        out.gaps = [...gaps];
        out.resume = store.resume();
        store.beginResync('AAPL', false);
        store.ticks({type: 'ticks', ticks: [tick(10)]});  // tail of the old subscription
        store.unsubscribed({type: 'unsubscribed', symbols: ['AAPL']});
        store.ticks({type: 'ticks', ticks: [tick(6), tick(7)]});  // the resumed backlog
        out.afterResume = {last: store.get('AAPL').lastSeq, drained: store.counts.drained};
        store.snapshot({type: 'snapshot', symbol: 'AAPL', epoch: 'e1', reset: true,
                        ticks: [tick(40)]});
        out.afterReset = {last: store.get('AAPL').lastSeq, ring: store.since('AAPL').length,
                          resets: store.counts.resets};
        out.sameRun = store.hello({type: 'hello', version: 1, epoch: 'e1', feed: 'simulated',
                                   symbols: ['AAPL', 'MSFT']});
        out.newRun = store.hello({type: 'hello', version: 1, epoch: 'e2', feed: 'simulated',
                                  symbols: ['AAPL', 'MSFT']});
        out.afterNewRun = {last: store.get('AAPL').lastSeq, resume: store.resume()};
        out.taken = taken;
        out.resets = resets;
        return out;
    }""")
    assert result["resumeBefore"] is None  # nothing held: nothing to resume
    assert result["afterDuplicates"]["duplicates"] == 2
    assert result["afterDuplicates"]["last"] == 5
    assert result["afterDuplicates"]["open"] == 100  # seq 1 is the session's first trade
    assert result["gaps"] == ["AAPL"]
    assert result["resume"] == {"epoch": "e1", "seqs": {"AAPL": 5}}  # MSFT: never held
    assert result["afterResume"] == {"last": 7, "drained": 1}
    assert result["afterReset"] == {"last": 40, "ring": 1, "resets": 1}
    assert result["sameRun"] is False and result["newRun"] is True
    assert result["afterNewRun"] == {"last": 0, "resume": None}
    assert result["taken"] == [4, 5, 6, 7]  # snapshots are not "taken" ticks; 9 and 10 dropped
    assert result["resets"] == ["AAPL", "AAPL"]
