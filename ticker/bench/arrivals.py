"""Kernel receive timestamps, kept with the bytes they came with, and what they tell afterwards.

With ``SO_TIMESTAMPNS`` set on a socket, every ``recvmsg`` returns, in its ancillary data
(``SCM_TIMESTAMPNS``, a ``struct timespec``), the time the kernel received the data: on
CLOCK_REALTIME, the clock the feed's ``ts`` (Unix ms) is read from on the same machine. During
the window the load generator only appends each read as ``recvmsg`` returned it, with the time the
read returned (a ``Read``); ``ClientLog.digest`` does the rest afterwards: it cuts the frames out
of the reads, gives each frame the arrival time of the read that completed it, decodes the ticks
and checks them, per client, as ``ticker.bench.sample`` does for every client.

What the timestamp is: for TCP, the kernel's receive time of the last segment the read took data
from (measured here: two sends 10 ms apart, one read, one stamp: the second send's). So a frame
that ends before the last segment of its read may have arrived earlier than its stamp, but not
before the last read of that socket that emptied its receive queue. Each such frame therefore
gets a second, lower latency, from that earlier read's time (``low_latencies``): the true
latency lies between the two, and the spread of their percentiles says how much the generator's
reading blurred them. ``read_lags`` (read time minus stamp) show how promptly it read.
"""

from __future__ import annotations

import socket
import struct
from array import array
from collections.abc import Sequence
from typing import Any

import orjson

from ticker.bench.sample import SampleStream, Window
from ticker.bench.wsframes import OP_BINARY, OP_CLOSE, OP_TEXT, FrameCutter, close_code

# Linux's value on every architecture but a few (Python 3.11's socket module lacks the name);
# the control message carrying the stamp has the same number as the option.
SO_TIMESTAMPNS: int = getattr(socket, "SO_TIMESTAMPNS", 35)
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
_TIMESPEC = struct.Struct("@qq")  # struct timespec on 64-bit Linux: tv_sec, tv_nsec
ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size)  # room for one timestamp per read
READ_BYTES = 65_536  # per recvmsg: one loopback segment at most; below glibc's mmap threshold

AncData = list[tuple[int, int, bytes]]
RecvMsg = tuple[bytes, AncData, int, Any]  # what socket.recvmsg returns
Read = tuple[int, RecvMsg]  # (time.time_ns() when recvmsg returned, what it returned)


def kernel_ns(ancdata: AncData) -> int | None:
    """The kernel's receive time in Unix ns from a read's ancillary data, if it holds one."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            stamp: int = seconds * 1_000_000_000 + nanoseconds
            return stamp
    return None


def timestamp_ancdata(arrival_ns: int) -> AncData:
    """The ancillary data a read with this kernel stamp returns (for tests and fakes)."""
    seconds, nanoseconds = divmod(arrival_ns, 1_000_000_000)
    return [(socket.SOL_SOCKET, SCM_TIMESTAMPNS, _TIMESPEC.pack(seconds, nanoseconds))]


class ClientLog:
    """One client's recorded reads and, once digested, what they held.

    The window is [t0, t1) twice over: of tick ``ts`` for what is owed, on time and late (the
    shared ``Window``, whose ``latencies`` are from the stamps), and of arrival time for what was
    delivered in it (``delivered``, ``frames``, ``reads``).
    """

    __slots__ = ("close_code", "cutter", "delivered", "early_frames", "errors", "frames",
                 "low_latencies", "read_bytes", "read_lags", "reads", "received", "records",
                 "stream", "untimestamped")

    def __init__(self, cutter: FrameCutter | None = None, read_bytes: int = READ_BYTES) -> None:
        self.cutter = cutter if cutter is not None else FrameCutter()
        self.read_bytes = read_bytes  # a read this long may have left data in the queue
        self.records: list[Read] = []  # appended during the window, emptied by digest
        self.stream: SampleStream | None = None
        self.delivered = 0  # ticks in frames that arrived in the window
        self.frames = 0  # "ticks" messages that arrived in the window
        self.reads = 0  # reads that arrived in the window
        self.received = 0  # ticks with ts in the window, each counted once, whenever they came
        self.untimestamped = 0  # reads without a kernel stamp: their read time stands in
        self.read_lags: array[float] = array("d")  # ms from stamp to read, reads in the window
        # The window's latencies of this client's ticks, in the order they were added to
        # Window.latencies, each from the earliest its frame may have arrived (see above).
        self.low_latencies: array[float] = array("d")
        self.early_frames = 0  # "ticks" messages in the window that may have arrived early
        self.errors = 0  # "error" messages
        self.close_code: int | None = None  # of a close frame the server sent while recorded

    def digest(self, window: Window, t0_ns: int, t1_ns: int) -> None:
        """Cut, pair, decode and check every recorded read, then let the bytes go."""
        stream = self.stream
        if stream is None:
            stream = self.stream = SampleStream(window)
        cutter, loads, lags, full = self.cutter, orjson.loads, self.read_lags, self.read_bytes
        drained_ns = 0  # when a read last emptied the queue: what came later arrived after it
        for read_ns, (data, ancdata, _flags, _address) in self.records:
            arrival = kernel_ns(ancdata)
            if arrival is None:
                arrival = read_ns
                self.untimestamped += 1
            inside = t0_ns <= arrival < t1_ns
            if inside:
                self.reads += 1
                lags.append((read_ns - arrival) / 1e6)
            messages = cutter.feed(data)
            # Only the frame that ends the read surely ends in its last segment.
            last = len(messages) - 1 if not cutter.buffered else len(messages)
            for index, (opcode, payload) in enumerate(messages):
                if opcode in (OP_TEXT, OP_BINARY):
                    early = max(0, arrival - drained_ns) if index < last else 0
                    self._message(loads(payload), stream, window, arrival, early, inside, t1_ns)
                elif opcode == OP_CLOSE and self.close_code is None:
                    self.close_code = close_code(payload)
                # A ping needs no answer now: the connection is closed by the time of the digest.
            if len(data) < full:
                drained_ns = read_ns
        self.records = []

    def _message(self, message: Any, stream: SampleStream, window: Window, arrival_ns: int,
                 early_ns: int, inside: bool, t1_ns: int) -> None:
        kind = message.get("type")
        if kind == "ticks":
            ticks = message["ticks"]
            if inside:
                self.delivered += len(ticks)
                self.frames += 1
            received = window.received
            if arrival_ns < t1_ns:
                stream.ticks(ticks, arrival_ns / 1e6)
            else:  # late: counts for the window, but says nothing of how fresh ticks were at t1
                newest = window.newest_ts
                stream.ticks(ticks, arrival_ns / 1e6)
                window.newest_ts = newest
            added = window.received - received
            if added:
                self.received += added
                latencies = window.latencies[-added:]
                if early_ns:
                    self.early_frames += inside
                    early_ms = early_ns / 1e6
                    latencies = array("d", (max(0.0, v - early_ms) for v in latencies))
                self.low_latencies.extend(latencies)
        elif kind == "snapshot":
            stream.snapshot(message["symbol"], message["ticks"])
        elif kind == "error":
            self.errors += 1


def owed_by_client(window: Window, symbols: Sequence[str]) -> int:
    """Ticks one client subscribed to ``symbols`` was owed for the window."""
    return sum(window.produced(symbol) for symbol in symbols)


__all__ = ["ANCILLARY_BYTES", "READ_BYTES", "SCM_TIMESTAMPNS", "SO_TIMESTAMPNS", "ClientLog",
           "Read", "kernel_ns", "owed_by_client", "timestamp_ancdata"]
