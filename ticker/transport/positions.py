"""Where an HTTP client stands in the streams it follows, as text it can hand back.

SSE event ids and long-poll cursors both carry the epoch and, per subscribed symbol, the last seq
delivered, so that a reconnect (or the next poll) continues exactly there: no gap, no duplicate.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence

from ticker.errors import ProtocolError
from ticker.protocol import BAD_REQUEST, Resume


def event_id(epoch: str, symbols: Sequence[str], positions: Mapping[str, int]) -> str:
    """``<epoch>/<seq>.<seq>...`` in the order of the subscription's symbols (the URL's)."""
    return epoch + "/" + ".".join(str(positions.get(symbol, 0)) for symbol in symbols)


def parse_event_id(text: str, symbols: Sequence[str]) -> Resume | None:
    """The resume point of a Last-Event-ID, or None if it is not one of ours for these symbols.
    An empty place (``epoch/12..40``) is a symbol with no position yet: it gets a plain snapshot,
    so a client that adds a symbol can reconnect with the others resumed."""
    epoch, slash, seqs = text.strip().rpartition("/")
    parts = seqs.split(".")
    if not slash or not epoch or len(parts) != len(symbols) \
            or not all(p.isdigit() or not p for p in parts) or not any(parts):
        return None
    return Resume(epoch, {symbol: int(p) for symbol, p in zip(symbols, parts, strict=True) if p})


def encode_cursor(epoch: str, symbols: Sequence[str], positions: Mapping[str, int]) -> str:
    text = f"{epoch}|{','.join(symbols)}|" + ".".join(str(positions.get(s, 0)) for s in symbols)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, symbols: Sequence[str]) -> Resume:
    """Raises ProtocolError (bad_request) for a cursor that is malformed or was issued for
    another set of symbols."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        epoch, cursor_symbols, seqs = text.split("|")
        parts = seqs.split(".")
        if not epoch or not all(p.isdigit() for p in parts):
            raise ValueError(text)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ProtocolError(BAD_REQUEST, "malformed cursor: pass back the cursor of the "
                            "previous reply unchanged, or omit it to start over") from None
    if cursor_symbols.split(",") != list(symbols) or len(parts) != len(symbols):
        raise ProtocolError(BAD_REQUEST, "this cursor belongs to another subscription: use it "
                            f"with symbols={cursor_symbols}, or omit it to start over")
    return Resume(epoch, {symbol: int(p) for symbol, p in zip(symbols, parts, strict=True)})
