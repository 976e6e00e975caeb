"""Refusing a WebSocket handshake with an HTTP response (the ASGI denial-response extension).

uvicorn's websockets-sansio protocol (0.54) never marks such a handshake as finished, so each
refusal also logs "ASGI callable returned without completing handshake." at ERROR: noise that
alerting on ERROR would page someone for, on every bad token or foreign Origin
(Kludex/uvicorn#3138). The refusal is marked in a context variable, which uvicorn's task still
sees when it logs, and ticker.logs drops exactly that line for exactly those connections.
"""

from __future__ import annotations

from contextvars import ContextVar

from starlette.responses import Response
from starlette.websockets import WebSocket

DENIAL_SENT: ContextVar[bool] = ContextVar("ticker_denial_sent", default=False)
UVICORN_INCOMPLETE_HANDSHAKE = "ASGI callable returned without completing handshake."


async def send_denial(websocket: WebSocket, response: Response) -> None:
    DENIAL_SENT.set(True)
    await websocket.send_denial_response(response)
