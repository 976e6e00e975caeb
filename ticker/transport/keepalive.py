"""WebSocket keep-alive pings for connections that are quiet, from the janitor, not a timer each.

uvicorn's own keep-alive arms a timer per connection and pings every connection every interval,
whether or not data is flowing to it: at 10,000 connections that was 6 % of the server's core in
the cost sweep (README, "How the cost grows with clients"), work that grows with connections,
not with ticks. A ping answers two questions, and data that flows answers both already:
- is the peer's machine still there? Data we send must be acknowledged; TCP_USER_TIMEOUT, set on
  every connection, makes the kernel end one whose data stays unacknowledged for two intervals.
- is the peer's program still reading? If not, its buffers and then ours fill, the transport
  pauses, and the janitor's stall check (``server.send_timeout``) drops it.
So only a connection that nothing was written to for an interval gets a ping, from the
janitor's round over the connections (ticker/transport/janitor.py), and one that has not answered
by its next turn is failed as uvicorn would fail it (1011, "keepalive ping timeout").

On uvicorn's websockets-sansio protocol only (the server's default); on the other two protocols
uvicorn keeps pinging every connection itself (ticker/server.py).
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
from typing import Any

from starlette.websockets import WebSocket
from websockets.protocol import OPEN, Protocol

from ticker.transport.frames import uvicorn_protocol

# Linux's value (Python's socket module has the name on Linux only).
TCP_USER_TIMEOUT: int = getattr(socket, "TCP_USER_TIMEOUT", 18)


class Pinger:
    """Pings one connection on uvicorn's websockets-sansio protocol when asked to.

    uvicorn's protocol clears ``pending_ping_payload`` when the matching pong arrives (and, with
    its own keep-alive off, does nothing else): that is how an answer is seen here."""

    __slots__ = ("_payload", "_protocol", "sent_at")

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._payload: bytes | None = None
        self.sent_at = 0.0  # loop time of the ping in flight

    @classmethod
    def of(cls, websocket: WebSocket) -> Pinger | None:
        """None unless the connection runs on uvicorn's websockets-sansio protocol."""
        protocol = uvicorn_protocol(websocket)
        if (not isinstance(getattr(protocol, "conn", None), Protocol)
                or not hasattr(protocol, "pending_ping_payload")
                or not hasattr(protocol, "transport") or not hasattr(protocol, "close_sent")):
            return None
        return cls(protocol)

    @property
    def awaiting_pong(self) -> bool:
        return self._payload is not None and self._protocol.pending_ping_payload == self._payload

    def usable(self) -> bool:
        protocol = self._protocol
        return (protocol.conn.state is OPEN and not protocol.close_sent
                and not protocol.transport.is_closing())

    def ping(self, now: float) -> None:
        """Send a ping (``now``: loop time); its payload identifies the pong, as uvicorn's."""
        protocol = self._protocol
        payload = struct.pack("!I", random.getrandbits(32))
        protocol.pending_ping_payload = payload
        protocol.conn.send_ping(payload)
        protocol.transport.write(b"".join(protocol.conn.data_to_send()))
        self._payload = payload
        self.sent_at = now

    def fail(self) -> None:
        """What uvicorn does when a ping goes unanswered: close frame 1011, then the socket."""
        protocol = self._protocol
        self._payload = protocol.pending_ping_payload = None
        protocol.conn.fail(1011, "keepalive ping timeout")
        protocol.transport.write(b"".join(protocol.conn.data_to_send()))
        protocol.close_sent = True
        protocol.transport.close()


def set_user_timeout(websocket: WebSocket, seconds: float) -> None:
    """Let the kernel end the connection when data it sent stays unacknowledged for ``seconds``
    (RFC 5482; on Linux). Only for uvicorn connections over a real socket."""
    transport = getattr(uvicorn_protocol(websocket), "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None and seconds > 0:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, max(1, round(seconds * 1000)))


__all__ = ["TCP_USER_TIMEOUT", "Pinger", "set_user_timeout"]
