"""What one Alpaca-protocol connection is owed, as frames: trades, quotes and bars from the hub.

A thin layer over the same hub subscription as protocol v1 (feed -> hub -> this -> socket): the
connection follows the symbols its trades and quotes cover, and each drain decodes the shared
protocol v1 tick bytes (one orjson call per run of ticks) and re-encodes them the Alpaca way.
Minute bars come from the hub's own 1-minute bars, each sent once when the market clock (the
feed's time) closes it; the daily bar is the day so far, sent after each minute it grew in.
No I/O here: the endpoint sends what :meth:`AlpacaStream.take` returns.
"""

from __future__ import annotations

from typing import Any

import orjson

from ticker.alpaca import protocol
from ticker.alpaca.protocol import Codec, Message
from ticker.alpaca.session import Session
from ticker.feed_order import in_feed_order
from ticker.hub import Hub
from ticker.subscriber import Subscriber


class AlpacaStream:
    def __init__(self, hub: Hub, subscriber: Subscriber, session: Session, codec: Codec,
                 max_frame_items: int) -> None:
        self._hub = hub
        self._subscriber = subscriber
        self._session = session
        self._codec = codec
        self._time = protocol.time_encoder(codec)
        self._max_items = max_frame_items
        self._epoch = hub.epoch
        self._minute = hub.market_minute  # minutes before this one are already dealt with
        self._watching_minutes = False
        self._last_quote: dict[str, tuple[float, float]] = {}

    def sync(self) -> None:
        """Make the hub deliver what the session's subscriptions now cover."""
        hub, subscriber = self._hub, self._subscriber
        wanted = {symbol for symbol in self._session.followed() if hub.has_symbol(symbol)}
        current = subscriber.symbols
        dropped = tuple(current - wanted)
        hub.unsubscribe(subscriber, dropped)
        for symbol in dropped:
            self._last_quote.pop(symbol, None)
        hub.follow_live(subscriber, tuple(wanted - current))
        watching = bool(self._session.bar_symbols())
        if watching and not self._watching_minutes:
            self._minute = hub.market_minute  # bars closed before the subscription are not owed
        self._watching_minutes = watching
        hub.watch_minutes(subscriber, watching)

    def take(self) -> list[bytes]:
        """Everything due since the last call, as encoded frames of at most
        ``max_frame_items`` data points each."""
        # The hub's own messages are protocol v1 (hello, reset snapshots): not for this client.
        self._subscriber.take_messages()
        if self._hub.epoch != self._epoch:
            self._new_epoch()
        items = self._ticks()
        if self._hub.market_minute > self._minute:
            if self._watching_minutes:
                items += self._bars()
            self._minute = self._hub.market_minute
        step = self._max_items
        return [protocol.encode(items[start:start + step], self._codec)
                for start in range(0, len(items), step)]

    def _new_epoch(self) -> None:
        """The feed restarted (a replay looped or seeked): new seqs, maybe new symbols for "*",
        and a market clock that starts over."""
        self._epoch = self._hub.epoch
        self._minute = self._hub.market_minute
        self._last_quote.clear()
        self.sync()

    def _ticks(self) -> list[Message]:
        """Trades and quotes of the ticks due, in the order the feed published them."""
        session, to_time, last_quote = self._session, self._time, self._last_quote
        messages: list[Message] = []
        runs = self._subscriber.take_ticks()
        if not runs:
            return messages
        ticks: list[dict[str, Any]] = orjson.loads(b"[" + b",".join(in_feed_order(runs)) + b"]")
        wanted = {symbol: (session.wants("trades", symbol), session.wants("quotes", symbol))
                  for symbol, *_ in runs}
        for tick in ticks:
            symbol = tick["symbol"]
            trades, quotes = wanted[symbol]
            t = to_time(tick["ts"])
            if quotes:
                # A quote when the bid or ask moved (a trade alone is not a new quote).
                book = (tick["bid"], tick["ask"])
                if last_quote.get(symbol) != book:
                    last_quote[symbol] = book
                    messages.append(protocol.quote(tick, t))
            if trades:
                messages.append(protocol.trade(tick, t))
        return messages

    def _bars(self) -> list[Message]:
        """The minute bars closed since the last look, oldest minute first, then each symbol's
        day so far."""
        hub, session, to_time = self._hub, self._session, self._time
        minutes: list[tuple[int, str, Message]] = []
        days: list[Message] = []
        for symbol in sorted(session.bar_symbols()):
            closed = hub.closed_minute_bars(symbol, self._minute - 1)
            if not closed:
                continue  # no trade in those minutes: Alpaca sends no bar either
            if session.wants("bars", symbol):
                minutes += [(bar.start, symbol, protocol.bar(protocol.MINUTE_BAR, symbol, bar,
                                                             to_time(bar.start)))
                            for bar in closed]
            daily = hub.daily_bar(symbol) if session.wants("dailyBars", symbol) else None
            if daily is not None:
                days.append(protocol.bar(protocol.DAILY_BAR, symbol, daily, to_time(daily.start)))
        # updatedBars: a trade that arrives after its minute closed would update the bar; the
        # hub's feeds are in time order, so that never happens here and none are sent.
        minutes.sort(key=_start_and_symbol)
        return [message for _, _, message in minutes] + days


def _start_and_symbol(item: tuple[int, str, Message]) -> tuple[int, str]:
    return item[0], item[1]
