"""REST endpoints: /api/symbols, /api/bars, /healthz, /readyz. Errors are JSON, never a 500."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from feeds.catalog import RecordingCatalog
from ticker.bars import INTERVALS_MS
from ticker.hub import Hub
from ticker.protocol import BAD_REQUEST, UNKNOWN_SYMBOL, is_symbol, name_list, quote
from ticker.stats import Stats

DEFAULT_BAR_LIMIT = 300


class JSONResponse(Response):
    media_type = "application/json"

    def __init__(self, content: Any, status_code: int = 200,
                 headers: dict[str, str] | None = None) -> None:
        # nosniff: no browser may take a JSON answer that quotes client input for a page.
        super().__init__(content, status_code,
                         {"X-Content-Type-Options": "nosniff", **(headers or {})})

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"type": "error", "code": code, "message": message}, status_code=status)


def refuse_when_full(stats: Stats, max_connections: int) -> JSONResponse:
    stats.refused["capacity"] += 1
    return JSONResponse({"type": "error", "code": "server_full",
                         "message": f"this server holds its maximum of {max_connections} "
                                    "connections: retry later or elsewhere"},
                        status_code=503, headers={"Retry-After": "5"})


async def recordings(catalog: RecordingCatalog) -> JSONResponse:
    infos = await asyncio.to_thread(catalog.list)
    return JSONResponse([{"name": info.name, "size": info.size, "first_ts": info.first_ts,
                          "last_ts": info.last_ts, "symbols": list(info.symbols),
                          "tick_count": info.tick_count,
                          "unreadable_lines": info.unreadable_lines} for info in infos])


def symbols(hub: Hub) -> JSONResponse:
    return JSONResponse(hub.summaries())


def bars(request: Request, hub: Hub, bars_kept: int) -> JSONResponse:
    params = request.query_params
    unknown = sorted(set(params) - {"symbol", "interval", "limit", "token"})
    if unknown:
        names = name_list([quote(name) for name in unknown])
        return error(400, BAD_REQUEST, f"unknown parameter(s): {names}")
    symbol = params.get("symbol", "").upper()
    if not symbol:
        return error(400, BAD_REQUEST, "missing parameter: symbol (e.g. ?symbol=AAPL)")
    if not is_symbol(symbol):
        return error(400, BAD_REQUEST, "symbol must be 1-12 letters, digits, '.' or '-'")
    if not hub.has_symbol(symbol):
        return error(404, UNKNOWN_SYMBOL, f"unknown symbol: {symbol}")
    interval = params.get("interval", "1s")
    if interval not in INTERVALS_MS:
        return error(400, BAD_REQUEST,
                     f"interval must be one of {', '.join(INTERVALS_MS)}, got {quote(interval)}")
    raw_limit = params.get("limit", str(DEFAULT_BAR_LIMIT))
    if not raw_limit.isdigit() or int(raw_limit) < 1:
        return error(400, BAD_REQUEST, f"limit must be a positive integer, got {quote(raw_limit)}")
    # More than is kept is not an error: the answer is simply all there is.
    limit = min(int(raw_limit), bars_kept)
    return JSONResponse({"symbol": symbol, "interval": interval,
                         "seq": hub.last_seq(symbol), "bars": hub.bars(symbol, interval, limit)})


def health() -> JSONResponse:
    return JSONResponse({"status": "ok"})
