"""Recordings on disk: a file or a directory read as one stream, listings, and safe names.

A directory's recordings (``*.jsonl`` and ``*.jsonl.gz`` whose names :func:`resolve_recording`
accepts) form one stream, file after file in the order of their first tick, as a recorder's
rotated files do. Overlapping files are concatenated, not merged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import dropwhile
from pathlib import Path

from feeds.recording import (
    SUFFIXES,
    Header,
    IncompleteRecording,
    RecordingError,
    RecordingNameError,
    RecordingNotFound,
    SeqRepair,
    StrPath,
    decode_tick,
    iter_lines,
    log,
    read_header,
    read_ticks,
    symbols_union,
    take_header,
)
from ticker.model import SymbolInfo, Tick

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    """One file of a listing; ``first_ts``/``last_ts`` are None while it holds no tick."""

    name: str
    size: int
    first_ts: float | None
    last_ts: float | None
    symbols: tuple[str, ...]
    tick_count: int
    source: str
    created: float
    unreadable_lines: int = 0  # skipped when played: not JSON, or impossible values


@dataclass(frozen=True, slots=True)
class _Part:
    path: Path
    header: Header
    first_ts: float | None


class RecordingSource:
    """A recording FILE, or a DIRectory of them read as one stream in time order.

    Opening reads every file's header and first tick (cheap); :meth:`refresh` looks again, e.g.
    for files a recorder has added since. Files without a complete header (a recorder killed
    before its first flush) are skipped with a warning when they are part of a directory, and
    raise :class:`IncompleteRecording` when named on their own.
    """

    def __init__(self, path: StrPath) -> None:
        self.path = Path(path)
        self._parts: list[_Part] = []
        self.refresh()

    def refresh(self) -> None:
        if self.path.is_dir():
            parts = []
            for file in _recording_files(self.path):
                try:
                    header, first = read_header(file)
                except IncompleteRecording as error:
                    log.warning("%s; skipped", error)
                    continue
                parts.append(_Part(file, header, first.ts if first else None))
            if not parts:
                raise RecordingError(f"{self.path}: no recordings in this directory")
            inf = float("inf")
            parts.sort(key=lambda p: (inf if p.first_ts is None else p.first_ts, p.path.name))
            self._parts = parts
        else:
            header, first = read_header(self.path)
            self._parts = [_Part(self.path, header, first.ts if first else None)]

    @property
    def headers(self) -> tuple[Header, ...]:
        return tuple(part.header for part in self._parts)

    @property
    def files(self) -> tuple[Path, ...]:
        return tuple(part.path for part in self._parts)

    @property
    def symbols(self) -> tuple[SymbolInfo, ...]:
        return symbols_union(self.headers)

    @property
    def source(self) -> str:
        return self._parts[0].header.source

    @property
    def has_ticks(self) -> bool:
        return any(part.first_ts is not None for part in self._parts)

    def ticks(self, start_ts: float | None = None,
              skipped: Callable[[str, int, str], None] | None = None) -> Iterator[Tick]:
        """Every tick from the first one at or after ``start_ts`` on; files that end before it
        (because the next file starts at or before it) are not read at all. A line that cannot
        be read is skipped and reported to ``skipped`` (path, line number, what is wrong)."""
        parts = [p for p in self._parts if p.first_ts is not None]
        begin = 0
        if start_ts is not None:
            for index, part in enumerate(parts):
                if part.first_ts is not None and part.first_ts <= start_ts:
                    begin = index
        repair = SeqRepair(skipped)
        stream = (tick for part in parts[begin:]
                  for tick in read_ticks(part.path, log.warning, repair))
        if start_ts is None:
            return stream
        return dropwhile(lambda tick: tick.ts < start_ts, stream)


def _recording_files(directory: Path) -> list[Path]:
    """The directory's recordings: the names resolve_recording accepts, and that resolve to a
    file directly inside it (so listing and resolving always agree)."""
    try:
        root = directory.resolve()
        entries = sorted(root.iterdir())
    except OSError as error:
        raise RecordingError(f"{directory}: {error.strerror or error}") from None
    files = []
    for entry in entries:
        if _good_name(entry.name):
            try:
                real = entry.resolve(strict=True)
            except (OSError, RuntimeError):
                continue
            if real.parent == root and real.is_file():
                files.append(entry)
    return files


def _good_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name)) and ".." not in name and name.endswith(SUFFIXES)


def resolve_recording(directory: StrPath, name: object) -> Path:
    """The real path of recording ``name`` (as listed) in ``directory``, for a client's request.

    Raises RecordingNameError for anything that is not a plain recording name (empty, ``.``,
    ``..``, a separator, an absolute path, another suffix) or that resolves, through a symlink,
    outside the directory; RecordingNotFound for a good name with no such file.
    """
    if not isinstance(name, str) or not _good_name(name):
        raise RecordingNameError(f"{_shown(name)} is not a recording name (letters, digits, "
                                 f"'.', '_', '-', ending in {' or '.join(SUFFIXES)}; no path)")
    root = Path(directory).resolve()
    try:
        real = (root / name).resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise RecordingNotFound(f"no recording named {name!r}") from None
    except (OSError, RuntimeError):  # a symlink loop
        raise RecordingNameError(f"{name!r} cannot be resolved") from None
    if real.parent != root:
        raise RecordingNameError(f"{name!r} points outside the recordings directory")
    if not real.is_file():
        raise RecordingNotFound(f"no recording named {name!r}")
    return real


def _shown(name: object) -> str:
    text = repr(name)
    return text if len(text) <= 60 else text[:57] + "..."


def recording_info(path: StrPath) -> RecordingInfo:
    """Counts every readable tick (a full read: the catalog caches it). A torn tail is not
    counted; unreadable lines are counted apart."""
    path = Path(path)
    size = path.stat().st_size
    count = unreadable = 0
    first_ts: float | None = None
    last_ts: float | None = None
    lines = iter_lines(path, lambda message: log.debug("%s", message))
    try:
        header = take_header(path, lines)
        for _, line, terminated in lines:
            if not line.strip():
                continue
            try:
                tick = decode_tick(line)
            except ValueError:
                # Torn: the writer stopped mid-line (or has not written the newline yet).
                unreadable += terminated
                continue
            first_ts = tick.ts if first_ts is None else first_ts
            last_ts = tick.ts
            count += 1
    finally:
        lines.close()
    return RecordingInfo(path.name, size, first_ts, last_ts, header.symbol_names, count,
                         header.source, header.created, unreadable)


def list_recordings(directory: StrPath) -> list[RecordingInfo]:
    """Every readable recording in ``directory``, in stream (time) order. Blocking file I/O:
    call it from a thread in async code. Unreadable files are skipped with a warning."""
    return RecordingCatalog(directory).list()


class RecordingCatalog:
    """A directory's listing, re-reading only files whose size or mtime changed since."""

    def __init__(self, directory: StrPath) -> None:
        self.directory = Path(directory)
        self._cache: dict[str, tuple[tuple[int, int], RecordingInfo]] = {}

    def list(self) -> list[RecordingInfo]:
        infos: list[RecordingInfo] = []
        cache: dict[str, tuple[tuple[int, int], RecordingInfo]] = {}
        for path in _recording_files(self.directory):
            try:
                stat = path.stat()
                key = (stat.st_size, stat.st_mtime_ns)
                cached = self._cache.get(path.name)
                info = cached[1] if cached and cached[0] == key else recording_info(path)
            except IncompleteRecording:
                continue
            except (RecordingError, OSError) as error:
                log.warning("%s: not listed: %s", path, error)
                continue
            cache[path.name] = (key, info)
            infos.append(info)
        self._cache = cache
        inf = float("inf")
        infos.sort(key=lambda i: (inf if i.first_ts is None else i.first_ts, i.name))
        return infos

    def resolve(self, name: object) -> Path:
        return resolve_recording(self.directory, name)

