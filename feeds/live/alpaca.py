"""Alpaca's market-data stream v2 (``wss://stream.data.alpaca.markets/v2/iex`` or ``/v2/sip``)
as an :class:`~feeds.live.base.Upstream`.

Every server message is a JSON array of objects, each typed by ``"T"``. A session goes::

    server [{"T":"success","msg":"connected"}]
    client {"action":"auth","key":...,"secret":...}
    server [{"T":"success","msg":"authenticated"}]   or [{"T":"error","code":402,...}]
    client {"action":"subscribe","trades":[...],"quotes":[...]}
    server [{"T":"subscription","trades":[...],"quotes":[...],...}]
    server [{"T":"q",...},{"T":"t",...},...]          trades and quotes, until the end

Sans I/O: :func:`decode_frame`, the handshake checks and :class:`StreamReader` (frames in,
trades out); :meth:`AlpacaUpstream.session` only connects, sends and receives. JSON only: Alpaca
sends msgpack only to a client that asks for it in its Content-Type header.

The key and the secret go into the auth frame and nowhere else: not into a repr, a log line
(websockets' frame dumps are turned off for this connection) or an error, where any text that
came from the server and contains them is masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedOK, WebSocketException

from feeds.live.base import (
    Connected,
    Gap,
    Skips,
    Trade,
    UpstreamError,
    UpstreamEvent,
    UpstreamRefused,
    describe,
)
from feeds.live.times import rfc3339_ms
from ticker.errors import ConfigError
from ticker.model import SymbolInfo

STREAMS = ("iex", "sip")
RECONNECTED = "reconnected: Alpaca's stream cannot replay the trades missed"
OPEN_TIMEOUT = 10.0
CONNECTION_LIMIT = 406
HANDSHAKE_TIMEOUT = 10.0  # for each reply of the handshake (the silence timeout may be long)
MAX_MESSAGE_BYTES = 2**24
PING_INTERVAL = 20.0

_SYMBOL = re.compile(r"[A-Z0-9.\-]{1,12}")
_CONTROL = ("success", "error", "subscription")
_MASK = "***"

Message = dict[str, Any]
Skip = Callable[[str, str | bytes], None]


# -- configuration ---------------------------------------------------------------------------


def parse_alpaca_source(args: str, universe: tuple[SymbolInfo, ...]
                        ) -> tuple[str, tuple[SymbolInfo, ...]]:
    """``"iex"`` -> ("iex", the universe); ``"sip:aapl,MSFT"`` -> ("sip", (AAPL, MSFT)), each
    with its name and sector from the universe when it is there. Raises ConfigError."""
    stream_text, listed, symbol_text = args.partition(":")
    stream = stream_text.strip().lower()
    if stream not in STREAMS:
        raise ConfigError("feed.source", f"the Alpaca stream must be \"iex\" or \"sip\" (as in "
                          f"\"alpaca:iex\" or \"alpaca:sip:AAPL,MSFT\"), got {stream_text!r}")
    if not listed:
        if not universe:
            raise ConfigError("feed.source", f"\"alpaca:{stream}\" streams the universe, which "
                              "is empty: list the symbols, as in \"alpaca:iex:AAPL,MSFT\"")
        return stream, universe
    names: dict[str, None] = {}  # an ordered set: a symbol named twice is asked for once
    for item in symbol_text.split(","):
        symbol = item.strip().upper()
        if not _SYMBOL.fullmatch(symbol):
            raise ConfigError("feed.source", f"{item.strip()!r} in {args!r} is not a stock "
                              "symbol (1 to 12 of A-Z, 0-9, \".\" and \"-\"; comma-separated)")
        names[symbol] = None
    known = {info.symbol: info for info in universe}
    return stream, tuple(known.get(symbol, SymbolInfo(symbol)) for symbol in names)


# -- messages, sans I/O ----------------------------------------------------------------------


def auth_action(key: str, secret: str) -> str:
    return orjson.dumps({"action": "auth", "key": key, "secret": secret}).decode()


def subscribe_action(symbols: Sequence[str]) -> str:
    """Trades, and quotes for their bid and ask."""
    return orjson.dumps({"action": "subscribe", "trades": list(symbols),
                         "quotes": list(symbols)}).decode()


def decode_frame(raw: str | bytes) -> list[Message]:
    """One server message as its objects; ValueError if it is not a JSON array of objects."""
    try:
        messages = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ValueError("not a JSON array of objects")
    return messages


def error_text(message: Message) -> str:
    """``{"T":"error","code":402,"msg":"auth failed"}`` -> ``"402 auth failed"``."""
    code, msg = message.get("code"), message.get("msg")
    return (f"{code if isinstance(code, int) else '(no code)'} "
            f"{msg[:200] if isinstance(msg, str) else '(no msg)'}")


def control_message(messages: list[Message]) -> Message | None:
    """The handshake's answer in one frame (success or subscription), None if it has none.
    Any error refuses us: raises UpstreamRefused ("402 auth failed")."""
    for message in messages:
        kind = message.get("T")
        if kind == "error":
            if message.get("code") == CONNECTION_LIMIT:
                # After a network drop Alpaca may count the old connection a while longer:
                # retry at the usual pace, not the refused one.
                raise UpstreamError(error_text(message))
            raise UpstreamRefused(error_text(message))
        if kind in _CONTROL:
            return message
    return None


def check_success(message: Message, msg: str) -> None:
    """``message`` must be ``{"T":"success","msg":msg}``; UpstreamError otherwise."""
    if message.get("T") != "success" or message.get("msg") != msg:
        raise UpstreamError(f"expected Alpaca's \"{msg}\", got {_shown(message)}")


def check_subscription(message: Message, symbols: Sequence[str]) -> None:
    """Every symbol must be among the subscription's trades: UpstreamRefused otherwise."""
    trades = message.get("trades")
    if message.get("T") != "subscription" or not isinstance(trades, list):
        raise UpstreamError(f"expected Alpaca's subscription, got {_shown(message)}")
    confirmed = set(trades)
    missing = [symbol for symbol in symbols if symbol not in confirmed]
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise UpstreamRefused(f"no trades of {', '.join(missing[:10])}{more} in the "
                              "subscription")


def _shown(message: Message) -> str:
    return orjson.dumps(message).decode()[:200]


Side = float | None  # a quote's bid or ask; None: no quote on that side (Alpaca's 0)


class StreamReader:
    """The data part of a session: frames in, trades out, each trade with the symbol's latest
    quote (the trade's price where there is none yet, and never a bid above the price or an
    ask below it). Unusable messages go to ``skip`` (why, what); an error raises
    UpstreamError; other types (bars, corrections, cancels, statuses...) are ignored."""

    def __init__(self, symbols: Iterable[str], skip: Skip) -> None:
        self._wanted = frozenset(symbols)
        self._skip = skip
        self._book: dict[str, tuple[Side, Side]] = {}
        self._handlers: dict[str, Callable[[Message], Trade | None]] = {
            "t": self._trade, "q": self._quote, "error": _raise_error}

    def read(self, raw: str | bytes) -> list[Trade]:
        try:
            messages = decode_frame(raw)
        except ValueError as error:
            self._skip(str(error), raw)
            return []
        trades = []
        for message in messages:
            kind = message.get("T")
            if not isinstance(kind, str):
                self._skip("a message without a \"T\"", _shown(message))
                continue
            handler = self._handlers.get(kind)
            trade = handler(message) if handler is not None else None
            if trade is not None:
                trades.append(trade)
        return trades

    def _trade(self, message: Message) -> Trade | None:
        symbol = self._symbol(message, "trade")
        if symbol is None:
            return None
        fields = _trade_fields(message)
        if isinstance(fields, str):
            self._skip(fields, _shown(message))
            return None
        price, size, ts = fields
        bid, ask = self._book.get(symbol, (None, None))
        return Trade(symbol, ts, price, size, price if bid is None else min(bid, price),
                     price if ask is None else max(ask, price))

    def _quote(self, message: Message) -> None:
        symbol = self._symbol(message, "quote")
        if symbol is None:
            return
        bid, ask = _number(message.get("bp")), _number(message.get("ap"))
        if bid is None or ask is None or bid < 0 or ask < 0:
            self._skip("a quote without a valid bid \"bp\" and ask \"ap\"", _shown(message))
            return
        # 0 is Alpaca's "nothing on this side": the trades after it take their own price.
        self._book[symbol] = (float(bid) or None, float(ask) or None)

    def _symbol(self, message: Message, what: str) -> str | None:
        """The message's symbol if it is one asked for; else skipped, None."""
        symbol = message.get("S")
        if isinstance(symbol, str) and symbol in self._wanted:
            return symbol
        self._skip(f"a {what} of {symbol[:20]!r}, which was not asked for"
                   if isinstance(symbol, str) else f"a {what} without a symbol \"S\"",
                   _shown(message))
        return None


def _trade_fields(message: Message) -> tuple[float, float, float] | str:
    """A trade's price, size (an int stays one) and time in Unix ms; or why it has none."""
    price, size = _number(message.get("p")), _number(message.get("s"))
    if price is None or price <= 0:
        return "a trade without a valid price \"p\""
    if size is None or size < 0:
        return "a trade without a valid size \"s\""
    try:
        return float(price), size, rfc3339_ms(message.get("t"))
    except (ValueError, OverflowError):
        return "a trade without a valid time \"t\""


def _raise_error(message: Message) -> None:
    raise UpstreamError(error_text(message))


def _number(value: object) -> int | float | None:
    """A finite JSON number (orjson's ints fit in 64 bits), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


# -- the connection --------------------------------------------------------------------------


class _WithoutFrames(logging.LoggerAdapter[logging.Logger]):
    """websockets' logger minus its DEBUG dumps of every frame: the auth frame holds the
    secret."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


_WS_LOG = _WithoutFrames(logging.getLogger("websockets.client"))


class AlpacaUpstream:
    """``stream`` "iex" or "sip"; ``symbols`` as our config describes them (Alpaca's stream
    has no names, sectors or reference prices)."""

    def __init__(self, stream: str, symbols: tuple[SymbolInfo, ...], url: str, key: str,
                 secret: str, silence_timeout: float | None) -> None:
        self.kind = f"alpaca-{stream}"
        self.label = f"Alpaca {stream.upper()} ({url})"
        self.silence_timeout = silence_timeout
        self._uri = f"{url.rstrip('/')}/v2/{stream}"
        self._symbols = symbols
        self._names = tuple(info.symbol for info in symbols)
        self._key = key
        self._secret = secret
        self._connected = 0  # sessions that got as far as Connected

    def __repr__(self) -> str:
        return f"AlpacaUpstream({self._uri!r}, {len(self._names)} symbols)"

    @property
    def symbols(self) -> Sequence[SymbolInfo]:
        return self._symbols

    async def session(self, skips: Skips) -> AsyncGenerator[UpstreamEvent, None]:
        def skip(why: str, raw: str | bytes) -> None:
            skips.skip(self._mask(why), self._mask(raw))

        async with contextlib.aclosing(self._session(skip)) as events:
            try:
                async for event in events:
                    yield event
            except (UpstreamError, OSError, WebSocketException) as error:
                masked = self._mask(describe(error))
                if masked == describe(error):
                    raise
                kind = UpstreamRefused if isinstance(error, UpstreamRefused) else UpstreamError
                raise kind(masked) from None

    async def _session(self, skip: Skip) -> AsyncGenerator[UpstreamEvent, None]:
        async with connect(self._uri, open_timeout=OPEN_TIMEOUT, max_size=MAX_MESSAGE_BYTES,
                           ping_interval=PING_INTERVAL, ping_timeout=PING_INTERVAL,
                           logger=_WS_LOG) as ws:
            check_success(await self._control(ws), "connected")
            await ws.send(auth_action(self._key, self._secret))
            check_success(await self._control(ws), "authenticated")
            await ws.send(subscribe_action(self._names))
            check_subscription(await self._control(ws), self._names)
            self._connected += 1
            yield Connected(self._symbols)
            if self._connected > 1:
                yield Gap(None, RECONNECTED)
            reader = StreamReader(self._names, skip)
            while True:
                try:
                    raw = await self._receive(ws)
                except ConnectionClosedOK:
                    return
                trades = reader.read(raw)
                if trades:
                    yield trades

    async def _control(self, ws: ClientConnection) -> Message:
        """The next control message of the handshake (data before it is not ours yet)."""
        while True:
            try:
                messages = decode_frame(await self._receive(ws, HANDSHAKE_TIMEOUT))
            except ValueError as error:
                raise UpstreamError(f"during the handshake: {error}") from None
            message = control_message(messages)
            if message is not None:
                return message

    async def _receive(self, ws: ClientConnection, timeout: float | None = None) -> str | bytes:
        """The next message, within ``timeout`` (the silence timeout by default)."""
        timeout = self.silence_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(timeout):
                return await ws.recv()
        except TimeoutError:
            raise UpstreamError(f"no message for {timeout:.0f} s") from None

    def _mask(self, text: str | bytes) -> str:
        shown = text if isinstance(text, str) else text.decode("utf-8", "replace")
        for credential in (self._secret, self._key):
            if credential:
                shown = shown.replace(credential, _MASK)
        return shown
