"""Real price history from CSV into a recording (docs/recording.md, "Importing CSV").

Layouts, told apart by the header row (names matched case-insensitively, with synonyms):

- ``ohlc`` / ``ohlcv``: open, high, low, close (+ volume) per row, one symbol per file (from a
  symbol column, the ``symbol`` argument or the file name); each bar becomes four ticks.
- ``long``: a time, a symbol and a price (+ size) per row; without a symbol column, one series.
- ``wide``: a time, then one price column per symbol (the column name); empty cells are gaps.

The whole file is read and checked before anything is written; the recording is written to a
temporary file beside ``out_path`` and renamed over it at the end, so a failure leaves nothing.
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from feeds.csv_rows import (
    Columns,
    RawTick,
    bars_to_ticks,
    find_columns,
    symbol_from_name,
)
from feeds.recording import Header, StrPath, is_gzip
from feeds.times import column_parser
from feeds.writer import RecordingWriter
from ticker.errors import FeedError
from ticker.model import SymbolInfo, Tick

MAX_PROBLEMS = 20  # skipped rows whose reasons the report keeps


class CsvImportError(FeedError):
    """A CSV file cannot be imported; ``line`` is the 1-based line of the bad row (0: file)."""

    def __init__(self, path: StrPath, line: int, reason: str) -> None:
        super().__init__(os.fspath(path), line, reason)
        self.path = os.fspath(path)
        self.line = line
        self.reason = reason

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ImportReport:
    out_path: Path
    layout: str  # "long", "wide", "ohlc" or "ohlcv"
    rows: int  # data rows read
    skipped: int  # bad rows skipped (skip_bad)
    ticks: int
    symbols: tuple[str, ...]
    first_ts: float | None
    last_ts: float | None
    notes: tuple[str, ...]  # assumptions made, e.g. month/day order
    problems: tuple[str, ...]  # the first MAX_PROBLEMS skipped rows, "line N: reason"


def import_csv(path: StrPath, out_path: StrPath, skip_bad: bool = False, *,
               symbol: str | None = None, dayfirst: bool | None = None) -> ImportReport:
    """Converts ``path`` to a recording at ``out_path`` (gzip if it ends in .gz).

    A bad row raises CsvImportError naming its line and the reason; with ``skip_bad`` it is
    skipped and counted instead. ``symbol`` names the series of a file without a symbol column
    (default: from the file name); ``dayfirst`` settles 01/02/2000 (default: see feeds.times).
    """
    source = Path(path)
    rows, delimiter = _read_rows(source)
    if not rows:
        raise CsvImportError(source, 0, "the file is empty")
    header_line, header = rows[0]
    try:
        columns = find_columns(header)
    except ValueError as error:
        raise CsvImportError(source, header_line, str(error)) from None
    if columns.symbol is None and columns.layout != "wide":
        try:
            columns.fixed_symbol = symbol_from_name(symbol or source.name, symbol is not None)
        except ValueError as error:
            raise CsvImportError(source, 0, str(error)) from None
    elif symbol is not None:
        raise CsvImportError(source, header_line, f"the file has a symbol column "
                             f"({header[columns.symbol or 0]!r}); do not give a symbol too")
    data = rows[1:]
    problems: list[str] = []

    def bad(line: int, reason: str) -> None:
        if not skip_bad:
            raise CsvImportError(source, line, reason)
        if len(problems) < MAX_PROBLEMS:
            problems.append(f"line {line}: {reason}")

    try:
        parse_time, note = column_parser((columns.time_text(row) for _, row in data
                                          if len(row) > columns.widest), dayfirst)
    except ValueError as error:
        raise CsvImportError(source, 0, str(error)) from None
    notes = [note] if note else []
    raw, skipped, missing = _convert(data, columns, parse_time, delimiter, bad)
    if missing:
        notes.append(f"{missing} rows had no prices and were left out")
    if columns.layout in ("ohlc", "ohlcv"):
        raw = bars_to_ticks(raw)
    if not raw:
        raise CsvImportError(source, 0, "no ticks to import" + (
            f" ({skipped} bad rows skipped)" if skipped else ""))
    ticks = _sequenced(raw)
    symbols = tuple(dict.fromkeys(tick.symbol for tick in ticks))
    out = Path(out_path)
    _write_atomically(out, Header(f"csv:{source.name}", tuple(SymbolInfo(s) for s in symbols),
                                  round(time.time() * 1000.0, 3)), ticks)
    return ImportReport(out, columns.layout, len(data), skipped, len(ticks), symbols,
                        ticks[0].ts, ticks[-1].ts, tuple(notes), tuple(problems))


def _read_rows(path: Path) -> tuple[list[tuple[int, list[str]]], str]:
    """Non-blank rows with their line numbers; the delimiter is whichever of , ; tab | the
    header line uses most."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:
            text = file.read()
    except FileNotFoundError:
        raise CsvImportError(path, 0, "no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CsvImportError(path, 0, f"cannot read: {error}") from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max(",;\t|", key=first.count)
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter)
    rows = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((reader.line_num, [cell.strip() for cell in row]))
    except csv.Error as error:
        raise CsvImportError(path, reader.line_num, f"not valid CSV: {error}") from None
    return rows, delimiter


def _convert(data: list[tuple[int, list[str]]], columns: Columns,
             parse_time: Callable[[str], float], delimiter: str,
             bad: Callable[[int, str], None]) -> tuple[list[RawTick], int, int]:
    raw: list[RawTick] = []
    skipped = missing = 0
    width = len(columns.names)
    for line, row in data:
        if len(row) > width and not any(row[width:]):
            row = row[:width]  # trailing empty fields (a trailing delimiter)
        try:
            if len(row) != width:
                raise ValueError(f"expected {width} fields like the header, found {len(row)}")
            ts = parse_time(columns.time_text(row))
            found = columns.row_ticks(row, ts, line, delimiter)
        except ValueError as error:
            bad(line, str(error))
            skipped += 1
            continue
        if found:
            raw.extend(found)
        else:
            missing += 1
    return raw, skipped, missing


def _sequenced(raw: list[RawTick]) -> list[Tick]:
    """Sorted by time (ties keep file order), seqs per symbol from 1, a synthetic quote."""
    raw.sort(key=lambda r: r.ts)
    seqs: dict[str, int] = {}
    ticks = []
    for r in raw:
        seq = seqs[r.symbol] = seqs.get(r.symbol, 0) + 1
        bid, ask = quote(r.price)
        ticks.append(Tick(r.symbol, seq, round(r.ts, 3), r.price, r.size, bid, ask))
    return ticks


def quote(price: float) -> tuple[float, float]:
    """A synthetic quote around a trade: half a cent either side (a 1-cent spread), or 5 basis
    points either side for prices under $10, so a penny stock's quote stays proportionate."""
    half = min(0.005, price * 0.0005)
    return round(price - half, 6), round(price + half, 6)


def _write_atomically(out: Path, header: Header, ticks: list[Tick]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer = RecordingWriter(temp, header, gz=is_gzip(out))
        try:
            writer.write(ticks)
        finally:
            writer.close(fsync=True)
        os.replace(temp, out)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise

