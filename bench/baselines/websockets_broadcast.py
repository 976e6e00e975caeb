"""Baseline 2: the websockets library's broadcast(), each tick encoded once, one frame per tick.

    python bench/baselines/websockets_broadcast.py --port 8001 --symbols 100 --tick-rate 100
"""

from __future__ import annotations

import asyncio

import orjson
from common import TICKS_PREFIX, TICKS_SUFFIX, hello, make_feed, parse_args, requested, subscribed
from websockets.asyncio.server import ServerConnection, broadcast, serve

args = parse_args(__doc__.splitlines()[0])
feed = make_feed(args)
known = {s.symbol for s in feed.symbols}
subscribers: dict[str, set[ServerConnection]] = {symbol: set() for symbol in known}


async def handler(connection: ServerConnection) -> None:
    await connection.send(hello(feed))
    mine: list[str] = []
    try:
        async for text in connection:
            symbols = requested(text, known)
            for symbol in symbols:
                subscribers[symbol].add(connection)
                mine.append(symbol)
            await connection.send(subscribed(symbols))
    finally:
        for symbol in mine:
            subscribers[symbol].discard(connection)


async def main() -> None:
    async with serve(handler, args.host, args.port, compression=None):
        async for batch in feed.batches():
            for tick in batch:
                message = TICKS_PREFIX + orjson.dumps(tick) + TICKS_SUFFIX
                broadcast(subscribers[tick.symbol], message, text=True)


try:
    import uvloop  # what uvicorn uses for the other servers
except ImportError:
    asyncio.run(main())
else:
    uvloop.run(main())
