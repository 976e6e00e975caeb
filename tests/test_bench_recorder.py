"""The load generator's compiled recording loop (ticker/bench/_recorder.c) on real loopback TCP
sockets with kernel receive timestamps: it keeps what Python's socket.recvmsg returns, byte for
byte and stamp for stamp, notices a socket that ends, and gives the time back when told."""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from collections.abc import Iterator

import pytest

from ticker.bench import recorder
from ticker.bench.arrivals import ANCILLARY_BYTES, READ_BYTES, SO_TIMESTAMPNS, kernel_ns

compiled = recorder.compiled


def test_the_compiled_recorder_is_built_where_the_tools_are() -> None:
    if compiled is None:
        message = "ticker/bench/_recorder.c was not compiled (hatch_build.py): Python records"
        if os.environ.get("TICKER_REQUIRE_ALL_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """Five connected loopback pairs: (sender, stamped non-blocking receiver)."""
    listener = socket.create_server(("127.0.0.1", 0))
    made = []
    for _ in range(5):
        receiver = socket.socket()
        receiver.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        receiver.connect(listener.getsockname())
        sender, _ = listener.accept()
        receiver.setblocking(False)
        made.append((sender, receiver))
    listener.close()
    yield made
    for sender, receiver in made:
        sender.close()
        receiver.close()


def watched(pairs: list[tuple[socket.socket, socket.socket]]
            ) -> tuple[select.epoll, dict[int, list[object]]]:
    """An epoll with every receiver registered, and an empty log for each (or a skip)."""
    if compiled is None:
        pytest.skip("not compiled here")
    epoll = select.epoll()
    logs: dict[int, list[object]] = {}
    for _, receiver in pairs:
        epoll.register(receiver.fileno(), select.EPOLLIN)
        logs[receiver.fileno()] = []
    return epoll, logs


def test_it_keeps_what_recvmsg_returns_and_hands_back_in_time(
        pairs: list[tuple[socket.socket, socket.socket]]) -> None:
    epoll, logs = watched(pairs)
    sent = {receiver.fileno(): b"" for _, receiver in pairs}
    for round_ in range(3):
        for index, (sender, receiver) in enumerate(pairs):
            data = bytes([65 + index]) * (100 + 1000 * round_) + b"|"
            sender.sendall(data)
            sent[receiver.fileno()] += data
        before = time.time_ns()
        ended: list[tuple[int, int]] = []
        compiled.record(epoll.fileno(), time.time_ns() + 100_000_000, READ_BYTES, logs, ended)
        # It returns at the deadline, not before and not long after.
        assert 95_000_000 <= time.time_ns() - before < 1_000_000_000
        assert ended == []
    for fd, records in logs.items():
        assert b"".join(read[1][0] for read in records) == sent[fd]  # type: ignore[index]
        for read_ns, (data, ancdata, flags, address) in records:  # type: ignore[misc]
            stamp = kernel_ns(ancdata)
            assert stamp is not None and stamp <= read_ns < stamp + 1_000_000_000
            assert flags == 0 and address is None and data
    # The same read through Python's recvmsg: the same shape, so ClientLog.digest reads both.
    sender, receiver = pairs[0]
    sender.sendall(b"x")
    time.sleep(0.05)
    data, ancdata, flags, address = receiver.recvmsg(READ_BYTES, ANCILLARY_BYTES)
    kept = logs[receiver.fileno()][0][1]  # type: ignore[index]
    assert [type(part) for part in kept] == [type(data), type(ancdata), type(flags), type(address)]
    assert [item[:2] for item in kept[1]] == [item[:2] for item in ancdata]
    epoll.close()


def test_a_socket_that_ends_is_reported_and_left_alone(
        pairs: list[tuple[socket.socket, socket.socket]]) -> None:
    epoll, logs = watched(pairs)
    closed_sender, closed_receiver = pairs[1]
    closed_sender.sendall(b"last words")
    closed_sender.close()
    pairs[2][0].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    pairs[2][0].close()  # linger 0: a reset
    ended: list[tuple[int, int]] = []
    compiled.record(epoll.fileno(), time.time_ns() + 100_000_000, READ_BYTES, logs, ended)
    assert sorted(ended) == sorted([(closed_receiver.fileno(), 0),
                                    (pairs[2][1].fileno(), errno.ECONNRESET)])
    assert b"".join(r[1][0] for r in logs[closed_receiver.fileno()]) == b"last words"  # type: ignore[index]


def test_bad_arguments_are_errors_not_crashes(
        pairs: list[tuple[socket.socket, socket.socket]]) -> None:
    if compiled is None:
        pytest.skip("not compiled here")
    epoll = select.epoll()
    sender, receiver = pairs[0]
    epoll.register(receiver.fileno(), select.EPOLLIN)
    sender.sendall(b"data")
    with pytest.raises(ValueError, match="read_bytes must be positive"):
        compiled.record(epoll.fileno(), time.time_ns() + 10_000_000, 0, {}, [])
    with pytest.raises(KeyError, match="no log for file descriptor"):
        compiled.record(epoll.fileno(), time.time_ns() + 50_000_000, READ_BYTES, {}, [])
    with pytest.raises(OSError, match="Bad file descriptor"):
        compiled.record(-1, time.time_ns() + 10_000_000, READ_BYTES, {}, [])
    epoll.close()
