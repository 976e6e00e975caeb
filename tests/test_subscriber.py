"""A connection's cursors and replies, drained into frames; no sockets."""

from __future__ import annotations

import orjson
import pytest

from ticker.history import History
from ticker.subscriber import Close, Subscriber


def tick(symbol: str, seq: int) -> bytes:
    return orjson.dumps({"symbol": symbol, "seq": seq})


def history_of(symbol: str, count: int, capacity: int = 100) -> History:
    history = History(capacity)
    for seq in range(1, count + 1):
        history.append(seq, tick(symbol, seq))
    return history


def decode(frames: list[bytes]) -> list[dict[str, object]]:
    return [orjson.loads(frame) for frame in frames]


def seqs(frames: list[bytes], symbol: str) -> list[int]:
    return [t["seq"] for m in decode(frames) if m["type"] == "ticks"
            for t in m["ticks"] if t["symbol"] == symbol]  # type: ignore[attr-defined]


def test_replies_come_first_then_every_tick_after_each_cursor() -> None:
    subscriber = Subscriber(max_lag=1000, max_frame_ticks=1000)
    apple, bank = history_of("AAPL", 10), history_of("JPM", 5)
    subscriber.follow("AAPL", apple, 7)
    subscriber.follow("JPM", bank, 0)
    subscriber.put_message(b'{"type":"pong"}')
    frames = subscriber.drain()
    assert decode(frames)[0] == {"type": "pong"}
    assert seqs(frames, "AAPL") == [8, 9, 10]
    assert seqs(frames, "JPM") == [1, 2, 3, 4, 5]
    assert len(frames) == 2  # one reply, one frame with all the ticks
    assert subscriber.drain() == []
    apple.append(11, tick("AAPL", 11))
    assert seqs(subscriber.drain(), "AAPL") == [11]


def test_frames_are_split_at_max_frame_ticks() -> None:
    subscriber = Subscriber(max_lag=1000, max_frame_ticks=4)
    subscriber.follow("AAPL", history_of("AAPL", 10), 0)
    frames = subscriber.drain()
    assert [len(m["ticks"]) for m in decode(frames)] == [4, 4, 2]  # type: ignore[arg-type]
    assert seqs(frames, "AAPL") == list(range(1, 11))


def test_unfollow_stops_delivery_of_ticks_not_yet_sent() -> None:
    subscriber = Subscriber(max_lag=1000, max_frame_ticks=1000)
    apple = history_of("AAPL", 3)
    subscriber.follow("AAPL", apple, 3)
    apple.append(4, tick("AAPL", 4))
    subscriber.unfollow("AAPL")
    subscriber.put_message(b'{"type":"unsubscribed"}')
    assert decode(subscriber.drain()) == [{"type": "unsubscribed"}]


def test_a_backlog_is_not_lag_but_falling_behind_afterwards_is() -> None:
    subscriber = Subscriber(max_lag=10, max_frame_ticks=1000)
    apple = history_of("AAPL", 50, capacity=100)
    subscriber.follow("AAPL", apple, 0)  # a resume 50 ticks back: served in full
    assert len(seqs(subscriber.drain(), "AAPL")) == 50
    for seq in range(51, 61):
        apple.append(seq, tick("AAPL", seq))
    assert seqs(subscriber.drain(), "AAPL") == list(range(51, 61))  # 10 behind: allowed
    for seq in range(61, 72):
        apple.append(seq, tick("AAPL", seq))
    assert subscriber.drain() == []  # 11 behind
    assert subscriber.close_request is not None
    assert subscriber.close_request.code == 4008
    assert "AAPL" in subscriber.close_request.reason


def test_close_keeps_the_replies_already_queued_drops_ticks_and_later_messages() -> None:
    subscriber = Subscriber(max_lag=10, max_frame_ticks=1000)
    subscriber.follow("AAPL", history_of("AAPL", 5), 0)
    subscriber.put_message(b'{"type":"pong","id":1}')
    subscriber.close(Close(1001, "bye"))
    subscriber.put_message(b'{"type":"pong","id":2}')
    assert subscriber.drain() == [b'{"type":"pong","id":1}']
    assert subscriber.close_request == Close(1001, "bye")


def test_ticks_of_several_symbols_come_in_the_order_the_feed_published_them() -> None:
    apple, bank = History(100), History(100)
    # The feed's order: A1 B1 A2 A3 B2 A4 B3 (places 1..7)
    for place, (history, symbol, seq) in enumerate(
            [(apple, "AAPL", 1), (bank, "JPM", 1), (apple, "AAPL", 2), (apple, "AAPL", 3),
             (bank, "JPM", 2), (apple, "AAPL", 4), (bank, "JPM", 3)], start=1):
        history.append(seq, tick(symbol, seq), place)
    subscriber = Subscriber(max_lag=1000, max_frame_ticks=3)
    subscriber.follow("AAPL", apple, 0)
    subscriber.follow("JPM", bank, 0)
    frames = decode(subscriber.drain())
    assert [len(f["ticks"]) for f in frames] == [3, 3, 1]  # type: ignore[arg-type]
    assert [(t["symbol"], t["seq"]) for f in frames for t in f["ticks"]] == [  # type: ignore[attr-defined]
        ("AAPL", 1), ("JPM", 1), ("AAPL", 2), ("AAPL", 3), ("JPM", 2), ("AAPL", 4), ("JPM", 3)]


def test_a_message_after_ticks_waits_for_the_ticks_due_before_it() -> None:
    subscriber = Subscriber(max_lag=1000, max_frame_ticks=1000, takes_frames=True)
    subscriber.follow("AAPL", history_of("AAPL", 3), 0)
    subscriber.put_message(b'{"type":"pong"}')
    subscriber.put_message(b'{"type":"replay_end"}', after_ticks=True)
    kinds = [m["type"] for m in decode(subscriber.drain())]
    assert kinds == ["pong", "ticks", "replay_end"]


@pytest.mark.anyio
async def test_wait_returns_once_there_is_something_to_send() -> None:
    subscriber = Subscriber(max_lag=10, max_frame_ticks=10)
    subscriber.put_message(b'{"type":"x"}')
    assert subscriber.pending
    await subscriber.wait()
    assert subscriber.drain() == [b'{"type":"x"}']
    assert not subscriber.pending


@pytest.mark.parametrize("capacity", [100, 3])  # 3: the rings have wrapped
def test_feed_order_puts_runs_that_do_not_interleave_in_order_by_their_first_tick(
        capacity: int) -> None:
    apple, bank, oil = History(capacity), History(capacity), History(capacity)
    # The feed: X1..X5 (places 1-5), then J1 J2 (6, 7), then A1 A2 (8, 9).
    for place, (history, symbol, seq) in enumerate(
            [(oil, "XOM", s) for s in range(1, 6)] + [(bank, "JPM", 1), (bank, "JPM", 2),
                                                      (apple, "AAPL", 1), (apple, "AAPL", 2)],
            start=1):
        history.append(seq, tick(symbol, seq), place)
    subscriber = Subscriber(max_lag=1000, max_frame_ticks=1000)
    subscriber.follow("AAPL", apple, 0)
    subscriber.follow("JPM", bank, 0)
    subscriber.follow("XOM", oil, 5 - min(capacity, 5))
    [frame] = decode(subscriber.drain())
    kept = [("XOM", s) for s in range(6 - min(capacity, 5), 6)]
    assert [(t["symbol"], t["seq"]) for t in frame["ticks"]] == [  # type: ignore[attr-defined]
        *kept, ("JPM", 1), ("JPM", 2), ("AAPL", 1), ("AAPL", 2)]


def test_a_cursor_at_zero_on_a_run_whose_seqs_start_later_gets_it_from_the_first() -> None:
    """After a seek a replay's run starts at the recorded seqs (say 2250), and the hub places
    every cursor at 0: that means "from the first tick of the run"."""
    apple, bank = History(100), History(100)
    for place, (history, symbol, seq) in enumerate(
            [(apple, "AAPL", 2250), (bank, "JPM", 871), (apple, "AAPL", 2251)], start=1):
        history.append(seq, tick(symbol, seq), place)
    subscriber = Subscriber(max_lag=1000, max_frame_ticks=1000)
    subscriber.follow("AAPL", apple, 0)
    subscriber.follow("JPM", bank, 0)
    runs = subscriber.take_ticks()
    assert [(symbol, first) for symbol, first, *_ in runs] == [("AAPL", 2250), ("JPM", 871)]
    subscriber.follow("AAPL", apple, 0)
    subscriber.follow("JPM", bank, 0)
    [frame] = decode(subscriber.drain())
    assert [(t["symbol"], t["seq"]) for t in frame["ticks"]] == [  # type: ignore[attr-defined]
        ("AAPL", 2250), ("JPM", 871), ("AAPL", 2251)]
