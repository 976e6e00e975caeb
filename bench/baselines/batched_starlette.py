"""Baseline 3: Starlette, each tick encoded once, every client flushed every 50 ms.

Each tick is serialised once and its bytes appended to every subscriber's pending list; a timer
sends each client everything pending as one "ticks" message every 50 ms.

    python bench/baselines/batched_starlette.py --port 8001 --symbols 100 --tick-rate 100
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
from common import (
    TICKS_PREFIX,
    TICKS_SUFFIX,
    hello,
    make_feed,
    parse_args,
    requested,
    serve,
    subscribed,
)
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

FLUSH_S = 0.05

args = parse_args(__doc__.splitlines()[0])
feed = make_feed(args)
known = {s.symbol for s in feed.symbols}


class Subscriber:
    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.pending: list[bytes] = []


subscribers: dict[str, list[Subscriber]] = {symbol: [] for symbol in known}
everyone: list[Subscriber] = []


async def endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(hello(feed))
    me = Subscriber(websocket)
    everyone.append(me)
    mine: list[str] = []
    try:
        while True:
            symbols = requested(await websocket.receive_text(), known)
            for symbol in symbols:
                if symbol not in mine:
                    subscribers[symbol].append(me)
                    mine.append(symbol)
            await websocket.send_text(subscribed(symbols))
    except WebSocketDisconnect:
        pass
    finally:
        everyone.remove(me)
        for symbol in mine:
            subscribers[symbol].remove(me)


async def collect() -> None:
    async for batch in feed.batches():
        for tick in batch:
            encoded = orjson.dumps(tick)
            for subscriber in subscribers[tick.symbol]:
                subscriber.pending.append(encoded)


async def flush() -> None:
    loop = asyncio.get_running_loop()
    due = loop.time()
    while True:
        # On a fixed 50 ms cadence; a round that overruns makes the next one start at once.
        due = max(due + FLUSH_S, loop.time())
        await asyncio.sleep(due - loop.time())
        for subscriber in list(everyone):
            if subscriber.pending:
                pending, subscriber.pending = subscriber.pending, []
                data = TICKS_PREFIX + b",".join(pending) + TICKS_SUFFIX
                with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                    await subscriber.websocket.send_text(data.decode())


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(collect()), asyncio.create_task(flush())]
    yield
    for task in tasks:
        task.cancel()


serve(Starlette(routes=[WebSocketRoute("/ws", endpoint)], lifespan=lifespan), args)
