"""A connection's outgoing queue: the hub appends without ever waiting, one writer drains.

The fan-out must never await a client's socket (a client that stops reading would stall everyone),
so the hub only appends pre-encoded bytes here. Whatever has piled up when the writer wakes goes out
as few frames as possible: consecutive ticks are joined into "ticks" messages, other messages keep
their place in the order. The queue is bounded in bytes; a client that falls that far behind is
closed as a slow consumer, and can resume from its last seqs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ticker.protocol import CLOSE_SLOW_CONSUMER, TICKS_PREFIX, TICKS_SUFFIX, Frames


@dataclass(frozen=True, slots=True)
class _Message:
    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


class Outbox:
    __slots__ = (
        "_bytes",
        "_items",
        "_limit",
        "_max_bytes",
        "_max_frame",
        "_messages",
        "_wakeup",
        "close_request",
    )

    def __init__(self, max_bytes: int, max_frame_bytes: int) -> None:
        self._items: list[bytes | _Message] = []
        self._bytes = 0
        self._messages = 0
        self._max_bytes = max_bytes
        self._limit = max_bytes
        self._max_frame = max_frame_bytes
        self._wakeup = asyncio.Event()
        self.close_request: Close | None = None

    def put_tick(self, data: bytes) -> None:
        """Queue one live tick (the hot path: called once per tick per subscriber)."""
        if self.close_request is not None:
            return
        self._items.append(data)
        self._bytes += len(data)
        if self._bytes > self._limit:
            self.close(Close(CLOSE_SLOW_CONSUMER, "slow consumer: too many ticks waiting"))
        self._wakeup.set()

    def put_backlog(self, ticks: list[bytes]) -> None:
        """Queue history sent on request (a resume); it may exceed the live bound once."""
        if self.close_request is not None or not ticks:
            return
        self._items.extend(ticks)
        self._bytes += sum(map(len, ticks))
        self._limit = self._bytes + self._max_bytes
        self._wakeup.set()

    def put_message(self, data: bytes) -> None:
        if self.close_request is not None:
            return
        self._items.append(_Message(data))
        self._messages += 1
        self._wakeup.set()

    def close(self, request: Close) -> None:
        """Ask the writer to close the connection; queued data is dropped, later puts ignored."""
        if self.close_request is None:
            self.close_request = request
            self._items.clear()
            self._bytes = self._messages = 0
            self._wakeup.set()

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    async def wait(self) -> None:
        await self._wakeup.wait()

    def drain(self) -> list[bytes]:
        """Take everything queued, as ready-to-send frames in order."""
        self._wakeup.clear()
        items, self._items = self._items, []
        tick_bytes, messages = self._bytes, self._messages
        self._bytes = self._messages = 0
        self._limit = self._max_bytes
        if not items:
            return []
        if not messages and tick_bytes + len(items) + 32 <= self._max_frame:
            return [TICKS_PREFIX + b",".join(items) + TICKS_SUFFIX]  # type: ignore[arg-type]
        frames = Frames(self._max_frame)
        run: list[bytes] = []
        for item in items:
            if type(item) is bytes:
                run.append(item)
            else:
                if run:
                    frames.add_ticks(run)
                    run = []
                frames.out.append(item.data)  # type: ignore[union-attr]
        if run:
            frames.add_ticks(run)
        return frames.out
