"""One callback that writes every ready WebSocket's frames, instead of one task switch per frame.

A connection whose transport takes frames directly (ticker/transport/frames.py) is served from
here: the hub's wake-up puts it on the ready list and schedules one flush for everyone; the flush
drains each ready connection and writes its frames with no await. The flush runs at once when
the process is idle (latency: one loop turn) and no sooner than the frame pacer's interval after
the previous flush when it is busy, so that under load ticks share frames.

A connection that cannot be written now (its transport paused: the client reads slowly) or that
is closing goes back to its own writer task, which awaits the socket, and the janitor's stall
check, as before; once the transport drains, that task hands it back.
"""

from __future__ import annotations

import asyncio

from ticker.pacing import FramePacer
from ticker.stats import TransportStats
from ticker.subscriber import Subscriber
from ticker.transport.frames import DirectFrames


class _Entry:
    __slots__ = ("counts", "direct", "handback", "subscriber")

    def __init__(self, subscriber: Subscriber, direct: DirectFrames,
                 handback: asyncio.Future[None]) -> None:
        self.subscriber = subscriber
        self.direct = direct
        self.handback = handback
        self.counts: TransportStats = subscriber.stats


class Flusher:
    def __init__(self, pacer: FramePacer) -> None:
        self._pacer = pacer
        self._ready: list[_Entry] = []
        self._scheduled: asyncio.Handle | None = None
        self._last_flush = 0.0

    async def serve(self, subscriber: Subscriber, direct: DirectFrames) -> None:
        """Serve ``subscriber`` from flushes until it needs its writer task again; returns then
        (with whatever is due still pending, for the writer to send)."""
        loop = asyncio.get_running_loop()
        entry = _Entry(subscriber, direct, loop.create_future())
        subscriber.on_wake = lambda: self._add(entry)
        if subscriber.pending:
            self._add(entry)
        try:
            await entry.handback
        finally:
            subscriber.on_wake = None

    def _add(self, entry: _Entry) -> None:
        self._ready.append(entry)
        if self._scheduled is None:
            loop = asyncio.get_running_loop()
            delay = self._last_flush + self._pacer.interval - loop.time()
            self._scheduled = (loop.call_later(delay, self._flush) if delay > 0
                               else loop.call_soon(self._flush))

    def _flush(self) -> None:
        self._scheduled = None
        self._last_flush = asyncio.get_running_loop().time()
        ready, self._ready = self._ready, []
        for entry in ready:
            if entry.handback.done():
                continue  # its writer took over (or the connection ended) since
            subscriber = entry.subscriber
            if subscriber.close_request is None and entry.direct.ready():
                counts = entry.counts
                for frame in subscriber.drain():
                    entry.direct.write(frame)
                    counts.frames += 1
                    counts.direct_frames += 1
                    counts.bytes += len(frame)
                if subscriber.close_request is None:
                    continue
                subscriber.pending = True  # the close is still to be sent, by the writer
            entry.handback.set_result(None)
