"""The per-connection queue: order, coalescing, bounds; no event loop I/O needed."""

from __future__ import annotations

import orjson
import pytest

from ticker.outbox import Close, Outbox


def tick(seq: int) -> bytes:
    return orjson.dumps({"symbol": "AAPL", "seq": seq})


def decode(frames: list[bytes]) -> list[dict[str, object]]:
    return [orjson.loads(frame) for frame in frames]


def test_consecutive_ticks_become_one_frame_and_messages_keep_their_place() -> None:
    outbox = Outbox(max_bytes=1 << 20, max_frame_bytes=1 << 16)
    outbox.put_tick(tick(1))
    outbox.put_tick(tick(2))
    outbox.put_message(b'{"type":"pong"}')
    outbox.put_tick(tick(3))
    messages = decode(outbox.drain())
    assert [m["type"] for m in messages] == ["ticks", "pong", "ticks"]
    assert [t["seq"] for t in messages[0]["ticks"]] == [1, 2]  # type: ignore[index]
    assert outbox.drain() == []
    assert outbox.queued_bytes == 0


def test_ticks_only_fast_path_is_one_frame() -> None:
    outbox = Outbox(max_bytes=1 << 20, max_frame_bytes=1 << 16)
    for seq in range(1, 101):
        outbox.put_tick(tick(seq))
    (frame,) = outbox.drain()
    assert [t["seq"] for t in orjson.loads(frame)["ticks"]] == list(range(1, 101))


def test_frames_respect_the_frame_limit() -> None:
    outbox = Outbox(max_bytes=1 << 20, max_frame_bytes=1000)
    for seq in range(1, 501):
        outbox.put_tick(tick(seq))
    frames = outbox.drain()
    assert len(frames) > 1 and all(len(f) <= 1000 for f in frames)
    seqs = [t["seq"] for m in decode(frames) for t in m["ticks"]]  # type: ignore[attr-defined]
    assert seqs == list(range(1, 501))


def test_overflow_closes_as_slow_consumer_and_drops_the_queue() -> None:
    outbox = Outbox(max_bytes=1000, max_frame_bytes=1 << 16)
    seq = queued = 0
    while outbox.close_request is None:
        seq += 1
        outbox.put_tick(tick(seq))
        queued += len(tick(seq))
    assert outbox.close_request == Close(4008, outbox.close_request.reason)
    assert "slow" in outbox.close_request.reason
    assert queued > 1000 >= queued - len(tick(seq))
    outbox.put_tick(tick(seq + 1))
    outbox.put_message(b"{}")
    assert outbox.drain() == []


def test_a_backlog_may_exceed_the_bound_once_but_live_ticks_on_top_may_not() -> None:
    outbox = Outbox(max_bytes=1000, max_frame_bytes=1 << 16)
    outbox.put_backlog([tick(s) for s in range(1, 200)])  # ~5 KB
    assert outbox.close_request is None
    outbox.put_tick(tick(200))
    assert outbox.close_request is None
    while outbox.close_request is None and outbox.queued_bytes < 100_000:
        outbox.put_tick(tick(0))
    assert outbox.close_request is not None


@pytest.mark.anyio
async def test_wait_returns_once_something_is_queued() -> None:
    outbox = Outbox(max_bytes=1000, max_frame_bytes=1000)
    outbox.put_message(b'{"type":"x"}')
    await outbox.wait()
    assert outbox.drain() == [b'{"type":"x"}']
