"""The sans-I/O pieces of hardening: rate limit, tick guard, token extraction, log redaction,
readiness and the two ranges of close codes."""

from __future__ import annotations

import logging
import math

import orjson
import pytest

from ticker.auth import TokenPolicy, token_from
from ticker.guard import TickGuard
from ticker.health import NodeState, readiness
from ticker.logs import JsonFormatter, RedactTokens, redact
from ticker.model import Tick
from ticker.protocol import CLOSE_CODES, is_terminal_close
from ticker.ratelimit import OpRateLimiter, Verdict
from ticker.stats import Stats


def test_the_rate_limit_allows_a_burst_then_the_rate() -> None:
    limiter = OpRateLimiter(rate=20.0, burst=50, strikes=5, now=0.0)
    assert [limiter.check(0.0) for _ in range(50)] == [Verdict.ALLOW] * 50
    assert limiter.check(0.0) is Verdict.REFUSE
    assert limiter.retry_after() == pytest.approx(0.05)
    assert limiter.check(0.05) is Verdict.ALLOW  # one token back after 1/20 s
    # Steady at the rate: never refused.
    assert all(limiter.check(0.05 + i / 20) is Verdict.ALLOW for i in range(1, 200))


def test_a_client_that_keeps_going_over_the_limit_is_told_to_go() -> None:
    limiter = OpRateLimiter(rate=1.0, burst=1, strikes=3, now=0.0)
    assert limiter.check(0.0) is Verdict.ALLOW
    assert limiter.check(0.0) is Verdict.REFUSE
    assert limiter.check(0.0) is Verdict.REFUSE
    assert limiter.check(0.0) is Verdict.DISCONNECT


def test_an_allowed_op_forgives_earlier_strikes() -> None:
    limiter = OpRateLimiter(rate=1.0, burst=1, strikes=3, now=0.0)
    limiter.check(0.0)
    assert limiter.check(0.0) is Verdict.REFUSE
    assert limiter.check(0.0) is Verdict.REFUSE
    assert limiter.check(1.0) is Verdict.ALLOW
    assert limiter.check(1.0) is Verdict.REFUSE  # counting starts over


def _tick(symbol: str, seq: int, price: float = 10.0, size: int = 100,
          bid: float = 9.99, ask: float = 10.01) -> Tick:
    return Tick(symbol, seq, 1000.0 + seq, price, size, bid, ask)


@pytest.mark.parametrize("bad", [
    {"price": math.nan}, {"price": math.inf}, {"price": 0.0}, {"price": -1.0},
    {"size": -100}, {"bid": math.nan}, {"ask": -math.inf}, {"bid": 0.0},
])
def test_impossible_ticks_are_dropped_and_later_seqs_stay_contiguous(bad: dict[str, float]
                                                                      ) -> None:
    stats = Stats()
    guard = TickGuard(stats)
    first = guard.check([_tick("A", 1), _tick("B", 1), _tick("A", 2, **bad)])  # type: ignore[arg-type]
    second = guard.check([_tick("A", 3), _tick("B", 2), _tick("A", 4)])
    assert [(t.symbol, t.seq) for t in [*first, *second]] == [
        ("A", 1), ("B", 1), ("A", 2), ("B", 2), ("A", 3)]
    assert second[0].price == 10.0 and second[0].ts == 1003.0  # the tick itself is unchanged
    assert guard.rejected == 1 and stats.rejected_ticks == 1


def test_sane_batches_pass_through_untouched() -> None:
    batch = [_tick("A", 1), _tick("A", 2, size=0)]
    assert TickGuard().check(batch) is batch


def test_tokens_come_from_the_header_or_the_query() -> None:
    bearer = {"headers": [(b"authorization", b"Bearer s3cret-token-0123456789")],
              "query_string": b""}
    query = {"headers": [], "query_string": b"symbols=AAPL&token=s3cret-token-0123456789"}
    assert token_from(bearer) == token_from(query) == "s3cret-token-0123456789"
    assert token_from({"headers": [(b"authorization", b"Basic eDp5")], "query_string": b""}) \
        is None


def test_the_token_policy_protects_streams_and_the_api_only() -> None:
    policy = TokenPolicy(("s3cret-token-0123456789",))
    assert policy.required
    for path in ("/ws", "/sse", "/poll", "/ws/replay", "/api/symbols"):
        assert policy.protects(path)
    for path in ("/", "/index.html", "/vendor/plotly.min.js", "/livez", "/readyz", "/metrics"):
        assert not policy.protects(path)
    assert policy.allows("s3cret-token-0123456789")
    assert not policy.allows("s3cret-token-012345678")
    assert not policy.allows(None)
    assert TokenPolicy(()).admits({"type": "http", "path": "/ws", "headers": []})


def test_log_lines_never_show_a_token() -> None:
    assert redact('GET /sse?symbols=AAPL&token=abc123def456 HTTP/1.1') == \
        "GET /sse?symbols=AAPL&token=[redacted] HTTP/1.1"
    assert redact("Authorization: Bearer abc.def-ghi") == "Authorization: Bearer [redacted]"
    # uvicorn's access lines keep the path in the arguments, which stay arguments.
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s"',
                               ("127.0.0.1:5", "GET", "/ws?token=abcdefabcdef"), None)
    assert RedactTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "GET /ws?token=[redacted]"'


def test_json_log_lines_are_one_object_each() -> None:
    record = logging.LogRecord("ticker.app", logging.WARNING, "", 0, "feed %s started",
                               ("simulated",), None)
    line = orjson.loads(JsonFormatter().format(record))
    assert line["level"] == "warning" and line["logger"] == "ticker.app"
    assert line["message"] == "feed simulated started"
    assert line["time"].endswith("+00:00")


def _state(**changes: object) -> NodeState:
    fields: dict[str, object] = {
        "broker_connected": True, "feed_started": True, "feed_running": True,
        "seconds_since_tick": 0.1, "recorder_failure": None, "epoch": "e", "feed": "simulated",
        "connections": 3, "upstream_problem": None, "live": False}
    return NodeState(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(("changes", "reason"), [
    ({}, None),
    ({"broker_connected": False}, "broker unreachable"),
    ({"feed_started": False}, "no feed yet"),
    ({"seconds_since_tick": 45.0}, "feed stalled: no tick for 45 s"),
    ({"seconds_since_tick": 45.0, "feed_running": False}, None),  # a replay that ended
    ({"recorder_failure": "No space left on device"},
     "recording failed: No space left on device"),
    # A live feed answers for itself: a quiet market is no stall, a lost upstream is a reason.
    ({"live": True, "seconds_since_tick": 4000.0}, None),
    ({"live": True, "upstream_problem": "Coinbase (wss://x): ConnectionRefusedError: no"},
     "upstream away: Coinbase (wss://x): ConnectionRefusedError: no"),
    ({"live": True, "feed_started": False, "upstream_problem": "Coinbase: not connected yet"},
     "no feed yet; upstream away: Coinbase: not connected yet"),
])
def test_readiness_names_the_reason(changes: dict[str, object], reason: str | None) -> None:
    ok, body = readiness(_state(**changes), stall_timeout=30.0)
    assert ok is (reason is None)
    assert body.get("reason") == reason
    assert body["status"] == ("ready" if ok else "not ready")


def test_close_codes_fall_in_two_ranges() -> None:
    reconnect = {"going_away", "internal_error", "try_again_later", "idle", "slow_consumer"}
    for name, code in CLOSE_CODES.items():
        assert is_terminal_close(code) is (name not in reconnect), name
    assert is_terminal_close(4999) and not is_terminal_close(4499)
    assert not is_terminal_close(1006)  # an abnormal drop: reconnect


def test_the_no_feed_close_says_why_and_fits_a_close_frame() -> None:
    from ticker.transport.ws import MAX_CLOSE_REASON, not_ready_close_reason

    assert not_ready_close_reason(None) == "no feed yet: retry shortly"
    assert not_ready_close_reason("Coinbase: refused") == \
        "no feed yet: retry shortly (Coinbase: refused)"
    long = not_ready_close_reason("é" * 200)  # two bytes each: cut on a character, not a byte
    assert len(long.encode()) <= MAX_CLOSE_REASON and long.endswith("...")
    assert long.startswith("no feed yet: retry shortly (é")
