"""A real ticker server for the tests of your own programs (trading bots, dashboards).

``running_market()`` starts the whole server (uvicorn, hub, feed; every endpoint, Alpaca's
included) in a background thread on a free port of 127.0.0.1, with a seeded simulated market or a
recording, and stops it on exit. The pytest plugin (ticker.pytest_plugin, installed with ticker)
wraps it as the ``ticker_market`` fixture::

    from alpaca.data.live import StockDataStream

    def test_my_bot(ticker_market):
        stream = StockDataStream("key", "secret", url_override=ticker_market.alpaca_url)
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from ticker.app import create_app
from ticker.config import Config, load_config
from ticker.server import TickerServer, uvicorn_config

STARTUP_SECONDS = 20.0


@dataclasses.dataclass(frozen=True)
class Market:
    """A running server; ``symbols`` are the ones its feed trades."""

    port: int
    config: Config
    symbols: tuple[str, ...]
    feed: str = "iex"

    @property
    def url(self) -> str:
        """The dashboard and REST API (``/api/symbols``, ``/api/bars``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """Protocol v1 (docs/protocol.md)."""
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def alpaca_url(self) -> str:
        """Alpaca's market-data stream v2, for ``StockDataStream(..., url_override=...)``."""
        return f"ws://127.0.0.1:{self.port}/v2/{self.feed}"


@contextlib.contextmanager
def running_market(*, seed: int = 7, symbols: int | Sequence[str] | None = None,
                   tick_rate: float = 100.0, recording: str | PathLike[str] | None = None,
                   speed: float | str = 1.0, loop: bool = False,
                   alpaca_keys: Sequence[str] = (),
                   config: Mapping[str, Any] | None = None) -> Iterator[Market]:
    """A server on a free port for the duration of the ``with``.

    - ``seed``: the same seed gives the same market (prices, sizes, timing) every run.
    - ``symbols``: None = the default universe of 22 US stocks; a number N = N synthetic
      symbols; a list = those symbols (stocks of the universe keep their price and volatility,
      others start at $100).
    - ``tick_rate``: trades per second across all symbols.
    - ``recording``: play this recording (a file from ``ticker record``, or a directory of them)
      instead of simulating, at ``speed`` (a factor, or "max"), ``loop``-ing if asked.
    - ``alpaca_keys``: "KEY:SECRET" pairs the Alpaca endpoint accepts (none: any key passes).
    - ``config``: any other setting as dotted keys, e.g. ``{"alpaca.max_symbols": 30}``.
    """
    overrides: dict[str, Any] = {
        "server.host": "127.0.0.1", "server.port": 0, "server.log_level": "warning",
        "feed.seed": seed, "feed.tick_rate": float(tick_rate),
        "alpaca.keys": list(alpaca_keys),
    }
    if isinstance(symbols, int):
        overrides["feed.symbols"] = symbols
    elif symbols is not None:
        overrides["feed.universe"] = _universe(symbols)
    if recording is not None:
        overrides.update({"feed.source": "replay", "feed.replay.source": str(Path(recording)),
                          "feed.replay.speed": speed, "feed.replay.loop": loop})
    settings = load_config(overrides={**overrides, **(config or {})})
    with _serving(settings) as (port, traded):
        yield Market(port, settings, traded)


def _universe(symbols: Sequence[str]) -> list[dict[str, Any]]:
    known = {stock.symbol: stock for stock in load_config().feed.universe}
    stocks = []
    for symbol in symbols:
        stock = known.get(symbol.upper())
        stocks.append(dataclasses.asdict(stock) if stock is not None else
                      {"symbol": symbol.upper(), "name": symbol.upper(), "sector": "Test",
                       "price": 100.0, "volatility": 0.3})
    return stocks


@contextlib.contextmanager
def _serving(config: Config) -> Iterator[tuple[int, tuple[str, ...]]]:
    app = create_app(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = TickerServer(uvicorn_config(app, config.server), app.state.node)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as error:  # reported by the caller's thread, below
            failure.append(error)

    thread = threading.Thread(target=run, name=f"ticker-market:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        if not server.started:
            raise RuntimeError(f"the ticker server did not start: {failure or 'timed out'}")
        yield port, tuple(info.symbol for info in app.state.node.hub.symbols)
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_SECONDS)
        sock.close()
