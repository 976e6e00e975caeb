"""What both load generators share (``loadgen``: picows clients; ``kernel_loadgen``: plain
sockets with kernel receive timestamps): the tally of subscriptions and disconnects, and the
command line the fan-out benchmark starts them with."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import orjson

from ticker.bench.workload import Workload


class Tracker:
    """Subscriptions and disconnects across all clients."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.subscribed = 0
        self.all_subscribed = asyncio.Event()
        self.disconnects = 0
        self.stalled = 0
        self.close_codes: Counter[str] = Counter()
        self.errors = 0

    def on_subscribed(self) -> None:
        self.subscribed += 1
        if self.subscribed >= self.expected:
            self.all_subscribed.set()


def cpu_share(before: float | None, after: float | None, seconds: float) -> float | None:
    """CPU seconds used between two readings, per second of wall time (None if unknown)."""
    if before is None or after is None or seconds <= 0:
        return None
    return round((after - before) / seconds, 4)


RunStep = Callable[[Workload, str, float, int], Coroutine[Any, Any, Any]]


def generator_main(module: str, run_step: RunStep, argv: list[str] | None = None) -> int:
    """``python -m MODULE WORKLOAD_JSON URL TICK_RATE SERVER_PID``: one step, its result as one
    JSON line on stdout."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4:
        print(f"usage: python -m {module} WORKLOAD_JSON URL TICK_RATE SERVER_PID",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("picows").setLevel(logging.WARNING)  # it logs every connect at INFO
    workload = Workload.from_json(orjson.loads(args[0]))
    coroutine = run_step(workload, args[1], float(args[2]), int(args[3]))
    try:
        import uvloop  # the same loop uvicorn picks; several times faster for many sockets
    except ImportError:
        result = asyncio.run(coroutine)
    else:
        result = uvloop.run(coroutine)
    sys.stdout.write(orjson.dumps(result.to_json()).decode() + "\n")
    return 0
