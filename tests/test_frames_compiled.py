"""The compiled drain (ticker/_frames.c) against the drain in Python: the same frames, the same
cursors afterwards, on wrapped rings, restarted histories, lagging and conflated cursors; and a
WebSocket header a real parser accepts. No sockets."""

from __future__ import annotations

import asyncio
import os
import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from ticker import subscriber as subscriber_module
from ticker.history import History
from ticker.subscriber import Subscriber

compiled = subscriber_module.compiled_take_frames


def test_the_compiled_drain_is_built_where_the_tools_are() -> None:
    if compiled is None:
        message = "ticker/_frames.c was not compiled (hatch_build.py): drains run in Python"
        if os.environ.get("TICKER_REQUIRE_ALL_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def needs_compiled() -> None:
    if compiled is None:
        pytest.skip("ticker/_frames.c is not compiled here")


def build(seed: int, symbols: int, capacity: int, max_lag: int,
          step: int) -> tuple[Subscriber, dict[str, History]]:
    """A subscriber over ``symbols`` histories filled at random (so some rings wrap), with
    cursors anywhere from before the oldest tick kept to the newest."""
    rng = random.Random(seed)
    histories = {f"S{k}": History(capacity) for k in range(symbols)}
    for place in range(1, rng.randrange(0, 4 * capacity * symbols + 1) + 1):
        symbol = rng.choice(list(histories))
        history = histories[symbol]
        seq = history.last + 1 if history.last else rng.randrange(1, 5)
        history.append(seq, orjson.dumps({"symbol": symbol, "seq": seq, "place": place}), place)
    subscriber = Subscriber(max_lag=max_lag, max_frame_ticks=step)
    for symbol, history in histories.items():
        low = max(0, history.first - 2)
        subscriber.follow(symbol, history, rng.randrange(low, history.last + 1)
                          if history.last >= low else 0)
        if rng.random() < 0.5:
            subscriber._cursors[symbol].fresh = False
    return subscriber, histories


def twin(subscriber: Subscriber, histories: dict[str, History]) -> Subscriber:
    other = Subscriber(max_lag=subscriber._max_lag, max_frame_ticks=subscriber._frame_ticks)
    for symbol, cursor in subscriber._cursors.items():
        other.follow(symbol, histories[symbol], cursor.seq)
        other._cursors[symbol].fresh = cursor.fresh
    return other


def cursors(subscriber: Subscriber) -> dict[str, tuple[int, bool]]:
    return {symbol: (c.seq, c.fresh) for symbol, c in subscriber._cursors.items()}


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 10**6), symbols=st.integers(0, 12), capacity=st.integers(1, 9),
       max_lag=st.integers(1, 40), step=st.integers(1, 7))
def test_compiled_and_python_drains_agree(seed: int, symbols: int, capacity: int, max_lag: int,
                                          step: int) -> None:
    needs_compiled()
    fast, histories = build(seed, symbols, capacity, max_lag, step)
    slow = twin(fast, histories)
    assert cursors(fast) == cursors(slow)
    got = fast.tick_frames()
    want = slow.tick_frames_in_python()
    assert got == want
    assert cursors(fast) == cursors(slow)
    assert fast.close_request == slow.close_request  # a slow consumer is closed by both
    assert fast.stats.ticks == slow.stats.ticks


def test_a_conflated_cursor_is_left_to_python_and_still_conflates() -> None:
    needs_compiled()
    loop = asyncio.new_event_loop()
    try:
        history = History(100)
        for seq in range(1, 6):
            history.append(seq, orjson.dumps({"seq": seq}), seq)
        subscriber = Subscriber(max_lag=1000, max_frame_ticks=100)

        async def drain() -> list[bytes]:
            subscriber.follow("A", history, 0, max_rate=1.0)
            return subscriber.tick_frames()

        frames = loop.run_until_complete(drain())
    finally:
        loop.close()
    assert [orjson.loads(frame)["ticks"] for frame in frames] == [[{"seq": 5}]]
    assert subscriber.stats.conflated == 4


def test_a_history_that_started_over_moves_the_cursor_back_like_python() -> None:
    needs_compiled()
    history = History(10)
    history.append(1, b'{"seq":1}', 1)
    fast = Subscriber(max_lag=100, max_frame_ticks=100)
    slow = Subscriber(max_lag=100, max_frame_ticks=100)
    for subscriber in (fast, slow):
        subscriber.follow("A", history, 7)  # a cursor past the newest seq
    assert fast.tick_frames() == slow.tick_frames_in_python() == []
    assert cursors(fast) == cursors(slow) == {"A": (1, False)}


@pytest.mark.parametrize("ticks", [1, 3, 600, 700])  # payloads < 126, < 64 KiB, >= 64 KiB
def test_ws_header_frames_parse_as_one_text_message_each(ticks: int) -> None:
    history = History(1000)
    for seq in range(1, ticks + 1):
        history.append(seq, orjson.dumps({"seq": seq, "pad": "x" * 100 * (ticks > 650)}), seq)
    subscriber = Subscriber(max_lag=10_000, max_frame_ticks=10_000)
    subscriber.follow("A", history, 0)
    frames = subscriber.tick_frames(ws_header=True)
    reader = StreamReader()
    reader.feed_data(b"".join(frames))
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame = done.value
    assert frame.opcode is Opcode.TEXT and frame.fin
    assert [t["seq"] for t in orjson.loads(frame.data)["ticks"]] == list(range(1, ticks + 1))
    assert subscriber.stats.ticks == ticks


def test_bad_state_is_an_error_not_a_crash() -> None:
    needs_compiled()
    assert compiled is not None
    history = History(10)
    history.append(1, b'{"seq":1}', 1)
    history.append(2, b'{"seq":2}', 2)
    subscriber = Subscriber(max_lag=100, max_frame_ticks=100)
    subscriber.follow("A", history, 0)
    history._ring[1] = "not bytes"  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        compiled(subscriber._cursors, 100, 100, b"[", b"]", False)
    assert subscriber._cursors["A"].seq == 0  # nothing moved
    history._places = history._places[:1]
    with pytest.raises(ValueError, match="disagree"):
        compiled(subscriber._cursors, 100, 100, b"[", b"]", False)
    with pytest.raises(TypeError):
        compiled([], 100, 100, b"[", b"]", False)  # type: ignore[arg-type]


def test_an_armed_conflated_cursor_is_skipped_in_c_not_handed_back() -> None:
    """A conflated cursor waiting on its timer has nothing due: the compiled drain takes the
    other cursors' ticks itself, rather than handing every such drain to Python."""
    needs_compiled()
    assert compiled is not None
    eager, quiet = History(100), History(100)
    for seq in range(1, 4):
        eager.append(seq, orjson.dumps({"symbol": "E", "seq": seq}), 2 * seq)
        quiet.append(seq, orjson.dumps({"symbol": "Q", "seq": seq}), 2 * seq + 1)
    subscriber = Subscriber(max_lag=1000, max_frame_ticks=100)
    subscriber.follow("E", eager, 0)
    conflated = subscriber.follow("Q", quiet, 0, max_rate=1.0)
    conflated.armed = True
    taken = compiled(subscriber._cursors, 1000, 100, b"[", b"]", False)
    assert taken is not None
    assert taken[1] == 3 and conflated.seq == 0  # only the eager cursor's ticks, untouched Q
    conflated.armed = False
    assert compiled(subscriber._cursors, 1000, 100, b"[", b"]", False) is None


class PlainCursor:
    """A cursor of another class, with a __dict__: the drain reads it the generic way."""

    def __init__(self, history: History, seq: int) -> None:
        self.history, self.seq, self.fresh, self.interval, self.armed = history, seq, False, 0.0, \
            False


class PlainHistory(History):
    """A subclass, and one with a __dict__ beside the slots: the slots are where they were."""


def test_cursors_and_histories_of_other_classes_drain_the_same() -> None:
    needs_compiled()
    assert compiled is not None

    def build(history_type: type[History]) -> tuple[History, History]:
        a, b = history_type(8), History(8)
        for seq in range(1, 13):  # a wrapped ring
            a.append(seq, orjson.dumps({"symbol": "A", "seq": seq}), 2 * seq)
            b.append(seq, orjson.dumps({"symbol": "B", "seq": seq}), 2 * seq + 1)
        return a, b

    a, b = build(History)
    subscriber = Subscriber(max_lag=1000, max_frame_ticks=5)
    subscriber.follow("A", a, 6)
    subscriber.follow("B", b, 7)
    expected = compiled(subscriber._cursors, 1000, 5, b"[", b"]", True)
    for history_type in (History, PlainHistory):
        a, b = build(history_type)
        odd = PlainCursor(b, 7)
        mixed = {"A": Subscriber(max_lag=1000, max_frame_ticks=5).follow("A", a, 6), "B": odd}
        # Twice in a row, so the second call runs on what the first learned of the types.
        assert compiled(mixed, 1000, 5, b"[", b"]", True) == expected
        assert odd.seq == 12 and odd.fresh is False and mixed["A"].seq == 12
        odd.seq = 7
        mixed["A"].seq = 6
        assert compiled(mixed, 1000, 5, b"[", b"]", True) == expected


def test_an_unset_slot_is_an_attribute_error_not_a_crash() -> None:
    needs_compiled()
    assert compiled is not None
    history = History(4)
    history.append(1, b'{"seq":1}', 1)
    real = Subscriber(max_lag=10, max_frame_ticks=10).follow("A", history, 0)
    compiled({"A": real}, 10, 10, b"[", b"]", False)  # the types are learned
    blank = type(real).__new__(type(real))
    with pytest.raises(AttributeError):
        compiled({"A": blank}, 10, 10, b"[", b"]", False)
    blank_history = History.__new__(History)
    real.history = blank_history
    with pytest.raises(AttributeError):
        compiled({"A": real}, 10, 10, b"[", b"]", False)
