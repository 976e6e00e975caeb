"""Where a client stands in the streams it follows, and what each server message means for it.

Plain code with no I/O (the transports feed it parsed messages): it keeps the epoch and last seq
of every symbol, writes the subscribe (with resume) a new connection must send, drops what it has
already delivered, and turns a snapshot that breaks continuity into an explicit :class:`Reset`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ticker.model import Tick

log = logging.getLogger("ticker.client")


@dataclass(frozen=True, slots=True)
class Reset:
    """The stream of ``symbol`` could not be continued: drop what you hold for it and start
    again from ``ticks`` (the server's latest, oldest first; may be empty), then the ticks that
    follow. ``reason``: "new_epoch" (the feed restarted) or "lost" (the ticks missed are no
    longer in the server's history, or were lost upstream of it)."""

    symbol: str
    epoch: str
    reason: str
    ticks: tuple[Tick, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The latest ticks of a symbol as it was subscribed (only with ``snapshot=True``)."""

    symbol: str
    epoch: str
    ticks: tuple[Tick, ...]


Event = Tick | Reset | Snapshot


class ServerError(Exception):
    """The server answered our request with an error: ``code`` as docs/protocol.md lists."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(slots=True)
class _Position:
    epoch: str
    seq: int


@dataclass(slots=True)
class StreamState:
    """``symbols`` in the order asked for; ``max_rate`` per symbol (0: every tick)."""

    snapshots: bool = False
    symbols: dict[str, float] = field(default_factory=dict)
    epoch: str = ""  # of the latest hello
    feed: str = ""
    available: tuple[str, ...] = ()  # every symbol the server offers (hello)
    positions: dict[str, _Position] = field(default_factory=dict)
    duplicates: int = 0  # ticks received twice (after a resume), dropped
    counts: Counter[str] = field(default_factory=Counter)  # events delivered, by kind
    _requests: int = 0

    def want(self, symbols: Iterable[str], max_rate: float = 0.0) -> list[str]:
        """Add symbols (upper-cased); returns those that were new."""
        added = []
        for symbol in symbols:
            symbol = symbol.strip().upper()
            if symbol and symbol not in self.symbols:
                added.append(symbol)
            if symbol:
                self.symbols[symbol] = max_rate
        return added

    def drop(self, symbols: Iterable[str]) -> list[str]:
        dropped = [s.strip().upper() for s in symbols if s.strip().upper() in self.symbols]
        for symbol in dropped:
            del self.symbols[symbol]
            self.positions.pop(symbol, None)
        return dropped

    def resume_point(self) -> tuple[str, dict[str, int]]:
        """The epoch most symbols are in and their last seqs: what a reconnect resumes from.
        Symbols of another epoch are left out (they get a snapshot, seen as a reset)."""
        epochs = Counter(p.epoch for s, p in self.positions.items() if s in self.symbols)
        if not epochs:
            return "", {}
        epoch = epochs.most_common(1)[0][0]
        return epoch, {s: p.seq for s, p in self.positions.items()
                       if p.epoch == epoch and s in self.symbols}

    def subscribe_messages(self, symbols: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The subscribe requests for ``symbols`` (default: all wanted), one per max_rate, each
        resuming the symbols it can."""
        chosen = list(self.symbols) if symbols is None else list(symbols)
        epoch, seqs = self.resume_point()
        by_rate: dict[float, list[str]] = {}
        for symbol in chosen:
            by_rate.setdefault(self.symbols.get(symbol, 0.0), []).append(symbol)
        messages = []
        for rate, group in by_rate.items():
            self._requests += 1
            message: dict[str, Any] = {"op": "subscribe", "symbols": group,
                                       "id": f"sub-{self._requests}"}
            if rate:
                message["max_rate"] = rate
            resumed = {s: seqs[s] for s in group if s in seqs}
            if resumed:
                message["resume"] = {"epoch": epoch, "seqs": resumed}
            messages.append(message)
        return messages

    def last_event_id(self, symbols: Iterable[str]) -> str | None:
        """An SSE Last-Event-ID for ``symbols`` in this order: ``epoch/seq.seq...``, an empty
        place for a symbol with no position (it gets a plain snapshot); None with no position."""
        epoch, seqs = self.resume_point()
        if not seqs:
            return None
        return epoch + "/" + ".".join(str(seqs[s]) if s in seqs else "" for s in symbols)

    def receive(self, message: Mapping[str, Any]) -> list[Event]:
        """What the program gets from one server message (possibly nothing). Raises
        :class:`ServerError` for an error reply, ValueError for a message that is not one."""
        kind = message.get("type")
        if kind == "ticks":
            return self._ticks(message["ticks"])
        if kind == "snapshot":
            return self._snapshot(message)
        if kind == "hello":
            self.epoch, self.feed = str(message["epoch"]), str(message.get("feed", ""))
            self.available = tuple(message.get("symbols", ()))
            return []
        if kind == "error":
            raise ServerError(str(message.get("code")), str(message.get("message")))
        return []  # subscribed, unsubscribed, pong, replay, types added later

    def _ticks(self, raw_ticks: list[dict[str, Any]]) -> list[Event]:
        out: list[Event] = []
        positions, wanted = self.positions, self.symbols
        for raw in raw_ticks:
            tick = decode_tick(raw)
            symbol = tick.symbol
            if symbol not in wanted:
                continue  # in flight when we unsubscribed
            position = positions.get(symbol)
            if position is None:
                positions[symbol] = _Position(self.epoch, tick.seq)
            elif tick.seq <= position.seq:
                self.duplicates += 1
                continue
            else:
                if tick.seq != position.seq + 1 and not wanted[symbol]:
                    log.warning("%s: seq %d after %d: the server skipped ticks", symbol,
                                tick.seq, position.seq)
                position.seq = tick.seq
            out.append(tick)
        self.counts["tick"] += len(out)
        return out

    def _snapshot(self, message: Mapping[str, Any]) -> list[Event]:
        symbol, epoch = str(message["symbol"]), str(message["epoch"])
        ticks = tuple(decode_tick(raw) for raw in message.get("ticks", ()))
        seq = int(message["seq"]) if "seq" in message else (ticks[-1].seq if ticks else 0)
        if symbol not in self.symbols:
            return []
        before = self.positions.get(symbol)
        self.positions[symbol] = _Position(epoch, seq)
        if before is not None and (message.get("reset") or before.epoch != epoch):
            self.counts["reset"] += 1
            reason = "new_epoch" if before.epoch != epoch else "lost"
            return [Reset(symbol, epoch, reason, ticks)]
        if before is not None:
            # A plain snapshot of a symbol we already follow (we could not offer a resume
            # point): only what we have not delivered yet.
            fresh = tuple(t for t in ticks if t.seq > before.seq)
            if ticks and ticks[0].seq > before.seq + 1:
                self.counts["reset"] += 1
                return [Reset(symbol, epoch, "lost", ticks)]
            self.positions[symbol] = _Position(epoch, max(seq, before.seq))
            self.counts["tick"] += len(fresh)
            return list(fresh)
        if self.snapshots:
            self.counts["snapshot"] += 1
            return [Snapshot(symbol, epoch, ticks)]
        return []


def decode_tick(raw: Mapping[str, Any]) -> Tick:
    """A protocol v1 tick object; fields the protocol may add later are ignored."""
    return Tick(str(raw["symbol"]), int(raw["seq"]), float(raw["ts"]), float(raw["price"]),
                raw["size"], float(raw["bid"]), float(raw["ask"]))
