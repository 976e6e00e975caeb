"""The window's recording: every read of every recorded client, kept as it came.

Compiled where ``ticker/bench/_recorder.c`` was built at install: one blocking loop of
``epoll_wait`` and ``recvmsg`` (the event loop does nothing else meanwhile; there is nothing else
to do). Otherwise, or with ``TICKER_BENCH_PYTHON_RECORDER`` set, each client's event-loop reader
(``Client.record``). Both keep the same records, so ``ClientLog.digest`` reads either.
"""

from __future__ import annotations

import asyncio
import os
import select
import time
from collections.abc import Sequence
from types import ModuleType

from ticker.bench.arrivals import READ_BYTES
from ticker.bench.kernel_client import Client

compiled: ModuleType | None
try:
    from ticker.bench import _recorder as compiled
except ImportError:  # built without a C compiler
    compiled = None


def uses_compiled() -> bool:
    return compiled is not None and not os.environ.get("TICKER_BENCH_PYTHON_RECORDER")


class Recording:
    """From ``start`` to ``stop``, the reads of ``clients``; ``until`` lets time pass meanwhile."""

    def __init__(self, clients: Sequence[Client]) -> None:
        self.clients = [client for client in clients if client.is_open and not client.stalls]
        self.compiled = uses_compiled()
        self._epoll: select.epoll | None = None
        self._logs: dict[int, list[object]] = {}

    def start(self) -> None:
        if not self.compiled:
            for client in self.clients:
                client.record()
            return
        self._epoll = select.epoll(max(1, len(self.clients)))
        for client in self.clients:
            client.stop_live()
            self._epoll.register(client.fd, select.EPOLLIN)
            self._logs[client.fd] = client.log.records  # type: ignore[assignment]

    async def until(self, deadline: float) -> None:
        """Record until ``deadline`` (time.time())."""
        if self._epoll is None or compiled is None:
            await asyncio.sleep(max(0.0, deadline - time.time()))
            return
        ended: list[tuple[int, int]] = []
        compiled.record(self._epoll.fileno(), round(deadline * 1e9), READ_BYTES, self._logs,
                        ended)
        by_fd = {client.fd: client for client in self.clients}
        for fd, error in ended:
            by_fd[fd].ended_while_recorded(error)

    def stop(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None


__all__ = ["Recording", "uses_compiled"]
