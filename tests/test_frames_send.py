"""ticker._frames.send_frames: the frames the compiled drain builds, sent on a real non-blocking
socket in one call. What the peer reads plus what the kernel refused is exactly what the Python
drain would have written; a full buffer or a closed peer loses nothing and raises nothing."""

from __future__ import annotations

import socket

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_frames_compiled import build, cursors, twin
from ticker import subscriber as subscriber_module
from ticker.history import History
from ticker.protocol import text_frame_header
from ticker.subscriber import Subscriber
from ticker.transport.frames import plain_socket_fd


def needs_compiled() -> None:
    if subscriber_module.compiled_send_frames is None:
        pytest.skip("ticker/_frames.c is not compiled here")


def pair(send_buffer: int = 0) -> tuple[socket.socket, socket.socket]:
    """A connected TCP pair on loopback, the sender non-blocking like a server's."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    if send_buffer:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, send_buffer)
    server.setblocking(False)
    return server, client


def read_available(sock: socket.socket, expected: int) -> bytes:
    """Everything sent so far: ``expected`` bytes at most, waiting a little for each."""
    sock.settimeout(0.5)
    got = bytearray()
    while len(got) < expected:
        try:
            chunk = sock.recv(expected - len(got))
        except TimeoutError:
            break
        if not chunk:
            break
        got += chunk
    return bytes(got)


def python_bytes(subscriber: Subscriber) -> bytes:
    return b"".join(text_frame_header(len(f)) + f for f in subscriber.tick_frames_in_python())


def filled(ticks: int, pad: int) -> Subscriber:
    history = History(ticks + 10)
    for seq in range(1, ticks + 1):
        history.append(seq, orjson.dumps({"seq": seq, "pad": "x" * pad}), seq)
    subscriber = Subscriber(max_lag=10 * ticks, max_frame_ticks=50)
    subscriber.follow("A", history, 0)
    return subscriber


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 10**6), symbols=st.integers(0, 12), capacity=st.integers(1, 9),
       max_lag=st.integers(1, 40), step=st.integers(1, 7))
def test_what_is_sent_is_what_python_would_write(seed: int, symbols: int, capacity: int,
                                                 max_lag: int, step: int) -> None:
    needs_compiled()
    fast, histories = build(seed, symbols, capacity, max_lag, step)
    slow = twin(fast, histories)
    before = cursors(fast)
    server, client = pair()
    with server, client:
        sent = fast.send_tick_frames(server.fileno())
        want_frames = slow.tick_frames_in_python()
        want = b"".join(text_frame_header(len(f)) + f for f in want_frames)
        got = read_available(client, len(want))
    if sent is None:  # handed back, as take_frames would: untouched, for tick_frames to do
        assert cursors(fast) == before
        assert b"".join(fast.tick_frames(ws_header=True)) == want
    else:
        frames, payload, unsent = sent
        assert got + (unsent or b"") == want
        assert (frames, payload) == (len(want_frames), sum(map(len, want_frames)))
    assert cursors(fast) == cursors(slow)
    assert fast.close_request == slow.close_request
    assert fast.stats.ticks == slow.stats.ticks
    assert fast.pending == slow.pending


def test_a_full_send_buffer_leaves_the_rest_unsent_in_order() -> None:
    needs_compiled()
    fast, slow = filled(3000, 200), filled(3000, 200)  # ~650 KB, far more than the buffers
    want = python_bytes(slow)
    server, client = pair(send_buffer=4096)
    with server, client:
        sent = fast.send_tick_frames(server.fileno())
        assert sent is not None
        unsent = sent[2]
        assert unsent is not None and 0 < len(unsent) < len(want)  # a partial send
        got = read_available(client, len(want))
        assert fast.send_tick_frames(server.fileno()) == (0, 0, None)  # nothing due now
    assert got + unsent == want
    assert fast._cursors["A"].seq == 3000  # moved: the rest is the caller's to write


def test_a_closed_peer_gives_everything_back_and_no_sigpipe() -> None:
    needs_compiled()
    fast, slow = filled(20, 10), filled(20, 10)
    server, client = pair()
    client.close()
    with server:
        first = filled(5, 10)
        # The first send after the peer's FIN may still be taken; the reset it draws makes
        # every later one fail (EPIPE), which must come back as unsent, not a signal.
        first.send_tick_frames(server.fileno())
        sent = None
        for _ in range(50):
            sent = fast.send_tick_frames(server.fileno())
            assert sent is not None
            if sent[2] is not None:
                break
            fast, slow = filled(20, 10), filled(20, 10)
        assert sent is not None and sent[2] == python_bytes(slow)


def test_an_unusable_fd_is_an_error_or_unsent_never_a_loss() -> None:
    needs_compiled()
    subscriber = filled(5, 10)
    with pytest.raises(ValueError, match="fd must be"):
        subscriber.send_tick_frames(-1)
    assert subscriber._cursors["A"].seq == 0 and subscriber.stats.ticks == 0
    with open("/dev/null", "wb") as not_a_socket:
        sent = subscriber.send_tick_frames(not_a_socket.fileno())  # ENOTSOCK
    assert sent is not None and sent[2] == python_bytes(filled(5, 10))


def test_without_the_extension_nothing_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subscriber_module, "compiled_send_frames", None)
    subscriber = filled(5, 10)
    assert subscriber.send_tick_frames(0) is None
    assert subscriber._cursors["A"].seq == 0 and subscriber.stats.ticks == 0


def test_only_a_plain_stream_socket_is_written_directly() -> None:
    class Transport:
        def __init__(self, **extra: object) -> None:
            self.extra = extra

        def get_extra_info(self, name: str) -> object:
            return self.extra.get(name)

    server, client = pair()
    with server, client, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram:
        assert plain_socket_fd(Transport(socket=server)) == server.fileno()
        assert plain_socket_fd(Transport(socket=server, sslcontext=object())) == -1
        assert plain_socket_fd(Transport(socket=server, ssl_object=object())) == -1
        assert plain_socket_fd(Transport(socket=datagram)) == -1
        assert plain_socket_fd(Transport()) == -1
