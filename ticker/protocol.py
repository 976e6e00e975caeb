"""Wire protocol v1, sans I/O: client text in -> command objects; server messages -> JSON bytes.

Nothing here touches a socket or the event loop, so it is tested without a server. docs/protocol.md
is the contract; ``web/protocol.js`` mirrors the names below and a test keeps the two in sync.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ticker.errors import ProtocolError
from ticker.model import SymbolInfo, Tick

PROTOCOL_VERSION = 1

# Error codes sent in {"type":"error","code":...}.
BAD_JSON = "bad_json"
BAD_REQUEST = "bad_request"
UNKNOWN_OP = "unknown_op"
UNKNOWN_SYMBOL = "unknown_symbol"
TOO_MANY_SYMBOLS = "too_many_symbols"
RATE_LIMITED = "rate_limited"
ERROR_CODES = (BAD_JSON, BAD_REQUEST, UNKNOWN_OP, UNKNOWN_SYMBOL, TOO_MANY_SYMBOLS, RATE_LIMITED)

# Close codes in two ranges (docs/protocol.md). "Reconnect": the server is going, busy or
# dropped this connection for something the next one need not repeat. "Do not reconnect": the
# client sent something the server will refuse again; reconnecting blindly would loop.
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED_DATA = 1003  # a binary frame on the JSON protocol
CLOSE_INVALID_DATA = 1007  # text that is not UTF-8 (uvicorn closes; listed for clients)
CLOSE_POLICY_VIOLATION = 1008  # kept sending ops far over the rate limit
CLOSE_TOO_BIG = 1009  # a message over server.ws_max_message_bytes (uvicorn closes)
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_IDLE = 4001  # subscribed to nothing for server.idle_timeout
CLOSE_SLOW_CONSUMER = 4008
CLOSE_BAD_REQUEST = 4500
CLOSE_CODES = {"going_away": CLOSE_GOING_AWAY, "unsupported_data": CLOSE_UNSUPPORTED_DATA,
               "invalid_data": CLOSE_INVALID_DATA, "policy_violation": CLOSE_POLICY_VIOLATION,
               "too_big": CLOSE_TOO_BIG, "internal_error": CLOSE_INTERNAL_ERROR,
               "try_again_later": CLOSE_TRY_AGAIN_LATER, "idle": CLOSE_IDLE,
               "slow_consumer": CLOSE_SLOW_CONSUMER, "bad_request": CLOSE_BAD_REQUEST}
TERMINAL_CLOSE_CODES = (CLOSE_UNSUPPORTED_DATA, CLOSE_INVALID_DATA, CLOSE_POLICY_VIOLATION,
                        CLOSE_TOO_BIG)
TERMINAL_CLOSE_RANGE = (4500, 4999)


def is_terminal_close(code: int) -> bool:
    """Whether a client should stop rather than reconnect after this close code."""
    return code in TERMINAL_CLOSE_CODES or \
        TERMINAL_CLOSE_RANGE[0] <= code <= TERMINAL_CLOSE_RANGE[1]

MESSAGE_TYPES = ("hello", "subscribed", "unsubscribed", "snapshot", "ticks", "pong", "error")
OPS = ("subscribe", "unsubscribe", "ping")

# Checked after upper-casing, so "aapl" is AAPL; nothing else ever reaches the hub or a reply.
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9.\-]{1,12}$")


def is_symbol(text: str) -> bool:
    # isascii() first: str.upper() maps some letters outside ASCII into it ("ß" -> "SS").
    return text.isascii() and SYMBOL_PATTERN.match(text) is not None

RequestId = int | str | None


@dataclass(frozen=True, slots=True)
class Resume:
    epoch: str
    seqs: dict[str, int]


@dataclass(frozen=True, slots=True)
class Subscribe:
    symbols: tuple[str, ...]
    id: RequestId = None
    resume: Resume | None = None
    max_rate: float = 0.0  # updates per second per symbol, conflated to the latest; 0 = every tick


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    symbols: tuple[str, ...]
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class Ping:
    id: RequestId = None


Command = Subscribe | Unsubscribe | Ping


def parse_command(raw: str | bytes) -> Command:
    """Decode one client message, or raise ProtocolError with the wire error code."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ProtocolError(BAD_JSON, f"message is not valid JSON: {error}") from None
    if not isinstance(message, dict):
        raise ProtocolError(BAD_REQUEST, "message must be a JSON object like {\"op\": ...}")
    request_id = _request_id(message)
    op = message.get("op")
    if op is None:
        raise ProtocolError(BAD_REQUEST, "message has no \"op\"", request_id)
    if op == "ping":
        _no_extra_keys(message, {"op", "id"}, request_id)
        return Ping(request_id)
    if op == "subscribe":
        _no_extra_keys(message, {"op", "id", "symbols", "resume", "max_rate"}, request_id)
        symbols = _symbols(message, request_id)
        resume = _resume(message.get("resume"), request_id)
        return Subscribe(symbols, request_id, resume, parse_max_rate(message.get("max_rate"),
                                                                     request_id))
    if op == "unsubscribe":
        _no_extra_keys(message, {"op", "id", "symbols"}, request_id)
        return Unsubscribe(_symbols(message, request_id), request_id)
    raise ProtocolError(UNKNOWN_OP, f"unknown op {quote(op)}; expected one of {', '.join(OPS)}",
                        request_id)


def request_id_of(raw: str | bytes) -> RequestId:
    """The ``id`` of a message that is refused unapplied, if it has a valid one."""
    try:
        message = orjson.loads(raw)
        return _request_id(message) if isinstance(message, dict) else None
    except (orjson.JSONDecodeError, ProtocolError):
        return None


def _request_id(message: dict[str, Any]) -> RequestId:
    request_id = message.get("id")
    if request_id is None or (isinstance(request_id, int | str)
                              and not isinstance(request_id, bool)):
        if isinstance(request_id, str) and len(request_id) > 64:
            raise ProtocolError(BAD_REQUEST, "\"id\" must be at most 64 characters")
        return request_id
    raise ProtocolError(BAD_REQUEST, "\"id\" must be an integer or a string")


def _no_extra_keys(message: dict[str, Any], allowed: set[str], request_id: RequestId) -> None:
    extra = sorted(set(message) - allowed)
    if extra:
        fields = name_list([quote(name) for name in extra])
        raise ProtocolError(BAD_REQUEST, f"unexpected field(s) {fields} for op "
                            f"{quote(message['op'])}", request_id)


def _symbols(message: dict[str, Any], request_id: RequestId) -> tuple[str, ...]:
    symbols = message.get("symbols")
    if not isinstance(symbols, list) or not symbols:
        raise ProtocolError(BAD_REQUEST, "\"symbols\" must be a non-empty array of strings",
                            request_id)
    normalized: dict[str, None] = {}
    for symbol in symbols:
        if not isinstance(symbol, str) or not symbol.isascii() or not is_symbol(symbol.upper()):
            raise ProtocolError(BAD_REQUEST, f"{quote(symbol)} is not a symbol (1-12 letters, "
                                "digits, '.' or '-')", request_id)
        normalized[symbol.upper()] = None
    return tuple(normalized)


MAX_RATE_LIMIT = 1000.0


def parse_max_rate(value: Any, request_id: RequestId = None) -> float:
    """``max_rate`` as given by a client (JSON number or query-string text); None means off."""
    if value is None:
        return 0.0
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not 0 < value <= MAX_RATE_LIMIT):
        raise ProtocolError(BAD_REQUEST, f"\"max_rate\" must be a number of updates per second "
                            f"above 0 and at most {MAX_RATE_LIMIT:g}", request_id)
    return float(value)


def parse_symbol_list(text: str) -> tuple[str, ...]:
    """Symbols from a query string ("AAPL,msft"), normalized like a subscribe's."""
    return _symbols({"symbols": [part.strip() for part in text.split(",") if part.strip()]}, None)


def _resume(resume: Any, request_id: RequestId) -> Resume | None:
    if resume is None:
        return None
    problem = ("\"resume\" must be {\"epoch\": a string, \"seqs\": {\"SYMBOL\": an integer, "
               "0 or more, ...}}")
    if not isinstance(resume, dict) or set(resume) - {"epoch", "seqs"}:
        raise ProtocolError(BAD_REQUEST, problem, request_id)
    epoch, seqs = resume.get("epoch"), resume.get("seqs")
    if not isinstance(epoch, str) or not isinstance(seqs, dict):
        raise ProtocolError(BAD_REQUEST, problem, request_id)
    for seq in seqs.values():
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise ProtocolError(BAD_REQUEST, problem, request_id)
    return Resume(epoch, {symbol.upper(): seq for symbol, seq in seqs.items()})


def quote(value: Any) -> str:
    """A client's value quoted in an error message: short, and with no character that markup
    could interpret, should a careless page ever put the message into HTML."""
    text = orjson.dumps(value).decode() if value is not None else "null"
    text = text if len(text) <= 40 else text[:37] + "..."
    return text.translate(_MARKUP_ESCAPES)


def name_list(names: Sequence[str], shown: int = 8) -> str:
    """``names`` joined for an error message, the first ``shown`` of them only: a reply stays a
    few hundred bytes whatever a client sent."""
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


MAX_ERROR_MESSAGE = 400  # characters; longer messages are cut (a last guard, see name_list)

_MARKUP_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "'": "\\u0027"})


# Server -> client. Ticks are encoded once per tick and the bytes shared by every recipient, so the
# messages that carry ticks are assembled from pre-encoded pieces rather than re-serialised.


def encode_tick(tick: Tick) -> bytes:
    # A dict literal serialises about twice as fast as orjson's dataclass path (measured).
    encoded = orjson.dumps({"symbol": tick.symbol, "seq": tick.seq, "ts": tick.ts,
                            "price": tick.price, "size": tick.size, "bid": tick.bid,
                            "ask": tick.ask})
    # orjson (3.13) returns its 4 KB working buffer as the bytes object: measured with
    # tracemalloc, 4,098 bytes held for a 110-byte tick. Ticks live on in history (a million at
    # the defaults: 4 GB instead of 150 MB), so each is copied once into an exact-size object
    # (147 bytes held). %-formatting copies in 0.10 us where bytes(memoryview()) took 0.44
    # (2026-12-04, same run), once per tick, not per client.
    return b"%b" % encoded


_FIN_TEXT = 0x81


def text_frame_header(length: int) -> bytes:
    """The header of a server's unmasked, final text frame of ``length`` bytes (RFC 6455 5.2)."""
    if length < 126:
        return bytes((_FIN_TEXT, length))
    if length < 1 << 16:
        return struct.pack("!BBH", _FIN_TEXT, 126, length)
    return struct.pack("!BBQ", _FIN_TEXT, 127, length)


TICKS_PREFIX = b'{"type":"ticks","ticks":['
TICKS_SUFFIX = b"]}"


def encode_ticks(encoded_ticks: Sequence[bytes]) -> bytes:
    return TICKS_PREFIX + b",".join(encoded_ticks) + TICKS_SUFFIX


def encode_snapshot(symbol: str, epoch: str, encoded_ticks: Iterable[bytes], reset: bool,
                    seq: int) -> bytes:
    """``seq`` is where the snapshot leaves the client: the next tick of the symbol is seq + 1
    (it tells a client where a stream continues even when the snapshot holds no tick)."""
    head = {"type": "snapshot", "symbol": symbol, "epoch": epoch, "reset": reset, "seq": seq}
    return orjson.dumps(head)[:-1] + b',"ticks":[' + b",".join(encoded_ticks) + b"]}"


def encode_hello(epoch: str, feed: str, symbols: Sequence[SymbolInfo]) -> bytes:
    return orjson.dumps({"type": "hello", "version": PROTOCOL_VERSION, "epoch": epoch,
                         "feed": feed, "symbols": [info.symbol for info in symbols]})


def encode_subscribed(symbols: Sequence[str], request_id: RequestId,
                      resumed: Sequence[str] = ()) -> bytes:
    return orjson.dumps(_with_id({"type": "subscribed", "symbols": list(symbols),
                                  "resumed": list(resumed)}, request_id))


def encode_unsubscribed(symbols: Sequence[str], request_id: RequestId) -> bytes:
    return orjson.dumps(_with_id({"type": "unsubscribed", "symbols": list(symbols)}, request_id))


def encode_pong(request_id: RequestId, server_ms: float) -> bytes:
    return orjson.dumps(_with_id({"type": "pong", "ts": round(server_ms, 3)}, request_id))


def encode_error(code: str, message: str, request_id: RequestId = None,
                 **extra: Any) -> bytes:
    if len(message) > MAX_ERROR_MESSAGE:
        message = message[:MAX_ERROR_MESSAGE - 3] + "..."
    return orjson.dumps(_with_id({"type": "error", "code": code, "message": message, **extra},
                                 request_id))


def _with_id(message: dict[str, Any], request_id: RequestId) -> dict[str, Any]:
    if request_id is not None:
        message["id"] = request_id
    return message


@dataclass(slots=True)
class Frames:
    """Splits a run of encoded ticks into "ticks" messages of at most ``max_bytes`` each."""

    max_bytes: int
    out: list[bytes] = field(default_factory=list)

    def add_ticks(self, encoded_ticks: Sequence[bytes]) -> None:
        budget = self.max_bytes - len(TICKS_PREFIX) - len(TICKS_SUFFIX)
        start, size = 0, 0
        for index, data in enumerate(encoded_ticks):
            size += len(data) + 1
            if size > budget and index > start:
                self.out.append(encode_ticks(encoded_ticks[start:index]))
                start, size = index, len(data) + 1
        if start < len(encoded_ticks):
            self.out.append(encode_ticks(encoded_ticks[start:]))
