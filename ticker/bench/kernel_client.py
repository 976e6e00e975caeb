"""One client of the kernel-timestamp load generator: a plain non-blocking TCP socket.

``SO_TIMESTAMPNS`` is set before it connects, so every read carries the kernel's receive time.
It speaks WebSocket through ``ticker.bench.wsframes``: live until the generator says "record"
(handshake, subscription, pings answered, frames cut as they come, only control and non-tick
messages looked at), then one ``recvmsg`` per readiness, kept as it came in its ``ClientLog``
(``ticker.bench.arrivals``), until the generator closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable

import orjson

from ticker.bench.arrivals import ANCILLARY_BYTES, READ_BYTES, SO_TIMESTAMPNS, ClientLog
from ticker.bench.generator import Tracker
from ticker.bench.wsframes import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    client_frame,
    close_code,
    close_payload,
    handshake_request,
    handshake_response,
)

log = logging.getLogger("ticker.bench.kernel_client")

HANDSHAKE_TIMEOUT_S = 20.0
IP_BIND_ADDRESS_NO_PORT: int = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux's value
STALLED_RCVBUF = 4096  # bytes: a stalled client's socket fills within a fraction of a second
# How "ticks" messages start (ours and batched: orjson; naive: json.dumps): not decoded live.
_TICKS_HEADS = (b'{"type":"ticks"', b'{"type": "ticks"')


class Client:
    """One plain non-blocking socket with kernel receive timestamps."""

    def __init__(self, subscribe: bytes, tracker: Tracker, stalls: bool = False,
                 source: str | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        if source is not None:  # a local address of its own: each has its own ~28k ports
            # The port is chosen at connect, not at bind, so ports are not held twice.
            self.sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            self.sock.bind((source, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fd = self.sock.fileno()
        self.subscribe = subscribe
        self.tracker = tracker
        self.stalls = stalls  # stops reading once subscribed (Workload.stalled)
        self.log = ClientLog()
        self.loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = self.loop.create_future()  # the handshake went through
        self.done: asyncio.Future[None] = self.loop.create_future()  # the connection is over
        self._head = b""  # the HTTP response so far
        self._key = b""
        self.subscribed = False
        self.closing = False  # we are closing it: not a drop

    @property
    def is_open(self) -> bool:
        return not self.done.done()

    async def connect(self, host: str, port: int, path: str) -> None:
        loop = self.loop
        await loop.sock_connect(self.sock, (host, port))
        request, self._key = handshake_request(f"{host}:{port}", path)
        await loop.sock_sendall(self.sock, request)
        loop.add_reader(self.fd, self._on_live)
        await asyncio.wait_for(asyncio.shield(self.ready), HANDSHAKE_TIMEOUT_S)

    # -- live: handshake, subscription, control frames ---------------------------------------------

    def _on_live(self) -> None:
        try:
            data = self.sock.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._lost(f"read failed: {error!r}")
            return
        if not data:
            self._lost("the server closed the connection")
            return
        try:
            if not self.ready.done():
                data = self._handshake(data)
            for opcode, payload in self.log.cutter.feed(data) if data else ():
                self._live_message(opcode, payload)
        except (FrameError, orjson.JSONDecodeError) as error:
            self.tracker.errors += 1
            self._lost(f"protocol error: {error}")

    def _handshake(self, data: bytes) -> bytes:
        self._head += data
        end = handshake_response(self._head, self._key)
        if end is None:
            return b""
        rest, self._head = self._head[end:], b""
        self.ready.set_result(None)
        self.send(client_frame(OP_TEXT, self.subscribe))
        return rest

    def _live_message(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_TEXT:
            if payload.startswith(_TICKS_HEADS):
                return
            message = orjson.loads(payload)
            kind = message.get("type")
            if kind == "subscribed" and not self.subscribed:
                self.subscribed = True
                if self.stalls:
                    self._stall()
                else:
                    self.tracker.on_subscribed()
            elif kind == "error":
                self.tracker.errors += 1
                log.warning("server error: %s", message)
        elif opcode == OP_PING:
            self.send(client_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            code = close_code(payload)
            if not self.closing:
                self.tracker.close_codes[str(code)] += 1
            self.send(client_frame(OP_CLOSE, payload[:2]))
            self._lost(f"closed by the server ({code})")

    def _stall(self) -> None:
        """Read nothing more: the receive buffer (made small) fills, then the server's."""
        self.tracker.stalled += 1
        self.loop.remove_reader(self.fd)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)

    def send(self, data: bytes) -> None:
        """A client sends only small frames (subscribe, pong, close): they fit the empty send
        buffer; one that does not is dropped and counted."""
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            return  # the read side notices and says why
        if sent < len(data):
            self.tracker.errors += 1
            log.warning("could not send %d of %d bytes", len(data) - sent, len(data))

    # -- recorded: one recvmsg per readiness, kept as it came --------------------------------------

    def record(self) -> None:
        if self.is_open and not self.stalls:
            self.loop.add_reader(self.fd, self._recorder())

    def stop_live(self) -> None:
        """Stop the event loop's reader: a compiled recorder reads this socket now."""
        self.loop.remove_reader(self.fd)

    def ended_while_recorded(self, error: int) -> None:
        """The compiled recorder read end-of-file (``error`` 0) or failed with errno ``error``."""
        self._lost(f"read failed: {os.strerror(error)}" if error
                   else "the server closed the connection")

    def _recorder(self) -> Callable[[], None]:
        recvmsg, append, now, lost = self.sock.recvmsg, self.log.records.append, time.time_ns, \
            self._lost

        def on_readable() -> None:
            try:
                got = recvmsg(READ_BYTES, ANCILLARY_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                lost(f"read failed: {error!r}")
                return
            if got[0]:
                append((now(), got))
            else:
                lost("the server closed the connection")

        return on_readable

    # -- closing -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Send a close frame and discard what comes until the server closes too."""
        self.closing = True
        if not self.is_open:
            return
        if self.stalls:
            self.abort()  # it reads nothing, not even a close
            return
        self.send(client_frame(OP_CLOSE, close_payload(1000)))
        self.loop.add_reader(self.fd, self._on_closing)

    def _on_closing(self) -> None:
        try:
            data = self.sock.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.abort()

    def _lost(self, why: str) -> None:
        if self.is_open and not self.closing and self.ready.done():  # a drop, not a refusal
            self.tracker.disconnects += 1
            log.warning("client dropped: %s", why)
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        self.abort()

    def abort(self) -> None:
        """Stop watching the socket and close it, whatever state it is in."""
        if self.done.done():
            return
        self.loop.remove_reader(self.fd)
        self.sock.close()
        self.done.set_result(None)


__all__ = ["HANDSHAKE_TIMEOUT_S", "Client"]
