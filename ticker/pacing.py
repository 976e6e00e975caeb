"""How long a connection's own writer task lets ticks pile up between frames, from how busy we are.

It paces only connections served by their own writer task (compression, another WebSocket
implementation, a client that has fallen behind); the shared flush (transport/flusher.py) needs no
pacing, its queue batches by itself.

Every frame costs a system call (about 10-30 us here), so frames, not ticks, are what saturate
a core. When the process is mostly idle, each tick goes out at once (lowest latency); as its CPU
use climbs past ``busy_from``, the minimum gap between one client's frames grows towards
``max_interval``, so ticks share frames and the server keeps up instead of falling behind.
"""

from __future__ import annotations

import asyncio
import time


class FramePacer:
    def __init__(self, max_interval: float, busy_from: float = 0.5, busy_full: float = 0.9,
                 period: float = 0.25) -> None:
        self.max_interval = max_interval
        self._busy_from = busy_from
        self._busy_full = busy_full
        self._period = period
        self.interval = 0.0  # read by every writer before it drains

    async def run(self) -> None:
        wall, cpu = time.monotonic(), time.process_time()
        while True:
            await asyncio.sleep(self._period)
            now_wall, now_cpu = time.monotonic(), time.process_time()
            busy = (now_cpu - cpu) / max(now_wall - wall, 1e-6)
            wall, cpu = now_wall, now_cpu
            share = (busy - self._busy_from) / (self._busy_full - self._busy_from)
            target = self.max_interval * min(1.0, max(0.0, share))
            # Rise fast (a backlog hurts latency more than batching), fall gently (no flapping).
            self.interval = target if target > self.interval else 0.7 * self.interval + 0.3 * target
