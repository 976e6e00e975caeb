"""The market of the Node.js baseline (node_ws/server.js), written to stdout for node to fan out.

The same SimulatedFeed as the other baselines (common.py), so node carries the same ticks and seqs,
each encoded by ticker's own encoding (orjson of the Tick). Node starts this program itself and
reads its stdout; one line is one message, and nothing in it needs parsing per tick:

    {"type":"hello",...}                  first line: the hello node sends every client, verbatim
    S0001<TAB>{tick}<TAB>S0042<TAB>{tick}  then one line per batch: symbol and encoded tick, pairs

orjson escapes tabs and newlines inside strings, so neither occurs in a tick's JSON. Writes
block while node is behind: the market then falls behind with it, as it would in one process.

    python bench/baselines/node_feed.py --symbols 100 --tick-rate 100 --seed 1 | head
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import orjson
from common import hello, make_feed


def parse_args() -> argparse.Namespace:
    # The market arguments of common.parse_args; this program listens on no port.
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100, help="synthetic symbols S0001..SN")
    parser.add_argument("--tick-rate", type=float, required=True, help="ticks/s in total")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


async def main() -> None:
    feed = make_feed(parse_args())
    fd = sys.stdout.fileno()
    write(fd, hello(feed).encode() + b"\n")
    async for batch in feed.batches():
        parts = []
        for tick in batch:
            parts.append(tick.symbol.encode())
            parts.append(orjson.dumps(tick))
        write(fd, b"\t".join(parts) + b"\n")


def run() -> None:
    try:
        import uvloop  # the event loop, and so the pacing, of the other baselines
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


if __name__ == "__main__":
    try:
        run()
    except (BrokenPipeError, KeyboardInterrupt):
        # Node went away (or was stopped): nothing is left to feed.
        os._exit(0)
