"""A relay node (`--feed ticker:ws://A/ws`) in front of a real upstream, both real processes.

A is `ticker serve` with the simulated market, B relays A. Programs read them through
``ticker.client``, the way a bot would. Each case kills one of the two with SIGKILL and starts it
again on the same port, and checks what the relay promises (feeds/live/relay.py): the upstream's
epoch and seqs pass through unchanged, a new run upstream reaches B's clients as an explicit
Reset, and a restarted relay lets its clients resume where they stood.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio.to_thread
import httpx
import pytest

from tests.processes import READY, Process, free_port, ticker, wait_ready
from tests.servers import UNIT
from tests.wsclient import TickerClient
from ticker.client import Backoff, Event, Reset, Snapshot, Tick, connect
from ticker.client.state import decode_tick

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SYMBOLS = ["AAPL", "MSFT"]
FAST = Backoff(0.05, 0.3)  # the test's clients retry quickly; the relay has its own (below)
# B's own reconnects to A: capped at 1 s so an upstream outage of a few seconds costs the test
# about a second, not up to reconnect_max's default 20 s.
RELAY_CONFIG = "[feed.upstream]\nreconnect_initial = 0.2\nreconnect_max = 1.0\n"


class Node:
    """One `ticker serve` process on a fixed port, so it can be killed and started again there."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.cwd = cwd
        self.args = args
        self.port = free_port()
        self.process: Process | None = None
        self.outputs: list[str] = []  # stderr of every run, the current one last

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> None:
        self.process = ticker("serve", "--port", str(self.port), *self.args, cwd=self.cwd)
        # The waits poll the child's stderr and /readyz: in a thread, so the clients of this
        # test's event loop keep reading (and reconnecting) meanwhile.
        match = await anyio.to_thread.run_sync(self.process.wait_for, READY)
        assert int(match.group(1)) == self.port
        await anyio.to_thread.run_sync(wait_ready, self.port)

    def kill(self) -> None:
        assert self.process is not None
        self.process.stop(signal.SIGKILL)
        assert self.process.popen.returncode == -signal.SIGKILL
        self.outputs.append(self.process.output)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.outputs.append(self.process.output)
            self.process = None

    def assert_no_traceback(self) -> None:
        output = "".join(self.outputs) + (self.process.output if self.process else "")
        assert "Traceback" not in output, output


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    relay_config = tmp_path / "relay.toml"
    relay_config.write_text(RELAY_CONFIG)
    upstream = Node(tmp_path, "--tick-rate", "200", "--seed", "7")
    relay = Node(tmp_path, "--config", str(relay_config), "--feed", f"ticker:{upstream.ws_url}")
    try:
        await upstream.start()
        await relay.start()
        yield upstream, relay
    finally:
        relay.stop()
        upstream.stop()


class Received:
    """A ``ticker.client`` stream read in the background: every event, with the epoch the stream
    was in when it came (ticks carry none); a test awaits conditions on what has arrived."""

    def __init__(self, url: str, symbols: list[str]) -> None:
        self.stream = connect(url, symbols, backoff=FAST)
        self.events: list[tuple[str, Event]] = []
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Received:
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.stream.close()

    async def _read(self) -> None:
        try:
            async for event in self.stream:
                self.events.append((self.stream.epoch, event))
                self._arrived.set()
        finally:
            self._arrived.set()  # a waiter sees the end too

    async def until(self, condition: Callable[[], bool], what: str,
                    timeout: float = 15.0) -> None:
        assert self._task is not None
        try:
            async with asyncio.timeout(timeout * UNIT):
                while True:
                    self._arrived.clear()
                    if condition():
                        return
                    if self._task.done():
                        self._task.result()  # raises what ended it
                        raise AssertionError(f"the stream ended before {what}")
                    await self._arrived.wait()
        except TimeoutError:
            raise AssertionError(f"no {what} within {timeout * UNIT} s; got "
                                 f"{self.summary()}") from None

    async def until_ticks(self, count: int) -> None:
        """Until every symbol of the stream has at least ``count`` ticks."""
        await self.until(lambda: all(len(self.ticks(s)) >= count for s in self.stream.symbols),
                         f"{count} ticks of each symbol")

    def of(self, symbol: str) -> list[tuple[str, Event]]:
        return [(epoch, event) for epoch, event in self.events if event.symbol == symbol]

    def ticks(self, symbol: str, epoch: str | None = None) -> list[Tick]:
        """The symbol's ticks (those a Reset or Snapshot starts from included), of one epoch."""
        out: list[Tick] = []
        for seen, event in self.of(symbol):
            if isinstance(event, Reset | Snapshot):
                if epoch is None or event.epoch == epoch:
                    out.extend(event.ticks)
            elif epoch is None or seen == epoch:
                out.append(event)
        return out

    def last_seq(self, symbol: str, epoch: str | None = None) -> int:
        ticks = self.ticks(symbol, epoch)
        return ticks[-1].seq if ticks else 0

    def summary(self) -> str:
        kinds = [type(event).__name__ for _, event in self.events]
        return (f"{len(kinds)} events ({', '.join(f'{k} x{kinds.count(k)}' for k in set(kinds))})"
                f", last seqs {({s: self.last_seq(s) for s in self.stream.symbols})}, "
                f"connections {self.stream.connections}, problem {self.stream.problem!r}")


def assert_contiguous(ticks: list[Tick], what: str) -> None:
    seqs = [tick.seq for tick in ticks]
    breaks = [(a, b) for a, b in itertools.pairwise(seqs) if b != a + 1]
    assert not breaks, f"{what}: seqs do not rise by exactly 1 at {breaks[:5]} (of {seqs})"


async def readyz_until(http: httpx.AsyncClient, node: Node, status: int,
                       timeout: float = 15.0) -> dict[str, Any]:
    """Poll the node's /readyz (a state, not an event: there is nothing to await) until it
    answers ``status``; returns that answer's body."""
    async with asyncio.timeout(timeout * UNIT):
        while True:
            with contextlib.suppress(httpx.TransportError):
                response = await http.get(f"{node.http_url}/readyz")
                if response.status_code == status:
                    body: dict[str, Any] = response.json()
                    return body
            await asyncio.sleep(0.05)


# -- a) transparent ------------------------------------------------------------------------------


async def test_the_relay_passes_the_upstream_s_epoch_seqs_and_ticks_unchanged(
        nodes: tuple[Node, Node]) -> None:
    upstream, relay = nodes
    async with Received(relay.ws_url, SYMBOLS) as via_relay, \
            Received(upstream.ws_url, SYMBOLS) as direct:
        await via_relay.until_ticks(40)
        await direct.until_ticks(40)
        assert via_relay.stream.epoch and via_relay.stream.epoch == direct.stream.epoch
        assert via_relay.stream.feed == "relay"
        assert direct.stream.feed == "simulated"
        assert via_relay.stream.available == direct.stream.available
        for symbol in SYMBOLS:
            relayed, original = via_relay.ticks(symbol), direct.ticks(symbol)
            assert_contiguous(relayed, f"{symbol} through the relay")
            assert_contiguous(original, f"{symbol} from the upstream")
            first = max(relayed[0].seq, original[0].seq)
            last = min(relayed[-1].seq, original[-1].seq)
            assert last - first >= 20, f"{symbol}: the two clients share only {first}..{last}"
            # Tick equality is field by field: symbol, seq, ts, price, size, bid, ask.
            assert [t for t in relayed if first <= t.seq <= last] == \
                [t for t in original if first <= t.seq <= last]
        assert via_relay.stream.state.duplicates == 0 and direct.stream.state.duplicates == 0

    async with httpx.AsyncClient(timeout=5 * UNIT) as http:
        rows = [{row["symbol"]: (row["name"], row["sector"])
                 for row in (await http.get(f"{node.http_url}/api/symbols")).json()}
                for node in (upstream, relay)]
    assert rows[0]["AAPL"][0] and rows[0]["AAPL"][1], "the upstream names its symbols"
    assert rows[1] == rows[0]
    relay.assert_no_traceback()


# -- b) the upstream restarts: a new run ---------------------------------------------------------


async def test_an_upstream_restart_reaches_the_relay_s_clients_as_a_reset_then_the_new_run(
        nodes: tuple[Node, Node]) -> None:
    upstream, relay = nodes
    async with Received(relay.ws_url, SYMBOLS) as via_relay, \
            httpx.AsyncClient(timeout=5 * UNIT) as http:
        await via_relay.until_ticks(20)
        old_epoch = via_relay.stream.epoch

        upstream.kill()
        outage = await readyz_until(http, relay, 503)
        assert outage["status"] == "not ready"
        assert "upstream" in outage["reason"] and upstream.ws_url in outage["reason"], outage
        await upstream.start()  # same port, same seed: a new run
        new_epoch = (await http.get(f"{upstream.http_url}/readyz")).json()["epoch"]
        assert new_epoch and new_epoch != old_epoch

        await via_relay.until(
            lambda: all(len(via_relay.ticks(s, new_epoch)) >= 30 for s in SYMBOLS),
            "30 ticks of each symbol in the new run", timeout=30)
        await readyz_until(http, relay, 200)
        # Everything A has of the new run now, the client of B must get too.
        latest = {row["symbol"]: row["seq"]
                  for row in (await http.get(f"{upstream.http_url}/api/symbols")).json()}
        await via_relay.until(
            lambda: all(via_relay.last_seq(s, new_epoch) >= latest[s] for s in SYMBOLS),
            f"the new run up to A's seqs {latest}")

        assert via_relay.stream.epoch == new_epoch
        assert via_relay.stream.connections == 1, "B's client must stay on B through the outage"
        assert via_relay.stream.state.duplicates == 0

        starts: dict[str, int] = {}
        for symbol in SYMBOLS:
            events = via_relay.of(symbol)
            resets = [i for i, (_, event) in enumerate(events) if isinstance(event, Reset)]
            assert len(resets) == 1, f"{symbol}: one Reset expected, got {events}"
            reset = events[resets[0]][1]
            assert isinstance(reset, Reset)
            assert (reset.epoch, reset.reason) == (new_epoch, "new_epoch")
            before, after = events[:resets[0]], events[resets[0] + 1:]
            assert before and all(isinstance(e, Tick) and epoch == old_epoch
                                  for epoch, e in before), f"{symbol}: {before}"
            assert after and all(isinstance(e, Tick) and epoch == new_epoch
                                 for epoch, e in after), f"{symbol}: {after}"
            assert_contiguous(via_relay.ticks(symbol, old_epoch), f"{symbol}, old run")
            new_run = via_relay.ticks(symbol, new_epoch)
            assert_contiguous(new_run, f"{symbol}, new run")
            starts[symbol] = new_run[0].seq

        # A's own record of the new run, from B's client's first tick of it: a resume on A
        # sends exactly A's history after a seq.
        client = await TickerClient.open(upstream.ws_url)
        try:
            assert client.hello["epoch"] == new_epoch
            await client.send({"op": "subscribe", "symbols": SYMBOLS, "id": "history",
                               "resume": {"epoch": new_epoch,
                                          "seqs": {s: starts[s] - 1 for s in SYMBOLS}}})
            reply = await client.recv_type("subscribed")
            assert sorted(reply["resumed"]) == sorted(SYMBOLS), reply
            for symbol in SYMBOLS:
                while client.last_seq.get(symbol, 0) < latest[symbol]:
                    await client.recv()  # TickerClient asserts seqs rise by exactly 1
        finally:
            await client.close()
        for symbol in SYMBOLS:
            original = [decode_tick(raw) for raw in client.ticks[symbol]
                        if raw["seq"] <= latest[symbol]]
            relayed = [t for t in via_relay.ticks(symbol, new_epoch) if t.seq <= latest[symbol]]
            assert original[0].seq == starts[symbol]
            assert relayed == original, f"{symbol}: the new run through B differs from A's"
    relay.assert_no_traceback()


# -- c) the relay restarts: its clients resume ---------------------------------------------------


async def test_a_relay_restart_is_resumed_by_its_clients_with_no_gap_and_no_duplicate(
        nodes: tuple[Node, Node]) -> None:
    upstream, relay = nodes
    async with Received(relay.ws_url, SYMBOLS) as via_relay, \
            Received(upstream.ws_url, SYMBOLS) as direct:
        await via_relay.until_ticks(20)
        epoch = via_relay.stream.epoch
        held = {s: via_relay.last_seq(s) for s in SYMBOLS}
        assert via_relay.stream.connections == 1

        relay.kill()
        await relay.start()  # same port; it fetches A's latest ticks again
        await via_relay.until(
            lambda: all(via_relay.last_seq(s) >= held[s] + 30 for s in SYMBOLS),
            "30 ticks of each symbol after the relay's restart", timeout=30)

        # One reconnect, or more: a client that reaches the restarted relay before the relay has
        # reached its upstream is told 1013 "no feed yet" and tries again (documented).
        assert via_relay.stream.connections >= 2
        assert via_relay.stream.epoch == epoch, "the upstream's run goes on: the same epoch"
        assert [e for _, e in via_relay.events if not isinstance(e, Tick)] == [], \
            "a resume: no Reset, no Snapshot"
        assert {seen for seen, _ in via_relay.events} == {epoch}
        assert via_relay.stream.state.duplicates == 0, "the server repeated ticks on resume"
        await direct.until(
            lambda: all(direct.last_seq(s) >= via_relay.last_seq(s) for s in SYMBOLS),
            "the direct client to catch up")
        for symbol in SYMBOLS:
            relayed = via_relay.ticks(symbol)
            assert_contiguous(relayed, f"{symbol} across the relay's restart")
            assert relayed[0].seq <= held[symbol] < relayed[-1].seq
            # Across the outage, the very ticks A published.
            window = range(held[symbol] - 5, relayed[-1].seq + 1)
            assert [t for t in relayed if t.seq in window] == \
                [t for t in direct.ticks(symbol) if t.seq in window]
        assert direct.stream.connections == 1
    relay.assert_no_traceback()
