"""The hub without a server: Subscribers stand in for connections."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from ticker.history import History
from ticker.hub import Hub
from ticker.model import FeedStart, SymbolInfo, Tick, TickBatch
from ticker.protocol import Resume
from ticker.subscriber import Close, Subscriber

SYMBOLS = (SymbolInfo("AAPL", "Apple Inc.", "Technology"), SymbolInfo("MSFT"), SymbolInfo("JPM"))


def make_hub(snapshot_size: int = 5, history_size: int = 20) -> Hub:
    hub = Hub(snapshot_size, history_size, bars_kept=100)
    hub.ingest(FeedStart("e1", "simulated", SYMBOLS))
    return hub


def tick(symbol: str, seq: int, ts: float = 1000.0, price: float = 10.0, size: int = 100) -> Tick:
    return Tick(symbol, seq, ts, price, size, price - 0.01, price + 0.01)


def publish(hub: Hub, *ticks: Tick, epoch: str = "e1") -> None:
    hub.ingest(TickBatch(epoch, ticks))


def subscriber() -> Subscriber:
    return Subscriber(max_lag=1000, max_frame_ticks=1000)


def received(box: Subscriber) -> list[dict[str, object]]:
    return [orjson.loads(frame) for frame in box.drain()]


def tick_seqs(messages: list[dict[str, object]], symbol: str) -> list[int]:
    return [t["seq"] for m in messages if m["type"] in ("ticks", "snapshot")
            for t in m["ticks"] if t["symbol"] == symbol]  # type: ignore[attr-defined]


def test_fan_out_reaches_subscribers_of_the_symbol_and_no_one_else() -> None:
    hub = make_hub()
    apple, bank, both, idle = subscriber(), subscriber(), subscriber(), subscriber()
    for box in (apple, bank, both, idle):
        hub.connect(box)
        box.drain()
    hub.subscribe(apple, ("AAPL",))
    hub.subscribe(bank, ("JPM",))
    hub.subscribe(both, ("AAPL", "JPM"))
    publish(hub, tick("AAPL", 1), tick("JPM", 1), tick("MSFT", 1), tick("AAPL", 2))
    assert tick_seqs(received(apple), "AAPL") == [1, 2]
    bank_messages = received(bank)
    assert tick_seqs(bank_messages, "JPM") == [1]
    assert tick_seqs(bank_messages, "AAPL") == []
    both_messages = received(both)
    assert tick_seqs(both_messages, "AAPL") == [1, 2]
    assert tick_seqs(both_messages, "JPM") == [1]
    assert received(idle) == []


def test_each_tick_is_encoded_once_and_shared() -> None:
    hub = make_hub()
    first, second = subscriber(), subscriber()
    for box in (first, second):
        hub.subscribe(box, ("AAPL",))
    first.drain()
    second.drain()
    publish(hub, tick("AAPL", 1))
    assert first.pending
    assert second.pending
    (frame_one,), (frame_two,) = first.drain(), second.drain()
    assert frame_one == frame_two
    hub_copy = hub._states["AAPL"].history.latest(1)[0]
    assert hub_copy in frame_one


def test_snapshot_holds_the_last_ticks_oldest_first_then_live_continues() -> None:
    hub = make_hub(snapshot_size=5)
    publish(hub, *(tick("AAPL", seq) for seq in range(1, 9)))
    box = subscriber()
    ((symbol, message),) = hub.subscribe(box, ("AAPL",))
    assert symbol == "AAPL"
    assert message is not None
    snapshot = orjson.loads(message)
    assert [t["seq"] for t in snapshot["ticks"]] == [4, 5, 6, 7, 8]
    assert snapshot["reset"] is False
    assert snapshot["epoch"] == "e1"
    publish(hub, tick("AAPL", 9))
    assert tick_seqs(received(box), "AAPL") == [9]


def test_snapshot_of_a_symbol_that_has_not_traded_is_empty() -> None:
    hub = make_hub()
    ((_, message),) = hub.subscribe(subscriber(), ("MSFT",))
    assert message is not None
    assert orjson.loads(message)["ticks"] == []


def test_resume_returns_exactly_the_missed_ticks() -> None:
    hub = make_hub(snapshot_size=5, history_size=20)
    publish(hub, *(tick("AAPL", seq) for seq in range(1, 16)))
    box = subscriber()
    ((_, message),) = hub.subscribe(box, ("AAPL",), Resume("e1", {"AAPL": 6}))
    assert message is None
    assert tick_seqs(received(box), "AAPL") == list(range(7, 16))
    up_to_date = subscriber()
    ((_, message),) = hub.subscribe(up_to_date, ("AAPL",), Resume("e1", {"AAPL": 15}))
    assert message is None
    assert received(up_to_date) == []
    publish(hub, tick("AAPL", 16))
    assert tick_seqs(received(box), "AAPL") == [16]
    assert tick_seqs(received(up_to_date), "AAPL") == [16]


@pytest.mark.parametrize("resume", [
    Resume("other-epoch", {"AAPL": 10}),  # the feed restarted
    Resume("e1", {"AAPL": 3}),  # history (20) no longer reaches back to seq 4
    Resume("e1", {"AAPL": 99}),  # from the future
])
def test_resume_that_cannot_be_served_gets_a_reset_snapshot(resume: Resume) -> None:
    hub = make_hub(snapshot_size=5, history_size=20)
    publish(hub, *(tick("AAPL", seq) for seq in range(1, 31)))
    box = subscriber()
    ((_, message),) = hub.subscribe(box, ("AAPL",), resume)
    assert message is not None
    snapshot = orjson.loads(message)
    assert snapshot["reset"] is True
    assert [t["seq"] for t in snapshot["ticks"]] == [26, 27, 28, 29, 30]
    assert received(box) == []  # the snapshot replaces any backlog


def test_resume_at_the_edge_of_history_is_served() -> None:
    hub = make_hub(snapshot_size=5, history_size=20)
    publish(hub, *(tick("AAPL", seq) for seq in range(1, 31)))
    box = subscriber()
    hub.subscribe(box, ("AAPL",), Resume("e1", {"AAPL": 10}))
    assert tick_seqs(received(box), "AAPL") == list(range(11, 31))


def test_unsubscribe_stops_delivery() -> None:
    hub = make_hub()
    box = subscriber()
    hub.subscribe(box, ("AAPL", "MSFT"))
    box.drain()
    hub.unsubscribe(box, ("MSFT",))
    publish(hub, tick("AAPL", 1), tick("MSFT", 1))
    messages = received(box)
    assert tick_seqs(messages, "AAPL") == [1]
    assert tick_seqs(messages, "MSFT") == []


def test_disconnect_forgets_the_connection() -> None:
    hub = make_hub()
    box = subscriber()
    hub.connect(box)
    hub.subscribe(box, ("AAPL",))
    hub.disconnect(box)
    box.drain()
    publish(hub, tick("AAPL", 1))
    assert box.drain() == []
    assert hub.connections == 0


def test_a_new_epoch_resets_history_and_tells_subscribers() -> None:
    hub = make_hub()
    box = subscriber()
    hub.connect(box)
    hub.subscribe(box, ("AAPL",))
    publish(hub, tick("AAPL", 1), tick("AAPL", 2))
    box.drain()
    hub.ingest(FeedStart("e2", "simulated", SYMBOLS))
    publish(hub, tick("AAPL", 1, price=11.0), epoch="e2")
    publish(hub, tick("AAPL", 3), epoch="e1")  # a straggler from the old run is dropped
    messages = received(box)
    assert [m["type"] for m in messages] == ["hello", "snapshot", "ticks"]
    assert messages[0]["epoch"] == "e2"
    assert messages[1] == {"type": "snapshot", "symbol": "AAPL", "epoch": "e2", "reset": True,
                           "seq": 0, "ticks": []}
    assert tick_seqs(messages, "AAPL") == [1]
    (summary,) = [s for s in hub.summaries() if s["symbol"] == "AAPL"]
    assert summary["open"] == 11.0
    assert summary["seq"] == 1


def test_summaries_report_price_change_since_open() -> None:
    hub = make_hub()
    publish(hub, tick("AAPL", 1, price=200.0), tick("AAPL", 2, price=205.5))
    summaries = {s["symbol"]: s for s in hub.summaries()}
    assert summaries["AAPL"] == {"symbol": "AAPL", "name": "Apple Inc.", "sector": "Technology",
                                 "price": 205.5, "open": 200.0, "change": 5.5,
                                 "change_pct": 2.75, "seq": 2}
    assert summaries["MSFT"]["price"] is None
    assert summaries["MSFT"]["seq"] == 0


def test_bars_aggregate_ohlcv_per_interval() -> None:
    hub = make_hub()
    publish(hub,
            tick("AAPL", 1, ts=60_000.0, price=10.0, size=100),
            tick("AAPL", 2, ts=60_400.0, price=12.0, size=200),
            tick("AAPL", 3, ts=60_900.0, price=9.0, size=300),
            tick("AAPL", 4, ts=61_100.0, price=11.0, size=100),
            tick("AAPL", 5, ts=125_000.0, price=13.0, size=500))
    assert hub.bars("AAPL", "1s", 10) == [
        {"start": 60_000, "open": 10.0, "high": 12.0, "low": 9.0, "close": 9.0, "volume": 600},
        {"start": 61_000, "open": 11.0, "high": 11.0, "low": 11.0, "close": 11.0, "volume": 100},
        {"start": 125_000, "open": 13.0, "high": 13.0, "low": 13.0, "close": 13.0, "volume": 500},
    ]
    assert hub.bars("AAPL", "1m", 10) == [
        {"start": 60_000, "open": 10.0, "high": 12.0, "low": 9.0, "close": 11.0, "volume": 700},
        {"start": 120_000, "open": 13.0, "high": 13.0, "low": 13.0, "close": 13.0, "volume": 500},
    ]
    assert [b["start"] for b in hub.bars("AAPL", "5s", 1)] == [125_000]
    assert hub.bars("AAPL", "1s", 1)[0]["start"] == 125_000


def test_close_all_asks_every_connection_to_close() -> None:
    hub = make_hub()
    boxes = [subscriber() for _ in range(3)]
    for box in boxes:
        hub.connect(box)
    hub.close_all(Close(1001, "bye"))
    assert all(box.close_request == Close(1001, "bye") for box in boxes)


def test_history_ring_wraps_and_restarts_on_a_seq_jump() -> None:
    history = History(capacity=4)
    for seq in range(1, 11):
        history.append(seq, str(seq).encode())
    assert (history.first, history.last) == (7, 10)
    assert history.reaches(6)
    assert history.after(6) == [b"7", b"8", b"9", b"10"]
    assert not history.reaches(5)
    assert history.after(8) == [b"9", b"10"]
    assert history.latest(2) == [b"9", b"10"]
    assert history.reaches(10)
    assert history.after(10) == []
    assert not history.reaches(11)
    history.append(20, b"20")
    assert (history.first, history.last) == (20, 20)
    assert not history.reaches(10)
    assert history.reaches(19)
    assert history.after(19) == [b"20"]


def test_history_reads_every_window_of_a_wrapped_ring() -> None:
    history = History(capacity=7)
    for seq in range(1, 40):
        history.append(seq, str(seq).encode())
        for since in range(max(0, seq - 7), seq + 1):
            assert history.reaches(since)
            assert history.after(since) == [str(s).encode() for s in range(since + 1, seq + 1)]


def test_follow_live_delivers_from_the_next_tick_with_no_snapshot() -> None:
    hub = make_hub()
    box = subscriber()
    hub.connect(box, hello=False)
    publish(hub, tick("AAPL", 1), tick("AAPL", 2))
    hub.follow_live(box, ("AAPL", "NOPE"))
    assert box.take_messages() == []
    publish(hub, tick("AAPL", 3))
    assert [seq for _, seq, *_ in box.take_ticks()] == [3]
    assert box.symbols == {"AAPL"}


def test_the_market_clock_closes_minutes_by_feed_time_and_wakes_its_watchers() -> None:
    hub = make_hub()
    watcher, other = subscriber(), subscriber()
    for box in (watcher, other):
        hub.connect(box, hello=False)
    hub.watch_minutes(watcher)
    publish(hub, tick("AAPL", 1, ts=60_500.0, price=10.0, size=100),
            tick("MSFT", 1, ts=61_000.0, price=20.0))
    publish(hub, tick("AAPL", 2, ts=119_000.0, price=12.0, size=300))
    watcher.take_messages()
    assert hub.market_minute == 60_000.0
    assert hub.closed_minute_bars("AAPL", -1) == []
    publish(hub, tick("JPM", 1, ts=120_000.0))  # any symbol's tick moves the clock
    assert watcher.pending and not other.pending
    [bar] = hub.closed_minute_bars("AAPL", -1)
    assert (bar.start, bar.open, bar.close, bar.volume, bar.trades) == (60_000, 10.0, 12.0, 400, 2)
    assert bar.vwap == pytest.approx(11.5)
    assert hub.closed_minute_bars("AAPL", 60_000) == []
    day = hub.daily_bar("AAPL")
    assert day is not None and (day.start, day.volume, day.trades) == (0, 400, 2)
    hub.watch_minutes(watcher, False)
    watcher.take_messages()
    publish(hub, tick("JPM", 2, ts=180_000.0))
    assert not watcher.pending


@pytest.mark.anyio
async def test_a_conflated_subscriber_waiting_on_its_timer_is_not_woken_per_tick() -> None:
    """A dashboard's max_rate cursor costs the hub nothing per tick once its timer is armed:
    woken for the tick that arms it and by the timer, not for the ticks in between."""
    hub = make_hub(history_size=200)
    box = subscriber()
    wakes = []
    box.on_wake = lambda: wakes.append(1)
    hub.connect(box)
    hub.subscribe(box, ("AAPL",), max_rate=0.5)  # one update per 2 s
    box.drain()  # hello, snapshot
    publish(hub, tick("AAPL", 1))
    assert tick_seqs(received(box), "AAPL") == [1]  # due at once: the first update
    publish(hub, tick("AAPL", 2))
    assert received(box) == []  # not due: the cursor arms its timer
    wakes.clear()
    for seq in range(3, 50):
        publish(hub, tick("AAPL", seq))
    assert wakes == [] and not box.pending


@pytest.mark.anyio
async def test_a_new_epoch_keeps_each_subscription_s_max_rate() -> None:
    hub = make_hub(history_size=200)
    box = subscriber()
    hub.connect(box)
    hub.subscribe(box, ("AAPL",), max_rate=0.5)
    box.drain()
    hub.ingest(FeedStart("e2", "simulated", SYMBOLS))
    box.drain()
    for seq in range(1, 6):
        publish(hub, tick("AAPL", seq), epoch="e2")
    assert tick_seqs(received(box), "AAPL") == [5]  # still conflated: only the latest
    assert box.stats.conflated == 4


@pytest.mark.anyio
async def test_an_armed_cursor_leaves_the_symbols_wake_list_until_its_timer_fires() -> None:
    """Per tick the hub walks only the subscribers it may have to wake: 300 dashboards at 1/s
    on a symbol cost a tick nothing between their updates."""
    hub = make_hub(history_size=200)
    eager = hub._states["AAPL"].eager
    boxes = [subscriber() for _ in range(300)]
    live = subscriber()
    for box in boxes:
        hub.connect(box)
        hub.subscribe(box, ("AAPL",), max_rate=20.0)  # every 50 ms
        box.drain()
    hub.connect(live)
    hub.subscribe(live, ("AAPL",))
    publish(hub, tick("AAPL", 1))
    for box in boxes:
        assert tick_seqs(received(box), "AAPL") == [1]  # the first update is due at once
    assert list(eager) == [live]  # every conflated cursor is armed now
    await asyncio.sleep(0.08)  # their timers fire: each is woken and eager again
    assert len(eager) == 301 and all(box.pending for box in boxes)
    publish(hub, tick("AAPL", 2))
    for box in boxes:
        assert tick_seqs(received(box), "AAPL") == [2]
    assert list(eager) == [live]


def test_a_closed_subscriber_leaves_the_hub_entirely_at_disconnect() -> None:
    """A close (slow consumer, policy, shutdown) drops the cursors at once, so that no tick goes
    out after it; the hub must still let go of the subscriber on every symbol it followed."""
    hub = make_hub()
    box = subscriber()
    hub.connect(box)
    hub.subscribe(box, ("AAPL", "MSFT"))
    box.close(Close(4008, "slow consumer"))
    assert not box.symbols and box.closed_symbols == ("AAPL", "MSFT")
    hub.disconnect(box)
    assert hub.subscription_count() == 0 and hub.connections == 0
    assert all(box not in state.eager for state in hub._states.values())
