"""The messages of Coinbase Exchange's market-data feed, parsed without I/O: each known type
into a small typed value, anything unusable into :class:`BadMessage` (its text says why)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from feeds.live.times import rfc3339_ms

_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # Coinbase sends prices and sizes as such text


class BadMessage(ValueError):
    """A message that cannot be used; the text says why."""


@dataclass(frozen=True, slots=True)
class Match:
    """A trade; ``last``: a "last_match", the product's latest trade, sent on subscribing."""

    product: str
    trade_id: int
    ts: float
    price: float
    size: float
    last: bool = False


@dataclass(frozen=True, slots=True)
class Ticker:
    product: str
    bid: float
    ask: float
    open: float  # open_24h


@dataclass(frozen=True, slots=True)
class Heartbeat:
    product: str
    last_trade_id: int  # 0 now and then on the real feed: it means nothing


@dataclass(frozen=True, slots=True)
class Subscriptions:
    channels: Mapping[str, frozenset[str]]  # channel -> the products it covers


@dataclass(frozen=True, slots=True)
class Status:
    names: Mapping[str, str]  # product -> "Bitcoin / United States Dollar"


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    text: str


Message = Match | Ticker | Heartbeat | Subscriptions | Status | ErrorMessage


def parse_message(raw: str | bytes) -> Message | None:
    """One message of the feed; None for a type we do not use (Coinbase adds types now and
    then). Raises :class:`BadMessage` for anything unusable."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise BadMessage(f"not JSON ({error})") from None
    if not isinstance(data, dict):
        raise BadMessage("not a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise BadMessage('no "type"')
    decode = _DECODERS.get(kind)
    return None if decode is None else decode(data)


def _match(data: dict[str, Any]) -> Match:
    trade_id = _count(data, "trade_id")
    if trade_id < 1:
        raise BadMessage(f'"trade_id" must be >= 1, got {trade_id}')
    try:
        ts = rfc3339_ms(data.get("time"))
    except ValueError as error:
        raise BadMessage(f'"time": {error}') from None
    return Match(_text(data, "product_id"), trade_id, ts, _decimal(data, "price"),
                 _decimal(data, "size"), data["type"] == "last_match")


def _ticker(data: dict[str, Any]) -> Ticker:
    return Ticker(_text(data, "product_id"), _decimal(data, "best_bid"),
                  _decimal(data, "best_ask"), _decimal(data, "open_24h"))


def _heartbeat(data: dict[str, Any]) -> Heartbeat:
    return Heartbeat(_text(data, "product_id"), _count(data, "last_trade_id"))


def _subscriptions(data: dict[str, Any]) -> Subscriptions:
    channels = data.get("channels")
    if not isinstance(channels, list):
        raise BadMessage('"channels" must be a list')
    covered: dict[str, frozenset[str]] = {}
    for channel in channels:
        if isinstance(channel, str):  # the old form: a bare name, for no product in particular
            covered[channel] = frozenset()
            continue
        if not isinstance(channel, dict) or not isinstance(channel.get("name"), str):
            raise BadMessage('a channel must be a name or {"name": ..., "product_ids": [...]}')
        products = channel.get("product_ids", [])
        if not isinstance(products, list) or not all(isinstance(p, str) for p in products):
            raise BadMessage('a channel\'s "product_ids" must be a list of names')
        covered[channel["name"]] = frozenset(products)
    return Subscriptions(covered)


def _status(data: dict[str, Any]) -> Status:
    """Names for every product listed; entries that lack what a name needs are passed over
    (the message lists hundreds of products, and an odd one we do not use is no reason to
    drop the rest)."""
    products, currencies = data.get("products"), data.get("currencies", [])
    if not isinstance(products, list) or not isinstance(currencies, list):
        raise BadMessage('"products" and "currencies" must be lists')
    currency_names = {entry["id"]: entry["name"] for entry in currencies
                      if isinstance(entry, dict) and isinstance(entry.get("id"), str)
                      and isinstance(entry.get("name"), str)}
    names: dict[str, str] = {}
    for entry in products:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        base, quote = entry.get("base_currency"), entry.get("quote_currency")
        if isinstance(base, str) and isinstance(quote, str):
            names[entry["id"]] = (f"{currency_names.get(base, base)} / "
                                  f"{currency_names.get(quote, quote)}")
        elif isinstance(entry.get("display_name"), str):
            names[entry["id"]] = entry["display_name"]
    return Status(names)


def _error(data: dict[str, Any]) -> ErrorMessage:
    reason, message = data.get("reason"), data.get("message")
    text = (reason if isinstance(reason, str) and reason
            else message if isinstance(message, str) and message else "an error without a reason")
    return ErrorMessage(text)


_DECODERS: dict[str, Callable[[dict[str, Any]], Message]] = {
    "match": _match, "last_match": _match, "ticker": _ticker, "heartbeat": _heartbeat,
    "subscriptions": _subscriptions, "status": _status, "error": _error,
}


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise BadMessage(f"{key!r} must be text, got {value!r}"[:120])
    return value


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadMessage(f"{key!r} must be an integer >= 0, got {value!r}"[:120])
    return value


def _decimal(data: dict[str, Any], key: str) -> float:
    value = data.get(key)
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise BadMessage(f"{key!r} must be a decimal in a string, got {value!r}"[:120])
    number = float(value)
    if not 0.0 < number < math.inf:
        raise BadMessage(f"{key!r} must be > 0, got {value!r}"[:120])
    return number
