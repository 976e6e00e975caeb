"""One Alpaca connection's state machine, without a socket: auth, subscriptions, limits."""

from __future__ import annotations

import pytest

from ticker.alpaca.protocol import Auth, Subscribe, Unsubscribe
from ticker.alpaca.session import ConnectionLedger, Credentials, Session, State
from ticker.errors import AlpacaError

UNIVERSE = ("AAPL", "MSFT", "JPM", "KO")


def session(keys: tuple[str, ...] = (), ledger: ConnectionLedger | None = None,
            max_symbols: int = 10) -> Session:
    return Session(Credentials(keys), ledger or ConnectionLedger(1), max_symbols,
                   lambda: UNIVERSE)


def refused(current: Session, command: Auth | Subscribe | Unsubscribe) -> int:
    with pytest.raises(AlpacaError) as error:
        current.handle(command)
    return error.value.code


def authenticated(max_symbols: int = 10) -> Session:
    current = session(max_symbols=max_symbols)
    current.handle(Auth("PK", "secret"))
    return current


def test_any_key_passes_when_none_are_configured() -> None:
    current = session()
    assert current.handle(Auth("anything", "at all")) == {"T": "success",
                                                          "msg": "authenticated"}
    assert current.state is State.AUTHENTICATED


def test_configured_keys_must_match_key_and_secret() -> None:
    current = session(keys=("PK1:s3cret", "PK2:with:colon"))
    assert refused(current, Auth("PK1", "wrong")) == 402
    assert refused(current, Auth("PK9", "s3cret")) == 402
    assert current.state is State.CONNECTED  # still open: the client may try again
    current.handle(Auth("PK2", "with:colon"))
    assert current.state is State.AUTHENTICATED


def test_a_second_auth_is_error_403_and_changes_nothing() -> None:
    current = authenticated()
    assert refused(current, Auth("PK", "secret")) == 403
    assert current.state is State.AUTHENTICATED


def test_subscribing_before_auth_is_error_401() -> None:
    current = session()
    assert refused(current, Subscribe({"trades": ("AAPL",)})) == 401
    assert refused(current, Unsubscribe({"trades": ("AAPL",)})) == 401
    assert current.followed() == set()


def test_subscriptions_add_up_and_repeat_harmlessly_and_the_reply_is_the_full_set() -> None:
    current = authenticated()
    current.handle(Subscribe({"trades": ("AAPL",), "quotes": ("MSFT",)}))
    reply = current.handle(Subscribe({"trades": ("AAPL", "KO"), "bars": ("*",)}))
    assert reply["trades"] == ["AAPL", "KO"]
    assert reply["quotes"] == ["MSFT"]
    assert reply["bars"] == ["*"]
    assert reply["corrections"] == reply["cancelErrors"] == ["AAPL", "KO"]
    assert current.followed() == {"AAPL", "KO", "MSFT"}
    assert current.bar_symbols() == set(UNIVERSE)
    assert current.wants("trades", "KO") and not current.wants("trades", "MSFT")
    assert current.wants("bars", "JPM")

    reply = current.handle(Unsubscribe({"trades": ("KO", "NOPE"), "bars": ("*",)}))
    assert (reply["trades"], reply["quotes"], reply["bars"]) == (["AAPL"], ["MSFT"], [])
    assert current.followed() == {"AAPL", "MSFT"}


def test_a_subscription_past_the_symbol_limit_is_error_405_and_keeps_the_old_one() -> None:
    current = authenticated(max_symbols=3)
    current.handle(Subscribe({"trades": ("AAPL", "MSFT"), "quotes": ("AAPL",)}))
    assert refused(current, Subscribe({"quotes": ("JPM", "KO")})) == 405
    assert refused(current, Subscribe({"trades": ("*",)})) == 405  # "*" is all four
    assert current.followed() == {"AAPL", "MSFT"}
    assert current.handle(Subscribe({"bars": ("*",), "quotes": ("JPM",)}))["bars"] == ["*"]


def test_the_connection_limit_counts_authenticated_connections_per_key() -> None:
    ledger = ConnectionLedger(1)
    first, second, other_key = session(ledger=ledger), session(ledger=ledger), \
        session(ledger=ledger)
    first.handle(Auth("PK", "s"))
    assert refused(second, Auth("PK", "s")) == 406
    assert second.state is State.CONNECTED
    other_key.handle(Auth("PK2", "s"))
    first.close()
    second.handle(Auth("PK", "s"))  # the slot is free again
    assert ledger.count("PK") == 1
    second.close()
    other_key.close()
    assert ledger.count("PK") == ledger.count("PK2") == 0


def test_no_connection_limit_when_it_is_zero() -> None:
    ledger = ConnectionLedger(0)
    sessions = [session(ledger=ledger) for _ in range(5)]
    for current in sessions:
        current.handle(Auth("PK", "s"))
    assert ledger.count("PK") == 5


def test_the_auth_timeout_ends_only_an_unauthenticated_session() -> None:
    late = session()
    assert late.time_out() == {"T": "error", "code": 404, "msg": "auth timeout"}
    assert late.state is State.CLOSED
    assert refused(late, Auth("PK", "s")) == 500
    assert authenticated().time_out() is None
