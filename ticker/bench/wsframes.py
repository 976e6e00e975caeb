"""The WebSocket wire as the kernel-timestamp load generator speaks it, sans I/O (RFC 6455).

Three pieces, bytes in and bytes out, no sockets: the client's opening handshake (request, and
the check of the server's 101 answer), the client's own frames (masked, as a client must), and
``FrameCutter``, which cuts the server's frames (unmasked) out of a byte stream fed one read at a
time. The cutter keeps a frame split across reads until the read that completes it, so the
caller can pair each frame with that read's arrival time. No extension is negotiated, so a frame
with a reserved bit set is an error, as is a masked one.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

Message = tuple[int, bytes]  # (opcode, payload): a whole data message, or one control frame

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_HEAD_END = b"\r\n\r\n"
_MAX_HEAD = 16_384  # bytes of HTTP response head before the 101 is given up on
_U16 = struct.Struct("!H").unpack_from
_U64 = struct.Struct("!Q").unpack_from


class FrameError(ValueError):
    """The server broke the WebSocket protocol (or refused the handshake)."""


# -- the opening handshake -------------------------------------------------------------------------


def handshake_request(host: str, path: str, key: bytes | None = None) -> tuple[bytes, bytes]:
    """The GET that asks for an upgrade, and the Sec-WebSocket-Key it carries."""
    key = key if key is not None else base64.b64encode(os.urandom(16))
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: ").encode() + key + (
        b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    return request, key


def accept_value(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def handshake_response(data: bytes, key: bytes) -> int | None:
    """How many bytes of ``data`` the server's 101 response takes (frames may follow at once),
    or None while the head is incomplete; FrameError if the server refused or answered wrong."""
    end = data.find(_HEAD_END)
    if end < 0:
        if len(data) > _MAX_HEAD:
            raise FrameError(f"no end of the HTTP response head in {len(data)} bytes")
        return None
    lines = data[:end].split(b"\r\n")
    status = lines[0].split(b" ", 2)
    if len(status) < 2 or status[1] != b"101":
        raise FrameError(f"upgrade refused: {lines[0].decode(errors='replace')}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"sec-websocket-accept") != accept_value(key):
        raise FrameError("wrong Sec-WebSocket-Accept")
    if headers.get(b"sec-websocket-extensions"):
        raise FrameError("the server enabled an extension nobody asked for")
    return end + len(_HEAD_END)


# -- the client's frames ---------------------------------------------------------------------------


def client_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One final frame, masked (a client must mask every frame)."""
    mask = mask if mask is not None else os.urandom(4)
    length = len(payload)
    if length < 126:
        head = bytes((0x80 | opcode, 0x80 | length))
    elif length < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    return head + mask + unmask(payload, mask)


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte mask (masking and unmasking are the same), as one big integer."""
    length = len(payload)
    if not length:
        return b""
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")


def close_payload(code: int, reason: str = "") -> bytes:
    return code.to_bytes(2, "big") + reason.encode()


def close_code(payload: bytes) -> int:
    """The code of a close frame's payload; 1005 (no status) when it has none."""
    return _U16(payload)[0] if len(payload) >= 2 else 1005


# -- the server's frames ---------------------------------------------------------------------------


class FrameCutter:
    """Cuts the server's frames out of the byte stream, one read at a time.

    ``feed(data)`` returns what the stream completed with this read: whole data messages
    (fragments joined, under the first fragment's opcode) and control frames, in order. Bytes of
    an incomplete frame are kept as a list of reads and joined once, by the read that completes
    the frame, so a large frame split over many reads costs one copy, not one per read.
    """

    __slots__ = ("_fragments", "_have", "_need", "_opcode", "_pending")

    def __init__(self) -> None:
        self._pending: list[bytes] = []  # reads that do not yet hold a whole frame
        self._have = 0  # bytes in _pending
        self._need = 0  # bytes _pending must reach before another try
        self._fragments: list[bytes] = []  # a fragmented data message so far
        self._opcode = 0  # ... and its opcode

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return self._have + sum(len(part) for part in self._fragments)

    def feed(self, data: bytes) -> list[Message]:
        if self._pending:
            self._pending.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            data = b"".join(self._pending)
            self._pending, self._have = [], 0
        out: list[Message] = []
        size = len(data)
        position = need = 0
        while True:
            left = size - position
            if left < 2:
                need = 2
                break
            first, second = data[position], data[position + 1]
            if second & 0x80:
                raise FrameError("a masked frame from the server")
            if first & 0x70:
                raise FrameError(f"reserved bits set ({first & 0x70:#x}): no extension agreed")
            length = second & 0x7F
            if length < 126:
                head = 2
            elif length == 126:
                head = 4
                if left < head:
                    need = head
                    break
                length = _U16(data, position + 2)[0]
            else:
                head = 10
                if left < head:
                    need = head
                    break
                length = _U64(data, position + 2)[0]
            end = position + head + length
            if end > size:
                need = head + length
                break
            self._frame(first, data[position + head:end], out)
            position = end
        if position < size:
            rest = data[position:] if position else data
            self._pending, self._have, self._need = [rest], len(rest), need
        return out

    def _frame(self, first: int, payload: bytes, out: list[Message]) -> None:
        opcode, fin = first & 0x0F, first & 0x80
        if opcode >= OP_CLOSE:  # control frames may come between the fragments of a message
            out.append((opcode, payload))
        elif opcode == OP_CONTINUATION:
            if not self._fragments:
                raise FrameError("a continuation frame with no message to continue")
            self._fragments.append(payload)
            if fin:
                out.append((self._opcode, b"".join(self._fragments)))
                self._fragments = []
        elif self._fragments:
            raise FrameError("a new message before the last one's final fragment")
        elif fin:
            out.append((opcode, payload))
        else:
            self._opcode, self._fragments = opcode, [payload]


__all__ = ["OP_BINARY", "OP_CLOSE", "OP_CONTINUATION", "OP_PING", "OP_PONG", "OP_TEXT",
           "FrameCutter", "FrameError", "Message", "accept_value", "client_frame", "close_code",
           "close_payload", "handshake_request", "handshake_response", "unmask"]
