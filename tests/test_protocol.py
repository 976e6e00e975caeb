"""The wire format without sockets: parsing client commands, encoding server messages."""

from __future__ import annotations

import orjson
import pytest

from ticker import protocol
from ticker.errors import ProtocolError
from ticker.model import SymbolInfo, Tick
from ticker.protocol import Frames, Ping, Resume, Subscribe, Unsubscribe, parse_command

TICK = Tick("AAPL", 1042, 1763880000123.456, 189.23, 100, 189.22, 189.24)


def test_tick_encodes_to_the_documented_shape_in_order() -> None:
    assert protocol.encode_tick(TICK) == (
        b'{"symbol":"AAPL","seq":1042,"ts":1763880000123.456,"price":189.23,"size":100,'
        b'"bid":189.22,"ask":189.24}')


def test_subscribe_upper_cases_and_deduplicates_symbols() -> None:
    command = parse_command('{"op":"subscribe","symbols":["AAPL","msft","aapl"],"id":1}')
    assert command == Subscribe(("AAPL", "MSFT"), 1, None)


def test_subscribe_with_resume() -> None:
    command = parse_command(b'{"op":"subscribe","symbols":["AAPL"],'
                            b'"resume":{"epoch":"e1","seqs":{"aapl":1042}}}')
    assert command == Subscribe(("AAPL",), None, Resume("e1", {"AAPL": 1042}))


def test_unsubscribe_and_ping() -> None:
    assert parse_command('{"op":"unsubscribe","symbols":["MSFT"]}') == Unsubscribe(("MSFT",))
    assert parse_command('{"op":"ping","id":"x"}') == Ping("x")
    assert parse_command('{"op":"ping"}') == Ping(None)


@pytest.mark.parametrize(("raw", "code", "request_id"), [
    ("", "bad_json", None),
    ("{", "bad_json", None),
    (b"\xff", "bad_json", None),
    ("null", "bad_request", None),
    ('"subscribe"', "bad_request", None),
    ("{}", "bad_request", None),
    ('{"op":"subscribe","id":2}', "bad_request", 2),
    ('{"op":"subscribe","symbols":[],"id":2}', "bad_request", 2),
    ('{"op":"subscribe","symbols":"AAPL","id":2}', "bad_request", 2),
    ('{"op":"subscribe","symbols":[null],"id":2}', "bad_request", 2),
    ('{"op":"subscribe","symbols":["A A"],"id":2}', "bad_request", 2),
    ('{"op":"subscribe","symbols":["ABCDEFGHIJKLM"],"id":2}', "bad_request", 2),
    ('{"op":"subscribe","symbols":["<script>"],"id":2}', "bad_request", 2),
    ('{"op":"subscribe","symbols":["\u00df"],"id":2}', "bad_request", 2),
    ('{"op":"subscribe","symbols":[""],"id":2}', "bad_request", 2),
    ('{"op":"subscribe","symbols":["AAPL"],"resume":[],"id":2}', "bad_request", 2),
    ('{"op":"subscribe","symbols":["AAPL"],"resume":{"epoch":"e","seqs":{"AAPL":-1}},"id":2}',
     "bad_request", 2),
    ('{"op":"subscribe","symbols":["AAPL"],"resume":{"epoch":"e","seqs":{"AAPL":true}},"id":2}',
     "bad_request", 2),
    ('{"op":"subscribe","symbols":["AAPL"],"resume":{"epoch":"e","seqs":{},"x":1},"id":2}',
     "bad_request", 2),
    ('{"op":"ping","id":true}', "bad_request", None),
    ('{"op":"ping","id":1.5}', "bad_request", None),
    ('{"op":"ping","id":"' + "x" * 65 + '"}', "bad_request", None),
    ('{"op":"ping","id":3,"extra":0}', "bad_request", 3),
    ('{"op":"sell","id":4}', "unknown_op", 4),
    ('{"op":7}', "unknown_op", None),
])
def test_bad_messages_raise_the_documented_code(raw: str | bytes, code: str,
                                                request_id: int | None) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_command(raw)
    assert caught.value.code == code
    assert caught.value.request_id == request_id
    assert caught.value.message


def test_error_codes_are_the_documented_ones() -> None:
    assert set(protocol.ERROR_CODES) == {"bad_json", "bad_request", "unknown_op",
                                         "unknown_symbol", "too_many_symbols", "rate_limited"}


def test_server_messages_are_valid_json_with_the_contract_fields() -> None:
    tick = protocol.encode_tick(TICK)
    hello = orjson.loads(protocol.encode_hello("e1", "simulated", [SymbolInfo("AAPL")]))
    assert hello == {"type": "hello", "version": 1, "epoch": "e1", "feed": "simulated",
                     "symbols": ["AAPL"]}
    snapshot = orjson.loads(protocol.encode_snapshot("AAPL", "e1", [tick, tick], True, 1042))
    assert snapshot["type"] == "snapshot" and snapshot["symbol"] == "AAPL"
    assert snapshot["reset"] is True and snapshot["ticks"] == [orjson.loads(tick)] * 2
    assert orjson.loads(protocol.encode_snapshot("AAPL", "e1", [], False, 0))["ticks"] == []
    assert orjson.loads(protocol.encode_ticks([tick])) == {"type": "ticks",
                                                           "ticks": [orjson.loads(tick)]}
    assert orjson.loads(protocol.encode_subscribed(["AAPL"], 1)) == {
        "type": "subscribed", "symbols": ["AAPL"], "resumed": [], "id": 1}
    assert orjson.loads(protocol.encode_unsubscribed(["MSFT"], None)) == {
        "type": "unsubscribed", "symbols": ["MSFT"]}
    assert orjson.loads(protocol.encode_pong(7, 12.3456)) == {"type": "pong", "ts": 12.346,
                                                             "id": 7}
    assert orjson.loads(protocol.encode_error("bad_json", "oops", "r")) == {
        "type": "error", "code": "bad_json", "message": "oops", "id": "r"}


def test_frames_split_long_runs_below_the_byte_limit() -> None:
    ticks = [protocol.encode_tick(Tick("AAPL", seq, 1.0, 1.0, 100, 1.0, 1.0))
             for seq in range(1, 1001)]
    frames = Frames(4096)
    frames.add_ticks(ticks)
    assert len(frames.out) > 10
    assert all(len(frame) <= 4096 for frame in frames.out)
    decoded = [t["seq"] for frame in frames.out for t in orjson.loads(frame)["ticks"]]
    assert decoded == list(range(1, 1001))


def test_a_single_tick_larger_than_the_limit_still_gets_its_own_frame() -> None:
    frames = Frames(10)
    frames.add_ticks([b'{"x":1}', b'{"y":2}'])
    assert [orjson.loads(f)["ticks"] for f in frames.out] == [[{"x": 1}], [{"y": 2}]]


def test_an_encoded_tick_holds_no_more_memory_than_its_bytes() -> None:
    # History keeps a million encoded ticks at the defaults; orjson's output object holds its
    # 4 KB working buffer unless copied, which made the server grow by 4 KB per tick.
    import tracemalloc

    ticks = [Tick("AAPL", seq, 1763880000123.456, 189.23, 100, 189.22, 189.24)
             for seq in range(1, 1001)]
    tracemalloc.start()
    try:
        kept = [protocol.encode_tick(tick) for tick in ticks]
        per_tick = tracemalloc.get_traced_memory()[0] / len(kept)
    finally:
        tracemalloc.stop()
    assert per_tick < 2 * (len(kept[0]) + 40), f"{per_tick:.0f} bytes held per encoded tick"
