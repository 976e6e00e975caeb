"""Alpaca's market-data stream v2, sans I/O: client actions in -> commands; messages -> frames.

The contract is Alpaca's documentation of ``wss://stream.data.alpaca.markets/v2/{feed}`` and what
its SDKs (alpaca-py, the Go client) send and expect. Every message from the server is a JSON or
msgpack array; control messages (success, error, subscription) travel alone, data in batches.
The codec is chosen per connection: msgpack when the upgrade request says
``Content-Type: application/msgpack`` (alpaca-py always does), JSON otherwise. ``t`` is an RFC
3339 string (nanosecond precision, trailing zeros trimmed as Go prints it) in JSON and a msgpack
Timestamp in msgpack, which is what alpaca-py calls ``to_datetime()`` on.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import orjson

from ticker.bars import TradeBar
from ticker.errors import AlpacaError

# Error codes and their fixed messages, as Alpaca documents them.
INVALID_SYNTAX = 400
NOT_AUTHENTICATED = 401
AUTH_FAILED = 402
ALREADY_AUTHENTICATED = 403
AUTH_TIMEOUT = 404
SYMBOL_LIMIT_EXCEEDED = 405
CONNECTION_LIMIT_EXCEEDED = 406
SLOW_CLIENT = 407
INSUFFICIENT_SUBSCRIPTION = 409
INVALID_FOR_FEED = 410
INTERNAL_ERROR = 500
ERROR_MESSAGES = {
    INVALID_SYNTAX: "invalid syntax",
    NOT_AUTHENTICATED: "not authenticated",
    AUTH_FAILED: "auth failed",
    ALREADY_AUTHENTICATED: "already authenticated",
    AUTH_TIMEOUT: "auth timeout",
    SYMBOL_LIMIT_EXCEEDED: "symbol limit exceeded",
    CONNECTION_LIMIT_EXCEEDED: "connection limit exceeded",
    SLOW_CLIENT: "slow client",
    INSUFFICIENT_SUBSCRIPTION: "insufficient subscription",
    INVALID_FOR_FEED: "invalid subscribe action for this feed",
    INTERNAL_ERROR: "internal error",
}

# The stock stream's channels, in the order a subscription message lists them.
CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
# Alpaca subscribes these along with trades; a client may name them, and they follow trades.
TRADE_COMPANIONS = ("corrections", "cancelErrors")
# Channels of Alpaca's other streams (crypto order books, news): the Go SDK sends them, empty,
# to every stream; non-empty they are the documented 410 here.
OTHER_STREAM_CHANNELS = ("orderbooks", "news")
WILDCARD = "*"

# Every feed path of Alpaca's stock stream; all of them serve the same market here.
FEEDS = frozenset({"iex", "sip", "delayed_sip", "boats", "overnight", "otc", "test"})

MSGPACK_CONTENT_TYPE = "application/msgpack"

# What our single venue looks like in Alpaca's fields: "V" is IEX's exchange code, "C" a tape,
# "@" a regular sale and "R" a regular two-sided quote. Our ticks carry no book sizes, so a
# quote offers one round lot (Alpaca's quote sizes are in round lots) on each side.
EXCHANGE = "V"
TAPE = "C"
TRADE_CONDITIONS = ("@",)
QUOTE_CONDITIONS = ("R",)
QUOTE_SIZE_LOTS = 1

_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9.\-/]{0,15}$")


class Codec(enum.Enum):
    JSON = "json"
    MSGPACK = "msgpack"

    @classmethod
    def for_content_type(cls, content_type: str | None) -> Codec:
        media_type = (content_type or "").partition(";")[0].strip().lower()
        return cls.MSGPACK if media_type == MSGPACK_CONTENT_TYPE else cls.JSON


@dataclass(frozen=True, slots=True)
class Auth:
    key: str
    secret: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Symbols to add per channel (only the channels the message named)."""

    channels: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channels: Mapping[str, tuple[str, ...]]


Command = Auth | Subscribe | Unsubscribe


def parse_action(raw: str | bytes, codec: Codec) -> Command:
    """Decode one client message: a text frame is JSON; a binary frame is msgpack on a msgpack
    connection (JSON otherwise). Raises AlpacaError 400, or 410 for another stream's channel."""
    message = _decode(raw, codec)
    if not isinstance(message, dict):
        raise _invalid("a message must be an object like {\"action\": ...}")
    action = message.get("action")
    if action == "auth":
        key, secret = message.get("key"), message.get("secret")
        if set(message) - {"action", "key", "secret"} or not isinstance(key, str) \
                or not isinstance(secret, str):
            raise _invalid("auth takes exactly \"key\" and \"secret\", both strings")
        return Auth(key, secret)
    if action in ("subscribe", "unsubscribe"):
        channels = _channels(message)
        return Subscribe(channels) if action == "subscribe" else Unsubscribe(channels)
    raise _invalid(f"unknown action {action!r}; expected auth, subscribe or unsubscribe")


def _decode(raw: str | bytes, codec: Codec) -> Any:
    if isinstance(raw, bytes) and codec is Codec.MSGPACK:
        try:
            return msgpack.unpackb(raw)
        except (ValueError, TypeError, msgpack.UnpackException) as error:
            raise _invalid(f"not msgpack: {error}") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise _invalid(f"not JSON: {error}") from None


def _channels(message: dict[Any, Any]) -> dict[str, tuple[str, ...]]:
    channels: dict[str, tuple[str, ...]] = {}
    for key, value in message.items():
        if key == "action":
            continue
        symbols = _symbols(key, value)
        if key in CHANNELS:
            channels[key] = symbols
        elif key in OTHER_STREAM_CHANNELS:
            if symbols:
                raise AlpacaError(INVALID_FOR_FEED, ERROR_MESSAGES[INVALID_FOR_FEED],
                                  f"{key} are not streamed for stocks")
        elif key not in TRADE_COMPANIONS:
            raise _invalid(f"unknown channel {key!r}")
    if not channels:
        raise _invalid(f"name at least one of {', '.join(CHANNELS)}")
    return channels


def _symbols(channel: Any, value: Any) -> tuple[str, ...]:
    """A channel's symbols, upper-cased and deduplicated; null (Go's empty slice) is none."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _invalid(f"{channel} must be an array of symbols")
    symbols: dict[str, None] = {}
    for item in value:
        symbol = item.upper() if isinstance(item, str) else None
        if symbol is None or not (symbol == WILDCARD or (symbol.isascii()
                                                         and _SYMBOL.match(symbol))):
            raise _invalid(f"{channel}: {item!r} is not a symbol")
        symbols[symbol] = None
    return tuple(symbols)


def _invalid(detail: str) -> AlpacaError:
    return AlpacaError(INVALID_SYNTAX, ERROR_MESSAGES[INVALID_SYNTAX], detail)


# -- server messages -------------------------------------------------------------------------

Message = dict[str, Any]

CONNECTED: Message = {"T": "success", "msg": "connected"}
AUTHENTICATED: Message = {"T": "success", "msg": "authenticated"}


def error(code: int) -> Message:
    return {"T": "error", "code": code, "msg": ERROR_MESSAGES[code]}


def subscription(channels: Mapping[str, Sequence[str]]) -> Message:
    """The full current subscription, every channel listed (corrections and cancelErrors mirror
    trades, as at Alpaca)."""
    message: Message = {"T": "subscription"}
    for channel in CHANNELS:
        message[channel] = list(channels.get(channel, ()))
    for companion in TRADE_COMPANIONS:
        message[companion] = list(channels.get("trades", ()))
    return message


def encode(messages: Sequence[Message], codec: Codec) -> bytes:
    """One frame: a JSON text (as UTF-8 bytes) or a msgpack binary message."""
    if codec is Codec.MSGPACK:
        packed: bytes = msgpack.packb(messages)
        return packed
    return orjson.dumps(messages)


# -- time ------------------------------------------------------------------------------------

TimeEncoder = Callable[[float], object]
"""Float milliseconds -> ``t`` as the connection's codec carries it (str or msgpack Timestamp)."""


def nanoseconds(ms: float) -> int:
    """Our timestamps are float milliseconds with microsecond digits; via whole microseconds,
    since ms x 1e6 as a float is off by up to 128 ns at today's magnitudes."""
    return round(ms * 1000.0) * 1000


def rfc3339(ns: int) -> str:
    """``2025-11-23T06:40:00.014163Z``: nanosecond precision with trailing zeros trimmed and no
    fraction at all on a whole second, as Go's RFC3339Nano (Alpaca's servers) prints it."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


def time_encoder(codec: Codec) -> TimeEncoder:
    if codec is Codec.MSGPACK:
        return lambda ms: msgpack.Timestamp.from_unix_nano(nanoseconds(ms))
    return lambda ms: rfc3339(nanoseconds(ms))


# -- data points -----------------------------------------------------------------------------
# Built from protocol v1's tick objects (decoded once per drain, see ticker.alpaca.stream).


def trade(tick: Mapping[str, Any], t: object) -> Message:
    """``i`` is the tick's seq: unique per symbol within a feed run."""
    return {"T": "t", "S": tick["symbol"], "i": tick["seq"], "x": EXCHANGE, "p": tick["price"],
            "s": tick["size"], "c": list(TRADE_CONDITIONS), "z": TAPE, "t": t}


def quote(tick: Mapping[str, Any], t: object) -> Message:
    return {"T": "q", "S": tick["symbol"], "bx": EXCHANGE, "bp": tick["bid"],
            "bs": QUOTE_SIZE_LOTS, "ax": EXCHANGE, "ap": tick["ask"], "as": QUOTE_SIZE_LOTS,
            "c": list(QUOTE_CONDITIONS), "z": TAPE, "t": t}


MINUTE_BAR = "b"
DAILY_BAR = "d"
UPDATED_BAR = "u"


def bar(kind: str, symbol: str, data: TradeBar, t: object) -> Message:
    """``t`` is the bar's start; ``n`` (trades) and ``vw`` (VWAP) are always there, as
    alpaca-py's Bar model requires them."""
    return {"T": kind, "S": symbol, "o": data.open, "h": data.high, "l": data.low,
            "c": data.close, "v": data.volume, "n": data.trades, "vw": round(data.vwap, 6),
            "t": t}
