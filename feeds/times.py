"""Times and durations as people write them, to Unix milliseconds and seconds.

``parse_instant`` and ``parse_duration`` serve the command line; ``column_parser`` reads a CSV
time column, choosing month/day order once for the whole column. Times without a zone are UTC.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

ISO_HINT = "ISO 8601 (2026-11-23, 2026-11-23T06:15:00Z, 2026-11-23 06:15:00+01:00)"


def parse_instant(value: str | float) -> float:
    """Unix ms from a number of milliseconds or an ISO 8601 date or date-time (naive = UTC).

    Raises ValueError naming both accepted forms.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a time")
        return float(value)
    text = str(value).strip()
    if _NUMBER.fullmatch(text):
        return float(text)
    try:
        return _iso_ms(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: give Unix milliseconds or {ISO_HINT}") from None


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?", re.IGNORECASE)
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``60s``, ``1.5m``, ``2h``, ``500ms``, ``1h30m`` (no unit = seconds)."""
    cleaned = text.strip().replace(" ", "")
    parts = list(_DURATION_PART.finditer(cleaned))
    if not cleaned or "".join(p.group(0) for p in parts) != cleaned or (
            len(parts) > 1 and not all(p.group(2) for p in parts)):
        raise ValueError(f"{text!r} is not a duration (e.g. 90, 60s, 1.5m, 2h, 500ms, 1h30m)")
    seconds = sum(float(p.group(1)) * _UNIT_S[(p.group(2) or "s").lower()] for p in parts)
    if not seconds > 0:
        raise ValueError(f"{text!r}: a duration must be > 0")
    return seconds


# -- CSV time columns ------------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_ISO_START = re.compile(r"\d{4}-\d{2}-\d{2}(?:$|[T ])|\d{8}T\d")
_YMD = re.compile(r"(\d{4})[/.](\d{1,2})[/.](\d{1,2})(?:[ T]+(.+))?")
_NUMERIC = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})(?:[ T]+(.+))?")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?\s*([AaPp][Mm])?"
                    r"\s*(Z|UTC|GMT|[+-]\d{2}:?\d{2})?")
_MONTHS = {name: k for k, names in enumerate(
    ("jan january", "feb february", "mar march", "apr april", "may", "jun june", "jul july",
     "aug august", "sep sept september", "oct october", "nov november", "dec december"),
    start=1) for name in names.split()}
_WEEKDAYS = {"mon", "monday", "tue", "tues", "tuesday", "wed", "wednesday", "thu", "thur",
             "thurs", "thursday", "fri", "friday", "sat", "saturday", "sun", "sunday"}

ACCEPTED = ("ISO 8601 dates or date-times; YYYYMMDD; Unix seconds, ms, us or ns; "
            "MM/DD/YYYY or DD/MM/YYYY (also with '-' or '.'); YYYY/MM/DD; "
            "'Jan 2 2000', '2 Jan 2000', '02-Jan-00'; each optionally with HH:MM[:SS] [AM|PM]")


def column_parser(values: Iterable[str],
                  dayfirst: bool | None = None) -> tuple[Callable[[str], float], str | None]:
    """A parser to Unix ms for one column, and a note when month/day order was a guess.

    The order of numeric dates (``01/02/2000``) is decided once for the column: a first number
    above 12 means day first, a second above 12 month first (both in one column is an error);
    when nothing tells, slash and dash dates are read month first (US) and dotted ones day first
    (European), and the note says so. ``dayfirst`` overrides.
    """
    note = None
    if dayfirst is None:
        numeric = day_first_seen = month_first_seen = dotted = False
        for value in values:
            match = _NUMERIC.fullmatch(value.strip())
            if match:
                numeric = True
                dotted = dotted or match.group(2) == "."
                day_first_seen = day_first_seen or int(match.group(1)) > 12
                month_first_seen = month_first_seen or int(match.group(3)) > 12
        if day_first_seen and month_first_seen:
            raise ValueError("the time column mixes day-first and month-first dates")
        if day_first_seen or month_first_seen:
            dayfirst = day_first_seen
        else:
            dayfirst = dotted
            note = (f"numeric dates are ambiguous; read as {'DD.MM' if dotted else 'MM/DD'}"
                    "/YYYY") if numeric else None
    cache: dict[str, float] = {}
    first = bool(dayfirst)

    def parse(text: str) -> float:
        ms = cache.get(text)
        if ms is None:
            ms = cache[text] = parse_time(text, first)
        return ms

    return parse, note


def parse_time(text: str, dayfirst: bool = False) -> float:
    """Unix ms from one cell in any of the ACCEPTED forms; raises ValueError saying why not."""
    value = text.strip()
    if not value:
        raise ValueError("the time is empty")
    try:
        if _NUMBER.fullmatch(value):
            return _number_ms(value)
        if _ISO_START.match(value):
            return _iso_ms(value)
        match = _YMD.fullmatch(value)
        if match:
            year, month, day, clock = match.groups()
            return _ms(int(year), int(month), int(day), clock)
        match = _NUMERIC.fullmatch(value)
        if match:
            a, _, b, year, clock = match.groups()
            day, month = (a, b) if dayfirst else (b, a)
            return _ms(_year(year), int(month), int(day), clock)
        return _written_ms(value)
    except ValueError as error:
        raise ValueError(f"{value!r} is not a time I read ({error}); accepted: {ACCEPTED}") \
            from None


def _number_ms(value: str) -> float:
    """Unix time by magnitude: below 1e11 seconds, then ms, us, ns (1e11 s is the year 5138,
    1e11 ms is 1973). Eight-digit integers that are valid YYYYMMDD dates are dates: as Unix
    seconds they would fall in 1970."""
    compact = _COMPACT_DATE.fullmatch(value)
    if compact and 1900 <= int(compact.group(1)) <= 2200:
        try:
            return _ms(int(compact.group(1)), int(compact.group(2)), int(compact.group(3)), None)
        except ValueError:
            pass
    number = float(value)
    magnitude = abs(number)
    scale = 1000.0 if magnitude < 1e11 else 1.0 if magnitude < 1e14 else \
        0.001 if magnitude < 1e17 else 1e-6
    return number * scale


def _iso_ms(value: str) -> float:
    moment = datetime.fromisoformat(value.replace(" UTC", "Z").replace(" GMT", "Z"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() * 1000.0


def _year(text: str) -> int:
    """Two-digit years pivot like strptime's %y: 69-99 are 1900s, 00-68 are 2000s."""
    year = int(text)
    if len(text) == 2:
        year += 1900 if year >= 69 else 2000
    return year


def _ms(year: int, month: int, day: int, clock: str | None) -> float:
    moment = datetime(year, month, day, tzinfo=UTC)
    if clock:
        moment += _clock(clock)
    return moment.timestamp() * 1000.0


def _clock(text: str) -> timedelta:
    """A time of day with optional AM/PM and zone; returned as the offset to add to UTC midnight."""
    match = _CLOCK.fullmatch(text.strip())
    if not match:
        raise ValueError(f"bad time of day {text.strip()!r}")
    hour, minute, second, fraction, half, zone = match.groups()
    h = int(hour)
    if half:
        if not 1 <= h <= 12:
            raise ValueError(f"hour {h} with {half}")
        h = h % 12 + (12 if half.lower() == "pm" else 0)
    if h > 23 or int(minute) > 59 or int(second or 0) > 60:
        raise ValueError(f"bad time of day {text.strip()!r}")
    offset = timedelta(hours=h, minutes=int(minute), seconds=int(second or 0),
                       microseconds=round(float(fraction or 0) * 1e6))
    if zone and zone.upper() not in ("Z", "UTC", "GMT"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return offset


def _written_ms(value: str) -> float:
    """'Jan 2 2000', 'January 2, 2000', '2 Jan 2000', '02-Jan-00', 'Mon, Jan 3 2000 9:30 AM'."""
    clock_at = _CLOCK.search(value)
    date_part, clock = (value[:clock_at.start()], value[clock_at.start():]) if clock_at \
        else (value, None)
    tokens = [t for t in re.split(r"[\s,/.-]+", date_part) if t]
    month = None
    numbers = []
    for token in tokens:
        lower = token.lower()
        if lower in _MONTHS and month is None:
            month = _MONTHS[lower]
        elif token.isdigit():
            numbers.append(token)
        elif lower not in _WEEKDAYS:
            raise ValueError(f"unknown word {token!r}")
    if month is None or len(numbers) != 2:
        raise ValueError("expected a month name, a day and a year")
    long_years = [n for n in numbers if len(n) == 4]
    if long_years:
        year = int(long_years[0])
        day = int(numbers[1] if numbers[0] == long_years[0] else numbers[0])
    else:
        day, year = int(numbers[0]), _year(numbers[1])
    return _ms(year, month, day, clock)
