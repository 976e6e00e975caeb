"""ticker.client's bookkeeping, without sockets: resume points, duplicates, resets."""

from __future__ import annotations

import pytest

from ticker.client.backoff import Backoff
from ticker.client.state import Reset, ServerError, Snapshot, StreamState
from ticker.client.transports import endpoints
from ticker.model import Tick
from ticker.transport.positions import parse_event_id


def tick(symbol: str, seq: int) -> dict[str, object]:
    return {"symbol": symbol, "seq": seq, "ts": 1.0e12 + seq, "price": 10.0, "size": 0.5,
            "bid": 9.99, "ask": 10.01, "later_field": "ignored"}


def snapshot(symbol: str, epoch: str, seqs: range, reset: bool = False) -> dict[str, object]:
    return {"type": "snapshot", "symbol": symbol, "epoch": epoch, "reset": reset,
            "seq": seqs[-1] if seqs else 0, "ticks": [tick(symbol, s) for s in seqs]}


def followed(*symbols: str) -> StreamState:
    state = StreamState()
    state.want(symbols)
    state.receive({"type": "hello", "epoch": "e1", "feed": "simulated", "symbols": list(symbols)})
    for symbol in symbols:
        state.receive(snapshot(symbol, "e1", range(1, 4)))
    return state


def test_ticks_pass_once_and_duplicates_are_dropped() -> None:
    state = followed("AAPL")
    first = state.receive({"type": "ticks", "ticks": [tick("AAPL", 4), tick("AAPL", 5)]})
    again = state.receive({"type": "ticks", "ticks": [tick("AAPL", 5), tick("AAPL", 6)]})
    assert [t.seq for t in first if isinstance(t, Tick)] == [4, 5]
    assert [t.seq for t in again if isinstance(t, Tick)] == [6]
    assert state.duplicates == 1
    assert first[0] == Tick("AAPL", 4, 1.0e12 + 4, 10.0, 0.5, 9.99, 10.01)


def test_a_reconnect_resumes_from_the_last_seqs() -> None:
    state = followed("AAPL", "MSFT")
    state.receive({"type": "ticks", "ticks": [tick("MSFT", 4)]})
    [message] = state.subscribe_messages()
    assert message["symbols"] == ["AAPL", "MSFT"]
    assert message["resume"] == {"epoch": "e1", "seqs": {"AAPL": 3, "MSFT": 4}}
    assert state.last_event_id(["MSFT", "AAPL"]) == "e1/4.3"


def test_symbols_of_different_rates_are_asked_for_apart() -> None:
    state = StreamState()
    state.want(["AAPL"], 0.0)
    state.want(["msft"], 2.0)
    messages = state.subscribe_messages()
    assert [(m["symbols"], m.get("max_rate")) for m in messages] == [(["AAPL"], None),
                                                                     (["MSFT"], 2.0)]
    assert "resume" not in messages[0]


def test_a_new_epoch_is_an_explicit_reset_with_the_new_ticks() -> None:
    state = followed("AAPL")
    state.receive({"type": "hello", "epoch": "e2", "feed": "simulated", "symbols": ["AAPL"]})
    [event] = state.receive(snapshot("AAPL", "e2", range(1, 3), reset=True))
    assert isinstance(event, Reset)
    assert (event.symbol, event.epoch, event.reason) == ("AAPL", "e2", "new_epoch")
    assert [t.seq for t in event.ticks] == [1, 2]
    assert state.subscribe_messages()[0]["resume"] == {"epoch": "e2", "seqs": {"AAPL": 2}}


def test_ticks_gone_from_history_are_a_reset_of_the_same_epoch() -> None:
    state = followed("AAPL")
    [event] = state.receive(snapshot("AAPL", "e1", range(900, 905), reset=True))
    assert isinstance(event, Reset) and event.reason == "lost"


def test_an_empty_reset_snapshot_still_says_where_the_stream_goes_on() -> None:
    state = followed("AAPL")
    state.receive({"type": "snapshot", "symbol": "AAPL", "epoch": "e1", "reset": True,
                   "seq": 59, "ticks": []})
    [event] = state.receive({"type": "ticks", "ticks": [tick("AAPL", 60)]})
    assert isinstance(event, Tick) and event.seq == 60


def test_snapshots_are_events_only_when_asked_for() -> None:
    quiet, loud = StreamState(), StreamState(snapshots=True)
    for state in (quiet, loud):
        state.want(["AAPL"])
    assert quiet.receive(snapshot("AAPL", "e1", range(1, 3))) == []
    [event] = loud.receive(snapshot("AAPL", "e1", range(1, 3)))
    assert isinstance(event, Snapshot) and [t.seq for t in event.ticks] == [1, 2]


def test_ticks_of_a_symbol_given_up_are_not_passed_on() -> None:
    state = followed("AAPL", "MSFT")
    state.drop(["aapl"])
    events = state.receive({"type": "ticks", "ticks": [tick("AAPL", 4), tick("MSFT", 4)]})
    assert [e.symbol for e in events if isinstance(e, Tick)] == ["MSFT"]
    assert state.last_event_id(["MSFT"]) == "e1/4"


def test_an_error_reply_is_raised_with_its_code() -> None:
    with pytest.raises(ServerError, match="unknown_symbol: unknown symbol"):
        StreamState().receive({"type": "error", "code": "unknown_symbol",
                               "message": "unknown symbol(s): NOPE"})


def test_an_empty_place_in_an_event_id_means_a_plain_snapshot() -> None:
    resume = parse_event_id("e1/12..40", ["AAPL", "NEW", "MSFT"])
    assert resume is not None and resume.seqs == {"AAPL": 12, "MSFT": 40}
    assert parse_event_id("e1/..", ["A", "B", "C"]) is None
    assert parse_event_id("e1/1.x", ["A", "B"]) is None


@pytest.mark.parametrize(("url", "ws", "sse"), [
    ("ws://127.0.0.1:8000/ws", "ws://127.0.0.1:8000/ws", "http://127.0.0.1:8000/sse"),
    ("http://h:1", "ws://h:1/ws", "http://h:1/sse"),
    ("wss://example.com/edge/ws", "wss://example.com/edge/ws", "https://example.com/edge/sse"),
])
def test_one_url_gives_both_endpoints(url: str, ws: str, sse: str) -> None:
    assert endpoints(url) == (ws, sse)


def test_an_url_that_is_not_a_server_is_refused() -> None:
    with pytest.raises(ValueError, match="ws://HOST:PORT/ws"):
        endpoints("ftp://x")


def test_backoff_doubles_to_its_cap_with_jitter_and_starts_over_after_a_reset() -> None:
    backoff = Backoff(0.5, 4.0, uniform=lambda low, high: high)  # the top of each range
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5
    spread = Backoff(0.5, 4.0)
    assert all(0.05 <= spread.next_delay() <= 4.0 for _ in range(100))
