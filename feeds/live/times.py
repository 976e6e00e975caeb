"""Upstream timestamps (RFC 3339 text) as our ticks' Unix milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def rfc3339_ms(text: object) -> float:
    """``"2021-02-22T15:51:44.208123456Z"`` -> Unix ms (to the microsecond; nanoseconds are cut).
    Raises ValueError for anything else, a time without a zone included."""
    if not isinstance(text, str):
        raise ValueError(f"a time must be RFC 3339 text, got {type(text).__name__}")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"a time without a zone: {text[:40]!r}")
    # Whole microseconds, then one division: timestamp() * 1000 is off in the last digit for
    # about a quarter of times (.7501 s -> 750.0999 ms), and a relayed ts must come out as sent.
    return (moment - _EPOCH) // _MICROSECOND / 1000.0
