"""pytest plugin (registered by ticker's ``pytest11`` entry point): the ``ticker_market`` fixture.

A real ticker server on a free port for one test, with a seeded market by default::

    def test_bot_sees_trades(ticker_market):
        bot = MyBot(url=ticker_market.alpaca_url)          # ws://127.0.0.1:PORT/v2/iex
        ...

    @pytest.mark.ticker_market(symbols=["AAPL", "MSFT"], tick_rate=50, seed=1)
    def test_with_two_symbols(ticker_market): ...

    @pytest.mark.ticker_market(recording="tests/data/session.jsonl", speed=10)
    def test_on_a_recording(ticker_market): ...

The marker's keyword arguments are those of :func:`ticker.testing.running_market`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ticker.testing import Market

MARKER = "ticker_market"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(**kwargs): settings for the ticker_market fixture "
        "(seed, symbols, tick_rate, recording, speed, loop, alpaca_keys, config)")


@pytest.fixture
def ticker_market(request: pytest.FixtureRequest) -> Iterator[Market]:
    """A running ticker server (see :class:`ticker.testing.Market`: ``url``, ``ws_url``,
    ``alpaca_url``, ``port``, ``symbols``)."""
    # Imported here, not at plugin load: every pytest run on a machine with ticker installed
    # loads this module, and only tests that use the fixture should pay for the server's imports.
    from ticker.testing import running_market

    marker = request.node.get_closest_marker(MARKER)
    settings = dict(marker.kwargs) if marker is not None else {}
    with running_market(**settings) as market:
        yield market
