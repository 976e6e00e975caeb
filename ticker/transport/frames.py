"""Writing ready-made text frames straight to a WebSocket's transport, when it is safe to.

Through ASGI, every frame costs a trip through Starlette's WebSocket.send, uvicorn's send
coroutine, websockets' Frame object and serializer, a list join, and a decode of our UTF-8 bytes
into str that uvicorn encodes straight back: measured, more than the send system call itself.
A server-to-client text frame is just a 2-10 byte header and the payload (RFC 6455 section 5.2:
FIN, opcode 1, no mask), so when the connection runs on uvicorn's websockets-sansio protocol
without compression, the writer puts header and payload on the transport itself, and only falls
back to the ASGI path when it would have to wait (the transport is paused: the client is slow)
or the connection is closing. Anything else (wsproto, deflate, another server) uses ASGI always.

A connection's ticks go one step further where the transport is a plain socket (no TLS) with
nothing queued: ticker._frames builds the frames in one buffer and send()s it itself, so the
frames never become Python objects and the transport's write path is skipped; whatever the
kernel does not take goes to the transport's write, which queues it in order (its buffer was
empty) or meets the error, exactly as if it had written it all.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from starlette.websockets import WebSocket
from websockets.protocol import OPEN, Protocol

from ticker.protocol import text_frame_header
from ticker.stats import TransportStats
from ticker.subscriber import Subscriber

__all__ = ["DirectFrames", "cap_send_buffer", "header_length", "plain_socket_fd",
           "release_handshake", "text_frame_header", "uvicorn_protocol"]


def header_length(frame_length: int) -> int:
    """The header's share of a whole text frame of ``frame_length`` bytes (2, 4 or 10)."""
    if frame_length <= 127:
        return 2
    return 4 if frame_length < (1 << 16) + 4 else 10


class DirectFrames:
    """The uvicorn connection behind one accepted WebSocket, written to directly."""

    __slots__ = ("_conn", "_counts", "_fd", "_protocol", "_transport", "_writable")

    def __init__(self, protocol: Any, counts: TransportStats) -> None:
        self._counts = counts
        self._protocol = protocol
        self._conn: Protocol = protocol.conn
        self._transport = protocol.transport
        self._writable = protocol.writable
        self._fd = plain_socket_fd(self._transport)

    @classmethod
    def of(cls, websocket: WebSocket, counts: TransportStats) -> DirectFrames | None:
        """None unless the connection is uvicorn's websockets-sansio protocol, uncompressed;
        frames written are counted in ``counts``."""
        protocol = uvicorn_protocol(websocket)
        conn = getattr(protocol, "conn", None)
        if (not isinstance(conn, Protocol) or conn.extensions
                or not hasattr(protocol, "transport") or not hasattr(protocol, "writable")
                or not hasattr(protocol, "close_sent")):
            return None
        return cls(protocol, counts)

    def ready(self) -> bool:
        """Whether a frame can go out now without waiting and without breaking the protocol."""
        return (self._writable.is_set() and not self._protocol.close_sent
                and self._conn.state is OPEN and not self._conn.expect_continuation_frame
                and not self._transport.is_closing())

    def write(self, payload: bytes) -> None:
        """One complete text message; ``payload`` must be UTF-8 (ours is JSON from orjson)."""
        self._transport.write(text_frame_header(len(payload)) + payload)
        counts = self._counts
        counts.frames += 1
        counts.direct_frames += 1
        counts.bytes += len(payload)

    def write_frames(self, frames: list[bytes]) -> None:
        """Complete text frames, header included (Subscriber.tick_frames(ws_header=True))."""
        write = self._transport.write
        payload = 0
        for frame in frames:
            write(frame)
            payload += len(frame) - header_length(len(frame))
        counts = self._counts
        counts.frames += len(frames)
        counts.direct_frames += len(frames)
        counts.bytes += payload

    def write_ticks(self, subscriber: Subscriber) -> None:
        """Every tick due for ``subscriber``, as frames: sent by ticker._frames on the socket
        itself where that is safe (see the module's docstring), else through write_frames."""
        transport = self._transport
        sent = (subscriber.send_tick_frames(self._fd)
                if self._fd >= 0 and not transport.get_write_buffer_size() else None)
        if sent is None:
            self.write_frames(subscriber.tick_frames(ws_header=True))
            return
        frames, payload, unsent = sent
        if unsent is not None:
            transport.write(unsent)
        counts = self._counts
        counts.frames += frames
        counts.direct_frames += frames
        counts.socket_frames += frames
        counts.bytes += payload


def plain_socket_fd(transport: Any) -> int:
    """The file descriptor of the non-blocking stream socket under ``transport``, or -1 where
    writing to it directly could break something: TLS, no socket, or not a stream socket."""
    if transport.get_extra_info("sslcontext") is not None or transport.get_extra_info(
            "ssl_object") is not None:
        return -1
    sock = transport.get_extra_info("socket")
    try:
        if sock is None or sock.type != socket.SOCK_STREAM:
            return -1
        fd = sock.fileno()
    except (AttributeError, OSError):
        return -1
    return fd if isinstance(fd, int) else -1


def release_handshake(websocket: WebSocket) -> None:
    """Let go of the handshake's request and response, headers and all, once accepted.

    uvicorn's websockets-sansio protocol keeps both for the connection's life and never reads
    them after it sent the response: measured with tracemalloc at 3000 connections, about 4 KB
    of a connection's 24 KB of Python heap. Only where the handshake is complete on that
    protocol; anything else is left as it is."""
    protocol = uvicorn_protocol(websocket)
    if (getattr(protocol, "handshake_complete", False) and hasattr(protocol, "request")
            and hasattr(protocol, "response")):
        protocol.request = None
        protocol.response = None


def cap_send_buffer(websocket: WebSocket, size: int) -> None:
    """Bound what the kernel holds for this connection (SO_SNDBUF; Linux books twice the value),
    so that a client that stops reading fills it, pauses its transport and meets the slow-client
    policy within a second or so, instead of being served into a buffer that autotuning grows
    to megabytes. Only for uvicorn connections over a real socket; 0 leaves the kernel's."""
    transport = getattr(uvicorn_protocol(websocket), "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if size > 0 and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def uvicorn_protocol(websocket: WebSocket) -> Any:
    """The uvicorn protocol object serving ``websocket`` (None under another server)."""
    return getattr(getattr(websocket, "_send", None), "__self__", None)
