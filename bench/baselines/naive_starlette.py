"""Baseline 1: the naive Starlette pattern, json.dumps + send_text per tick per client.

The broadcast loop of the Starlette/FastAPI WebSocket tutorials ("ConnectionManager"): for each
tick, for each subscriber, serialise the message and await the send.

    python bench/baselines/naive_starlette.py --port 8001 --symbols 100 --tick-rate 100
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from common import hello, make_feed, parse_args, requested, serve, subscribed, tick_dict
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

args = parse_args(__doc__.splitlines()[0])
feed = make_feed(args)
known = {s.symbol for s in feed.symbols}
subscribers: dict[str, list[WebSocket]] = {symbol: [] for symbol in known}


async def endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(hello(feed))
    mine: list[str] = []
    try:
        while True:
            symbols = requested(await websocket.receive_text(), known)
            for symbol in symbols:
                if symbol not in mine:
                    subscribers[symbol].append(websocket)
                    mine.append(symbol)
            await websocket.send_text(subscribed(symbols))
    except WebSocketDisconnect:
        pass
    finally:
        for symbol in mine:
            subscribers[symbol].remove(websocket)


async def broadcast() -> None:
    async for batch in feed.batches():
        for tick in batch:
            message = {"type": "ticks", "ticks": [tick_dict(tick)]}
            for websocket in list(subscribers[tick.symbol]):
                with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                    await websocket.send_text(json.dumps(message))


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    task = asyncio.create_task(broadcast())
    yield
    task.cancel()


serve(Starlette(routes=[WebSocketRoute("/ws", endpoint)], lifespan=lifespan), args)
