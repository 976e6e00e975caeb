"""What the three baselines share: command line, market, and the few messages they speak.

Each baseline serves the subset of protocol v1 the benchmark uses: a ``hello``, ``subscribe``
answered by ``subscribed``, then ``ticks`` messages whose tick objects are ticker's own. The
market is ticker's SimulatedFeed on the same synthetic universe and seed as ``ticker serve
--symbols N --seed S``, paced by ``batches()``, so every server carries the same ticks and seqs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    # Run as ``python bench/baselines/x.py`` from a checkout: find feeds/ and ticker/ there.
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import uvicorn  # noqa: E402

from feeds.simulated import SimulatedFeed, synthetic_universe  # noqa: E402
from ticker.config import load_config  # noqa: E402
from ticker.model import Tick  # noqa: E402

TICKS_PREFIX = b'{"type":"ticks","ticks":['
TICKS_SUFFIX = b"]}"


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--symbols", type=int, default=100, help="synthetic symbols S0001..SN")
    parser.add_argument("--tick-rate", type=float, required=True, help="ticks/s in total")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def make_feed(args: argparse.Namespace) -> SimulatedFeed:
    # The built-in defaults only (no file, no TICKER_* variables), as the bench runs ours.
    market = load_config(environ={}).feed.market
    stocks = synthetic_universe(args.symbols, args.seed)
    return SimulatedFeed(stocks, market, args.tick_rate, args.seed)


def hello(feed: SimulatedFeed) -> str:
    return orjson.dumps({"type": "hello", "version": 1, "epoch": "baseline",
                         "feed": feed.kind, "symbols": [s.symbol for s in feed.symbols]}).decode()


def requested(text: str | bytes, known: set[str]) -> list[str]:
    """The known symbols of a ``subscribe`` request; anything else is ignored."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(message, dict) or message.get("op") != "subscribe":
        return []
    symbols = message.get("symbols")
    if not isinstance(symbols, list):
        return []
    return [s.upper() for s in symbols if isinstance(s, str) and s.upper() in known]


def subscribed(symbols: list[str]) -> str:
    return orjson.dumps({"type": "subscribed", "symbols": symbols, "resumed": []}).decode()


def tick_dict(tick: Tick) -> dict[str, Any]:
    return {"symbol": tick.symbol, "seq": tick.seq, "ts": tick.ts, "price": tick.price,
            "size": tick.size, "bid": tick.bid, "ask": tick.ask}


def serve(app: Any, args: argparse.Namespace) -> None:
    """uvicorn as ``ticker serve`` runs it: uvloop, websockets-sansio, no compression."""
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                ws="websockets-sansio", ws_per_message_deflate=False, lifespan="on")
