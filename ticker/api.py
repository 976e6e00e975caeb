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
from ticker.protocol import BAD_REQUEST, UNKNOWN_SYMBOL

DEFAULT_BAR_LIMIT = 300


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"type": "error", "code": code, "message": message}, status_code=status)


async def recordings(catalog: RecordingCatalog) -> JSONResponse:
    infos = await asyncio.to_thread(catalog.list)
    return JSONResponse([{"name": info.name, "size": info.size, "first_ts": info.first_ts,
                          "last_ts": info.last_ts, "symbols": list(info.symbols),
                          "tick_count": info.tick_count} for info in infos])


def symbols(hub: Hub) -> JSONResponse:
    return JSONResponse(hub.summaries())


def bars(request: Request, hub: Hub, bars_kept: int) -> JSONResponse:
    params = request.query_params
    unknown = sorted(set(params) - {"symbol", "interval", "limit"})
    if unknown:
        return error(400, BAD_REQUEST, f"unknown parameter(s): {', '.join(unknown)}")
    symbol = params.get("symbol", "").upper()
    if not symbol:
        return error(400, BAD_REQUEST, "missing parameter: symbol (e.g. ?symbol=AAPL)")
    if not hub.has_symbol(symbol):
        return error(404, UNKNOWN_SYMBOL, f"unknown symbol: {symbol}")
    interval = params.get("interval", "1s")
    if interval not in INTERVALS_MS:
        return error(400, BAD_REQUEST,
                     f"interval must be one of {', '.join(INTERVALS_MS)}, got {interval!r}")
    raw_limit = params.get("limit", str(DEFAULT_BAR_LIMIT))
    if not raw_limit.isdigit() or int(raw_limit) < 1:
        return error(400, BAD_REQUEST, f"limit must be a positive integer, got {raw_limit!r}")
    # More than is kept is not an error: the answer is simply all there is.
    limit = min(int(raw_limit), bars_kept)
    return JSONResponse({"symbol": symbol, "interval": interval,
                         "seq": hub.last_seq(symbol), "bars": hub.bars(symbol, interval, limit)})


def health() -> JSONResponse:
    return JSONResponse({"status": "ok"})


def readiness(hub: Hub, broker_connected: bool) -> JSONResponse:
    if not broker_connected:
        return JSONResponse({"status": "not ready", "reason": "broker unreachable"},
                            status_code=503)
    if hub.ready:
        return JSONResponse({"status": "ready", "epoch": hub.epoch, "feed": hub.feed,
                             "connections": hub.connections})
    return JSONResponse({"status": "not ready", "reason": "no feed yet"}, status_code=503)
