"""The recording file format: one JSON header line, then one tick per line (docs/recording.md).

Reading is built for files that a crash cut short, or that someone edited by hand: a torn last
line, or a gzip stream without its end, loses only what was never completely written; a tick line
that cannot be read or holds impossible values (a NaN price, as Python's json writes it) is
skipped. Each costs a warning naming the file and line, never an error, and everything else is
read; the skipped tick's symbol has its later seqs renumbered so that they stay contiguous
(:class:`SeqRepair`). A bad header raises :class:`RecordingError` naming the file.

Errors::

    FeedError                      (ticker.errors)
    └── RecordingError             a recording cannot be read or written (names the file, line)
        ├── IncompleteRecording    no complete header line: empty, or killed before its first flush
        ├── RecordingNameError     a client-supplied recording name is refused (catalog)
        └── RecordingNotFound      a well-formed name that is not in the directory (catalog)
"""

from __future__ import annotations

import logging
import math
import os
import re
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ticker.errors import FeedError
from ticker.model import SymbolInfo, Tick, is_sane

FORMAT = "ticker-recording"
VERSION = 1
SUFFIXES = (".jsonl", ".jsonl.gz")
CHUNK_BYTES = 1 << 16

StrPath = str | os.PathLike[str]
Warn = Callable[[str], None]

log = logging.getLogger("feeds.recording")


class RecordingError(FeedError):
    pass


class IncompleteRecording(RecordingError):
    pass


class RecordingNameError(RecordingError):
    pass


class RecordingNotFound(RecordingError):
    pass


@dataclass(frozen=True, slots=True)
class Header:
    """The first line of every recording file. ``created`` is Unix ms when the file was opened."""

    source: str
    symbols: tuple[SymbolInfo, ...]
    created: float
    version: int = VERSION

    @property
    def symbol_names(self) -> tuple[str, ...]:
        return tuple(info.symbol for info in self.symbols)


def symbol_infos(symbols: Iterable[SymbolInfo | str]) -> tuple[SymbolInfo, ...]:
    return tuple(s if isinstance(s, SymbolInfo) else SymbolInfo(s) for s in symbols)


def is_gzip(path: StrPath) -> bool:
    return os.fspath(path).endswith(".gz")


# -- encoding --------------------------------------------------------------------------------------


def encode_header(header: Header) -> bytes:
    """The header line, newline included; names and sectors go in ``info`` if there are any."""
    line: dict[str, Any] = {
        "format": FORMAT, "version": header.version, "created": header.created,
        "source": header.source, "symbols": list(header.symbol_names),
    }
    info = {s.symbol: {"name": s.name, "sector": s.sector}
            for s in header.symbols if s.name or s.sector}
    if info:
        line["info"] = info
    return orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)


def encode_tick(tick: Tick) -> bytes:
    """One tick line, newline included: the wire tick object of docs/protocol.md."""
    return orjson.dumps({"symbol": tick.symbol, "seq": tick.seq, "ts": tick.ts,
                         "price": tick.price, "size": tick.size, "bid": tick.bid,
                         "ask": tick.ask}, option=orjson.OPT_APPEND_NEWLINE)


def decode_header(line: bytes) -> Header:
    """Raises ValueError saying what is wrong."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"header is not JSON ({error})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f'not a ticker recording (the first line has no "format":"{FORMAT}")')
    version = obj.get("version")
    if type(version) is not int or version < 1:
        raise ValueError(f"bad header version {version!r}")
    if version > VERSION:
        raise ValueError(f"recording version {version} is newer than this ticker reads "
                         f"({VERSION})")
    created, source, symbols = obj.get("created"), obj.get("source"), obj.get("symbols")
    if not isinstance(created, int | float) or not _is_number(created):
        raise ValueError('header "created" must be Unix milliseconds')
    if not isinstance(source, str):
        raise ValueError('header "source" must be a string')
    if not isinstance(symbols, list) or not all(isinstance(s, str) and s for s in symbols):
        raise ValueError('header "symbols" must be a list of symbol strings')
    info = obj.get("info")
    info = info if isinstance(info, dict) else {}
    infos = []
    for symbol in symbols:
        extra = info.get(symbol)
        extra = extra if isinstance(extra, dict) else {}
        infos.append(SymbolInfo(symbol, str(extra.get("name", "")), str(extra.get("sector", ""))))
    return Header(source, tuple(infos), float(created), version)


def decode_tick(line: bytes) -> Tick:
    """Raises ValueError saying what is wrong. Unknown extra fields are ignored."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error})") from None
    if not isinstance(obj, dict):
        raise ValueError("a tick line must be a JSON object")
    try:
        symbol, seq, size = obj["symbol"], obj["seq"], obj["size"]
        ts, price, bid, ask = obj["ts"], obj["price"], obj["bid"], obj["ask"]
    except KeyError as error:
        raise ValueError(f"tick has no {error.args[0]!r}") from None
    if not isinstance(symbol, str) or not symbol:
        raise ValueError('tick "symbol" must be a non-empty string')
    if type(seq) is not int:
        raise ValueError('tick "seq" must be an integer')
    if not (_is_number(ts) and _is_number(price) and _is_number(bid) and _is_number(ask)
            and _is_number(size)):
        raise ValueError('tick "ts", "price", "size", "bid" and "ask" must be finite numbers')
    tick = Tick(symbol, seq, float(ts), float(price), size, float(bid), float(ask))
    if not is_sane(tick):
        raise ValueError("impossible tick: price, bid and ask must be > 0 and size >= 0")
    return tick


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


# -- reading ---------------------------------------------------------------------------------------


def read_header(path: StrPath, warn: Warn = log.warning) -> tuple[Header, Tick | None]:
    """The header and the first readable tick (None if there is none yet), reading no further;
    lines skipped on the way are not warned about (:func:`read_ticks` does that)."""
    lines = iter_lines(path, warn)
    try:
        header = take_header(path, lines)
        for _, line, _ in lines:
            if line.strip():
                try:
                    return header, decode_tick(line)
                except ValueError:
                    continue
        return header, None
    finally:
        lines.close()


class SeqRepair:
    """Keeps seqs contiguous across skipped lines, over the files of one stream: a symbol's
    ticks after a skipped one of its own come renumbered (one fewer per skip), as the pump's
    guard does for impossible values. A symbol whose seq starts over (a new recording session)
    starts over here too. A skipped line whose symbol cannot be made out leaves a gap, which a
    replay plays as a new run."""

    __slots__ = ("_behind", "_last", "_report")

    def __init__(self, report: Callable[[str, int, str], None] | None = None) -> None:
        self._behind: dict[str, int] = {}
        self._last: dict[str, int] = {}  # as recorded
        self._report = report or _warn_skipped

    def skipped(self, path: StrPath, lineno: int, line: bytes, error: ValueError) -> None:
        """Line ``lineno`` of ``path`` was skipped (it is reported once here)."""
        self._report(os.fspath(path), lineno, str(error))
        match = _SYMBOL.search(line)
        if match is not None:
            symbol = match.group(1).decode("utf-8", "replace")
            self._behind[symbol] = self._behind.get(symbol, 0) + 1

    def __call__(self, tick: Tick) -> Tick:
        behind = self._behind
        if not behind:
            return tick
        symbol = tick.symbol
        last = self._last.get(symbol)
        self._last[symbol] = tick.seq
        if last is not None and tick.seq <= last:
            behind.pop(symbol, None)
        lag = behind.get(symbol)
        return Tick(symbol, tick.seq - lag, tick.ts, tick.price, tick.size, tick.bid,
                    tick.ask) if lag else tick


def _warn_skipped(path: str, lineno: int, error: str) -> None:
    log.warning("%s:%d: skipped an unreadable tick line: %s", path, lineno, error)


_SYMBOL = re.compile(rb'"symbol"\s*:\s*"([^"\\]{1,64})"')


def read_ticks(path: StrPath, warn: Warn = log.warning,
               repair: SeqRepair | None = None) -> Iterator[Tick]:
    """The ticks of one file, in file order; reads lazily, so it follows a file being written
    only up to where it was when the reading got there. Unreadable lines are skipped with a
    warning (see the module's docstring); pass one ``repair`` to the files of one stream."""
    repair = repair if repair is not None else SeqRepair()
    lines = iter_lines(path, warn)
    try:
        take_header(path, lines)
        for lineno, line, terminated in lines:
            if not line.strip():
                continue
            try:
                tick = decode_tick(line)
            except ValueError as error:
                if terminated:
                    repair.skipped(path, lineno, line, error)
                else:
                    warn(f"{os.fspath(path)}:{lineno}: skipped a torn last line ({len(line)} "
                         "bytes; the writer stopped mid-line)")
                continue
            yield repair(tick)
    finally:
        lines.close()


def read_recording(path: StrPath) -> tuple[Header, Iterator[Tick]]:
    """A file's header (read now) and its ticks (read as iterated)."""
    header, _ = read_header(path)
    return header, read_ticks(path)


def take_header(path: StrPath, lines: Iterator[tuple[int, bytes, bool]]) -> Header:
    first = next(lines, None)
    if first is None:
        raise IncompleteRecording(f"{os.fspath(path)}: empty file, no header")
    _, line, terminated = first
    try:
        return decode_header(line)
    except ValueError as error:
        if not terminated:
            raise IncompleteRecording(f"{os.fspath(path)}:1: torn header line") from None
        raise RecordingError(f"{os.fspath(path)}:1: {error}") from None


def iter_lines(path: StrPath, warn: Warn) -> Generator[tuple[int, bytes, bool]]:
    """(line number, line without its newline, whether the newline was there)."""
    tail = b""
    lineno = 0
    for chunk in _chunks(path, warn):
        if tail:
            chunk = tail + chunk
        parts = chunk.split(b"\n")
        tail = parts.pop()
        for part in parts:
            lineno += 1
            yield lineno, part, True
    if tail:
        yield lineno + 1, tail, False


def _chunks(path: StrPath, warn: Warn) -> Iterator[bytes]:
    try:
        file = open(path, "rb")  # noqa: SIM115 - closed in the finally below, also on close()
    except FileNotFoundError:
        raise RecordingNotFound(f"{os.fspath(path)}: no such recording") from None
    except OSError as error:
        raise RecordingError(f"{os.fspath(path)}: {error.strerror or error}") from None
    try:
        raw = iter(lambda: file.read(CHUNK_BYTES), b"")
        if is_gzip(path):
            yield from _gunzip(path, raw, warn)
        else:
            yield from raw
    finally:
        file.close()


def _gunzip(path: StrPath, raw: Iterable[bytes], warn: Warn) -> Iterator[bytes]:
    """Decompresses as far as the data goes: a recorder flushes with Z_SYNC_FLUSH, so everything
    flushed before a crash decompresses even though the stream has no end. Handles members
    written one after another (``cat a.gz b.gz``)."""
    decoder: Any = None  # zlib's Decompress type is not importable under that name
    produced = 0
    for data in raw:
        while data:
            if decoder is None:
                decoder = zlib.decompressobj(wbits=31)
            try:
                out = decoder.decompress(data)
            except zlib.error as error:
                if not produced:
                    raise RecordingError(f"{os.fspath(path)}: not gzip data ({error})") from None
                warn(f"{os.fspath(path)}: corrupt gzip data after {produced} bytes ({error}); "
                     "reading stops there")
                return
            if out:
                produced += len(out)
                yield out
            if decoder.eof:
                data, decoder = decoder.unused_data, None
            else:
                data = b""
    if decoder is not None:
        rest = decoder.flush()
        if rest:
            yield rest
        warn(f"{os.fspath(path)}: the gzip stream is truncated (still being written, or the "
             "writer was killed); read what decompresses")


def symbols_union(headers: Sequence[Header]) -> tuple[SymbolInfo, ...]:
    """Every header's symbols, first mention first (with the first non-empty name/sector)."""
    seen: dict[str, SymbolInfo] = {}
    for header in headers:
        for info in header.symbols:
            known = seen.get(info.symbol)
            if known is None or (not (known.name or known.sector) and (info.name or info.sector)):
                seen[info.symbol] = info
    return tuple(seen.values())
