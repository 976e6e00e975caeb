"""Query-string parameters shared by the HTTP transports (SSE, long polling)."""

from __future__ import annotations

from starlette.requests import Request

from ticker.errors import ProtocolError
from ticker.hub import Hub
from ticker.protocol import BAD_REQUEST, UNKNOWN_SYMBOL, name_list, parse_symbol_list, quote


class QueryError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def subscription_symbols(request: Request, hub: Hub, max_symbols: int) -> tuple[str, ...]:
    raw = request.query_params.get("symbols", "")
    if not raw.strip():
        raise QueryError(400, BAD_REQUEST, "missing parameter: symbols (e.g. ?symbols=AAPL,MSFT)")
    try:
        symbols = parse_symbol_list(raw)
    except ProtocolError as error:
        raise QueryError(400, error.code, error.message) from None
    if len(symbols) > max_symbols:
        raise QueryError(400, "too_many_symbols",
                         f"at most {max_symbols} symbols per subscription, got {len(symbols)}")
    unknown = hub.unknown(symbols)
    if unknown:
        raise QueryError(404, UNKNOWN_SYMBOL, f"unknown symbol(s): {name_list(unknown)}")
    return symbols


def number(request: Request, name: str, default: float, low: float, high: float) -> float:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise QueryError(400, BAD_REQUEST, f"{name} must be a number from {low:g} to {high:g}, "
                                           f"got {quote(raw)}")
    return value
