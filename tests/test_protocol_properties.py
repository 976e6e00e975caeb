"""Property-based tests of the protocol v1 parser: whatever arrives, bytes or any JSON value,
parse_command returns a command or raises ProtocolError with a documented code, never anything
else; and whatever it accepts is within the protocol's limits."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from ticker import protocol
from ticker.errors import ProtocolError
from ticker.protocol import Ping, Subscribe, Unsubscribe, is_symbol, parse_command, quote

# JSON text carries no integer beyond 64 bits that orjson would decode as one.
INTEGERS = st.integers(min_value=-(2**63), max_value=2**64 - 1)
JSON = st.recursive(
    st.none() | st.booleans() | INTEGERS | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20)

SYMBOLISH = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz0123456789.-<>&\"' ß", max_size=14)

MESSAGES = st.fixed_dictionaries(
    {"op": st.sampled_from(["subscribe", "unsubscribe", "ping", "sell"]) | JSON},
    optional={"symbols": st.lists(SYMBOLISH | JSON, max_size=5) | JSON,
              "id": INTEGERS | st.text(max_size=70) | JSON,
              "max_rate": st.floats(allow_nan=False) | INTEGERS | JSON,
              "resume": st.fixed_dictionaries({"epoch": st.text(max_size=5) | JSON,
                                               "seqs": st.dictionaries(SYMBOLISH, INTEGERS)
                                               | JSON}) | JSON})


def _check(raw: str | bytes) -> None:
    try:
        command = parse_command(raw)
    except ProtocolError as error:
        refused = error
    else:
        refused = None
    if refused is not None:
        assert refused.code in protocol.ERROR_CODES
        assert refused.message
        assert "<" not in refused.message and ">" not in refused.message
        return
    assert isinstance(command, Subscribe | Unsubscribe | Ping)
    if isinstance(command, Subscribe | Unsubscribe):
        assert command.symbols and all(is_symbol(symbol) for symbol in command.symbols)
    if isinstance(command, Subscribe):
        assert 0 <= command.max_rate <= protocol.MAX_RATE_LIMIT


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_fail_with_a_documented_code(raw: bytes) -> None:
    _check(raw)


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_any_json_value_parses_or_fails_with_a_documented_code(value: Any) -> None:
    _check(orjson.dumps(value))


@settings(max_examples=600, deadline=None)
@given(MESSAGES)
def test_message_shaped_json_parses_or_fails_with_a_documented_code(
        message: dict[str, Any]) -> None:
    _check(orjson.dumps(message))


@settings(max_examples=300, deadline=None)
@given(MESSAGES, st.dictionaries(st.text(max_size=8), JSON, max_size=3))
def test_messages_with_unknown_fields_parse_or_fail_with_a_documented_code(
        message: dict[str, Any], extra: dict[str, Any]) -> None:
    _check(orjson.dumps({**extra, **message}))


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_quoted_client_values_carry_no_markup(value: Any) -> None:
    quoted = quote(value)
    assert not set(quoted) & set("<>&'")
    assert len(quoted) <= 40 + 5 * 5  # each escaped character grows by five
