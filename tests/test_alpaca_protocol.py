"""Alpaca's stream protocol without a server: parsing actions, encoding messages and times."""

from __future__ import annotations

import datetime

import msgpack
import orjson
import pytest

from ticker.alpaca import protocol
from ticker.alpaca.protocol import Auth, Codec, Subscribe, Unsubscribe, parse_action
from ticker.bars import TradeBar
from ticker.errors import AlpacaError

TICK = {"symbol": "AAPL", "seq": 42, "ts": 1_763_880_000_014.163, "price": 190.01, "size": 900,
        "bid": 189.99, "ask": 190.02}


def json(message: object) -> str:
    return orjson.dumps(message).decode()


def test_the_codec_follows_the_upgrade_requests_content_type() -> None:
    assert Codec.for_content_type("application/msgpack") is Codec.MSGPACK
    assert Codec.for_content_type("Application/MsgPack; charset=binary") is Codec.MSGPACK
    assert Codec.for_content_type("application/json") is Codec.JSON
    assert Codec.for_content_type(None) is Codec.JSON


@pytest.mark.parametrize("codec", list(Codec))
def test_auth_subscribe_and_unsubscribe_parse_from_json_text(codec: Codec) -> None:
    assert parse_action(json({"action": "auth", "key": "K", "secret": "S"}), codec) == \
        Auth("K", "S")
    assert parse_action(json({"action": "subscribe", "trades": ["aapl", "AAPL"],
                              "bars": ["*"]}), codec) == \
        Subscribe({"trades": ("AAPL",), "bars": ("*",)})
    assert parse_action(json({"action": "unsubscribe", "quotes": ["BRK.B"]}), codec) == \
        Unsubscribe({"quotes": ("BRK.B",)})


def test_a_binary_frame_is_msgpack_on_a_msgpack_connection_and_json_otherwise() -> None:
    packed = msgpack.packb({"action": "subscribe", "trades": ["AAPL"]})
    assert parse_action(packed, Codec.MSGPACK) == Subscribe({"trades": ("AAPL",)})
    assert parse_action(json({"action": "auth", "key": "K", "secret": "S"}).encode(),
                        Codec.JSON) == Auth("K", "S")
    with pytest.raises(AlpacaError) as refused:
        parse_action(packed, Codec.JSON)
    assert refused.value.code == protocol.INVALID_SYNTAX


def test_the_go_sdks_subscribe_with_null_channels_and_other_streams_channels_parses() -> None:
    # What alpaca-trade-api-go sends to every stream: every channel, nil slices as null.
    message = {"action": "subscribe", "trades": ["AAPL"], "quotes": None, "bars": None,
               "updatedBars": None, "dailyBars": None, "statuses": None, "lulds": None,
               "orderbooks": None, "news": None}
    assert parse_action(msgpack.packb(message), Codec.MSGPACK) == Subscribe(
        {"trades": ("AAPL",), "quotes": (), "bars": (), "updatedBars": (), "dailyBars": (),
         "statuses": (), "lulds": ()})


@pytest.mark.parametrize("message", [
    "not json",
    "[1, 2]",
    json({"action": "dance"}),
    json({"key": "K", "secret": "S"}),
    json({"action": "auth", "key": "K"}),
    json({"action": "auth", "key": 1, "secret": "S"}),
    json({"action": "subscribe"}),
    json({"action": "subscribe", "trades": "AAPL"}),
    json({"action": "subscribe", "trades": ["AAPL", 7]}),
    json({"action": "subscribe", "trades": ["AA PL"]}),
    json({"action": "subscribe", "trades": [""]}),
    json({"action": "subscribe", "candles": ["AAPL"]}),
], ids=lambda message: message[:40])
def test_bad_syntax_and_unknown_actions_are_error_400(message: str) -> None:
    with pytest.raises(AlpacaError) as refused:
        parse_action(message, Codec.JSON)
    assert (refused.value.code, refused.value.msg) == (400, "invalid syntax")
    assert refused.value.detail


def test_another_streams_channel_is_error_410() -> None:
    with pytest.raises(AlpacaError) as refused:
        parse_action(json({"action": "subscribe", "orderbooks": ["BTC/USD"]}), Codec.JSON)
    assert (refused.value.code, refused.value.msg) == \
        (410, "invalid subscribe action for this feed")


def test_control_messages_are_alpacas() -> None:
    assert protocol.encode([protocol.CONNECTED], Codec.JSON) == \
        b'[{"T":"success","msg":"connected"}]'
    assert orjson.loads(protocol.encode([protocol.error(402)], Codec.JSON)) == \
        [{"T": "error", "code": 402, "msg": "auth failed"}]
    assert msgpack.unpackb(protocol.encode([protocol.error(406)], Codec.MSGPACK)) == \
        [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]
    assert protocol.subscription({"trades": ["AAPL"], "bars": ["*"]}) == {
        "T": "subscription", "trades": ["AAPL"], "quotes": [], "bars": ["*"],
        "updatedBars": [], "dailyBars": [], "statuses": [], "lulds": [],
        "corrections": ["AAPL"], "cancelErrors": ["AAPL"]}


def test_rfc3339_keeps_nanoseconds_and_trims_zeros_as_go_does() -> None:
    assert protocol.rfc3339(1_613_998_304_208_000_000) == "2021-02-22T12:51:44.208Z"
    assert protocol.rfc3339(1_613_998_305_335_689_322) == "2021-02-22T12:51:45.335689322Z"
    assert protocol.rfc3339(1_613_998_260_000_000_000) == "2021-02-22T12:51:00Z"
    # Float milliseconds with microsecond digits convert exactly.
    assert protocol.nanoseconds(1_763_880_000_014.163) == 1_763_880_000_014_163_000


def test_a_trade_in_json_and_in_msgpack() -> None:
    as_text = protocol.trade(TICK, protocol.time_encoder(Codec.JSON)(TICK["ts"]))
    assert orjson.loads(protocol.encode([as_text], Codec.JSON)) == [
        {"T": "t", "S": "AAPL", "i": 42, "x": "V", "p": 190.01, "s": 900, "c": ["@"], "z": "C",
         "t": "2025-11-23T06:40:00.014163Z"}]
    packed = protocol.encode([protocol.trade(TICK, protocol.time_encoder(Codec.MSGPACK)(
        TICK["ts"]))], Codec.MSGPACK)
    [unpacked] = msgpack.unpackb(packed)
    assert isinstance(unpacked["t"], msgpack.Timestamp)
    assert unpacked["t"].to_unix_nano() == 1_763_880_000_014_163_000
    assert unpacked["t"].to_datetime() == datetime.datetime(2025, 11, 23, 6, 40, 0, 14163,
                                                            tzinfo=datetime.UTC)


def test_a_quote_comes_from_the_ticks_bid_and_ask() -> None:
    assert protocol.quote(TICK, "T") == {
        "T": "q", "S": "AAPL", "bx": "V", "bp": 189.99, "bs": 1, "ax": "V", "ap": 190.02,
        "as": 1, "c": ["R"], "z": "C", "t": "T"}


def test_a_bar_always_carries_trade_count_and_vwap() -> None:
    bar = TradeBar(start=60_000, open=10.0, high=12.0, low=9.0, close=11.0, volume=700,
                   trades=4, vwap=10.571428571)
    assert protocol.bar(protocol.MINUTE_BAR, "AAPL", bar, "T") == {
        "T": "b", "S": "AAPL", "o": 10.0, "h": 12.0, "l": 9.0, "c": 11.0, "v": 700, "n": 4,
        "vw": 10.571429, "t": "T"}
