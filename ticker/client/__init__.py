"""A Python client for programs: a subscription that never loses a tick.

    import ticker.client

    async with ticker.client.connect("ws://127.0.0.1:8000/ws", ["AAPL", "MSFT"]) as stream:
        async for event in stream:
            if isinstance(event, ticker.client.Reset):
                ...  # the symbol starts over: drop what you hold for it
            else:
                print(event.symbol, event.seq, event.price)

It reconnects by itself (capped, jittered backoff; close codes honoured as docs/protocol.md
says) and resumes from its last seqs, so a server restart within the same feed run, a network
cut or a slow-consumer close loses no tick and repeats none. What cannot be continued (the feed
restarted, or the ticks missed left the server's history) comes as an explicit ``Reset``.
``transport="auto"`` falls back to SSE where WebSockets are blocked.
"""

from __future__ import annotations

from collections.abc import Iterable

from ticker.client.backoff import Backoff
from ticker.client.state import Event, Reset, ServerError, Snapshot
from ticker.client.stream import Stream, StreamClosed, Transport
from ticker.model import Tick

__all__ = ["Backoff", "Event", "Reset", "ServerError", "Snapshot", "Stream", "StreamClosed",
           "Tick", "Transport", "connect"]


def connect(url: str, symbols: Iterable[str] | None, *, token: str | None = None,
            max_rate: float = 0.0, transport: Transport = "auto", snapshot: bool = False,
            backoff: Backoff | None = None, open_timeout: float = 10.0) -> Stream:
    """A stream of ``symbols`` (None: every symbol the server offers) from the ticker server at
    ``url`` (``ws://HOST:PORT/ws``, or ``http://HOST:PORT``); use it with ``async with``.

    ``token``: for a server with ``auth.tokens`` (sent as a Bearer header). ``max_rate``: at most
    that many updates a second per symbol, the latest tick each time (seqs then skip). ``snapshot``:
    also yield each symbol's latest ticks as it is subscribed (a :class:`Snapshot`). ``transport``:
    "ws", "sse", or "auto" (WebSocket, else SSE). It raises :class:`StreamClosed` when the server
    refuses for good (a bad token, an unknown symbol, a "do not reconnect" close).
    """
    return Stream(url, symbols, token=token, max_rate=max_rate, transport=transport,
                  snapshot=snapshot, backoff=backoff, open_timeout=open_timeout)
