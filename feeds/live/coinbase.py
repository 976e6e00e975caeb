"""Coinbase Exchange's public market data (wss://ws-feed.exchange.coinbase.com; no account).

Four channels are used: "matches" (one message per trade; trade ids rise by one per product,
and subscribing sends each product's latest trade as a "last_match"), "ticker" (best bid and
ask, and the 24-hour open we report changes against), "heartbeat" (each product's last trade id,
every second, which shows trades that never reached us) and "status" (the currencies' names:
read once, then unsubscribed, for it is large and repeats).

:class:`CoinbaseProtocol` is the sans-I/O part: the subscribe message out, the feed's messages
in, events and replies out. It keeps each product's last trade id across connections, so a
reconnect continues without a duplicate and says where trades were lost. :class:`CoinbaseUpstream`
only moves messages between it and a WebSocket; the messages themselves are parsed in
:mod:`feeds.live.coinbase_messages`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncGenerator
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK

from feeds.live.base import (
    Connected,
    Gap,
    Skips,
    Trade,
    UpstreamError,
    UpstreamEvent,
    UpstreamRefused,
)
from feeds.live.coinbase_messages import (
    BadMessage,
    ErrorMessage,
    Heartbeat,
    Match,
    Status,
    Subscriptions,
    Ticker,
    parse_message,
)
from ticker.errors import ConfigError
from ticker.model import SymbolInfo

SECTOR = "Crypto"
MAX_PRODUCT = 12  # protocol v1's longest symbol
_PRODUCT = re.compile(r"[A-Z0-9]{1,10}-[A-Z0-9]{1,10}")


def parse_products(args: str) -> tuple[str, ...]:
    """``"btc-usd, ETH-USD"`` -> ``("BTC-USD", "ETH-USD")``, duplicates dropped, order kept."""
    products: dict[str, None] = {}
    for item in args.split(","):
        product = item.strip().upper()
        if not product:
            raise ConfigError("feed.source", f"coinbase:{args}: an empty product; write "
                              "coinbase:BTC-USD,ETH-USD")
        if not _PRODUCT.fullmatch(product) or len(product) > MAX_PRODUCT:
            raise ConfigError("feed.source", f"coinbase: {item.strip()!r} is not a Coinbase "
                              f"product such as BTC-USD (BASE-QUOTE, letters and digits, at "
                              f"most {MAX_PRODUCT} characters)")
        products[product] = None
    return tuple(products)


# -- the protocol, sans I/O ------------------------------------------------------------------------


class CoinbaseProtocol:
    """Messages in, events out. Kept across connections: each product's last trade id passed on,
    the names and the opens; per connection: the quotes and the handshake."""

    def __init__(self, products: tuple[str, ...]) -> None:
        self.products = products
        self._wanted = frozenset(products)
        self._last_ids: dict[str, int] = {}
        self._started_at: dict[str, int] = {}
        self._behind: dict[str, int] = {}  # a heartbeat's last trade id beyond ours
        self._names: dict[str, str] | None = None  # None until a status message came
        self._opens: dict[str, float] = {}
        self._quotes: dict[str, tuple[float, float]] = {}
        self._outgoing: list[str] = []
        self._status_subscribed = False
        self.subscribed = False

    def start(self) -> str:
        """A new connection: the subscribe message to send first."""
        self.subscribed = False
        self._quotes.clear()
        self._behind.clear()
        self._outgoing.clear()
        self._started_at = dict(self._last_ids)
        self._status_subscribed = self._names is None
        channels = ["matches", "ticker", "heartbeat", *(["status"] if self._status_subscribed
                                                         else [])]
        return _dumps({"type": "subscribe", "product_ids": list(self.products),
                       "channels": channels})

    def abandon(self) -> None:
        """The connection ended before its events were passed on: forget its trade ids, so
        the next connection passes those trades on (from its last_match) or reports them lost."""
        self._last_ids = dict(self._started_at)

    @property
    def described(self) -> bool:
        """Whether the names (status) and every product's open (a ticker) are known."""
        return self._names is not None and self._wanted <= self._opens.keys()

    def infos(self) -> tuple[SymbolInfo, ...]:
        names = self._names or {}
        return tuple(SymbolInfo(product, names.get(product, ""), SECTOR, self._opens.get(product))
                     for product in self.products)

    def data_to_send(self) -> list[str]:
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def receive(self, raw: str | bytes, skips: Skips) -> list[UpstreamEvent]:
        """Raises :class:`UpstreamRefused` when the subscription is refused, and
        :class:`UpstreamError` for an error message after it."""
        try:
            message = parse_message(raw)
        except BadMessage as error:
            skips.skip(str(error), raw)
            return []
        if isinstance(message, Match | Ticker | Heartbeat) and message.product not in self._wanted:
            skips.skip(f"a {type(message).__name__.lower()} of {message.product!r}, which was "
                       "not asked for", raw)
            return []
        match message:
            case Match():
                return self._match(message, skips, raw)
            case Ticker():
                self._quotes[message.product] = (message.bid, message.ask)
                self._opens.setdefault(message.product, message.open)
            case Heartbeat():
                return self._heartbeat(message)
            case Subscriptions() if not self.subscribed:
                self._confirm(message)
            case Status():
                self._status(message)
            case ErrorMessage() if self.subscribed:
                raise UpstreamError(f"Coinbase reported an error: {message.text}")
            case ErrorMessage():
                raise UpstreamRefused(message.text)
        return []

    def _match(self, match: Match, skips: Skips, raw: str | bytes) -> list[UpstreamEvent]:
        product, trade_id = match.product, match.trade_id
        last = self._last_ids.get(product)
        if last is not None and trade_id <= last:
            # A reconnect's last_match repeats the trade we have: normal, not a skip.
            if not (match.last and trade_id == last):
                skips.skip(f"{product} trade id {trade_id} after {last} (a duplicate or out "
                           "of order)", raw)
            return []
        events: list[UpstreamEvent] = []
        if last is not None and trade_id > last + 1:
            events.append(Gap((product,), f"trade ids {last + 1}..{trade_id - 1} missed"))
        self._last_ids[product] = trade_id
        bid, ask = self._quotes.get(product, (match.price, match.price))
        events.append([Trade(product, match.ts, match.price, match.size, min(bid, match.price),
                             max(ask, match.price))])
        return events

    def _heartbeat(self, heartbeat: Heartbeat) -> list[UpstreamEvent]:
        """A heartbeat ahead of us is noted; if the next one finds us still short of it, those
        trades are declared lost. The one-beat grace is for a match still on its way: Coinbase
        documents that messages may arrive out of order."""
        product, reported = heartbeat.product, heartbeat.last_trade_id
        last = self._last_ids.get(product)
        if last is None:
            return []
        events: list[UpstreamEvent] = []
        noted = self._behind.pop(product, 0)
        if noted > last:
            events.append(Gap((product,), f"trade ids {last + 1}..{noted} missed"))
            # Given up: if one of them still comes, it is out of order.
            self._last_ids[product] = last = noted
        if reported > last:  # never a 0, which the real feed sends now and then: ids start at 1
            self._behind[product] = reported
        return events

    def _confirm(self, subscriptions: Subscriptions) -> None:
        confirmed = subscriptions.channels.get("matches", frozenset())
        missing = [product for product in self.products if product not in confirmed]
        if missing:
            raise UpstreamRefused(f"the matches of {', '.join(missing)} were not subscribed")
        self.subscribed = True

    def _status(self, status: Status) -> None:
        if self._names is None:
            self._names = {product: status.names[product] for product in self.products
                           if product in status.names}
        if self._status_subscribed:
            self._status_subscribed = False
            self._outgoing.append(_dumps({"type": "unsubscribe", "channels": ["status"]}))


def _dumps(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


# -- the I/O ---------------------------------------------------------------------------------------


class CoinbaseUpstream:
    """An :class:`~feeds.live.base.Upstream`. The first connection waits up to ``info_wait``
    seconds for the names and opens before it reports Connected (trades meanwhile are kept
    and follow it); later ones report Connected at once with what is known by then."""

    kind = "coinbase"

    def __init__(self, products: tuple[str, ...], url: str, silence_timeout: float,
                 info_wait: float = 3.0) -> None:
        self.products = products
        self.url = url
        self.silence_timeout = silence_timeout
        self.info_wait = info_wait
        self.label = f"Coinbase ({url})"
        self.protocol = CoinbaseProtocol(products)
        self._waited = False

    @property
    def symbols(self) -> tuple[SymbolInfo, ...]:
        return self.protocol.infos()

    async def session(self, skips: Skips) -> AsyncGenerator[UpstreamEvent, None]:
        try:
            async with connect(self.url, open_timeout=10, max_size=2**24, ping_interval=20,
                               ping_timeout=20) as ws:
                await ws.send(self.protocol.start())
                try:
                    kept = await self._handshake(ws, skips)
                except BaseException:
                    self.protocol.abandon()
                    raise
                yield Connected(self.protocol.infos())
                for event in kept:
                    yield event
                while True:
                    events = await self._receive(ws, skips, self.silence_timeout)
                    if events is None:
                        raise UpstreamError(f"no message for {self.silence_timeout:g} s")
                    for event in events:
                        yield event
        except ConnectionClosedOK:
            return

    async def _handshake(self, ws: ClientConnection, skips: Skips) -> list[UpstreamEvent]:
        """Until the subscription is confirmed and, on the first connection, until the names
        and opens are known or ``info_wait`` ends: the events meanwhile, to follow Connected."""
        kept: list[UpstreamEvent] = []
        while not self.protocol.subscribed:
            events = await self._receive(ws, skips, self.silence_timeout)
            if events is None:
                raise UpstreamError(f"no reply to the subscription in {self.silence_timeout:g} s")
            kept += events
        if self._waited:
            return kept
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.info_wait
        while not self.protocol.described and (left := deadline - loop.time()) > 0:
            events = await self._receive(ws, skips, min(left, self.silence_timeout))
            if events is None:
                if loop.time() < deadline:
                    raise UpstreamError(f"no message for {self.silence_timeout:g} s")
                break
            kept += events
        self._waited = True
        return kept

    async def _receive(self, ws: ClientConnection, skips: Skips,
                       timeout: float) -> list[UpstreamEvent] | None:
        """The next message's events (and its replies sent); None if none came in time."""
        try:
            async with asyncio.timeout(timeout):
                raw = await ws.recv()
        except TimeoutError:
            return None
        events = self.protocol.receive(raw, skips)
        for reply in self.protocol.data_to_send():
            # Closed already: the messages that came before the close are still to be read,
            # and the next recv() reports the close.
            with contextlib.suppress(ConnectionClosed):
                await ws.send(reply)
        return events
