"""The recording format and reading it: header and tick lines, torn tails, truncated gzip,
directories as one stream, listings, and refusing hostile recording names."""

from __future__ import annotations

import gzip
import logging
import os
import re
import zlib
from itertools import islice, takewhile
from pathlib import Path
from typing import Any

import orjson
import pytest

from feeds.catalog import (
    RecordingCatalog,
    RecordingSource,
    list_recordings,
    recording_info,
    resolve_recording,
)
from feeds.market import MarketParams, StockSpec
from feeds.recording import (
    Header,
    IncompleteRecording,
    RecordingError,
    RecordingNameError,
    RecordingNotFound,
    decode_header,
    decode_tick,
    encode_header,
    encode_tick,
    read_header,
    read_recording,
    read_ticks,
)
from feeds.simulated import SimulatedFeed
from feeds.writer import RecordingWriter
from ticker.model import SymbolInfo, Tick

DATA = Path(__file__).parent / "data"
START_MS = 1_763_880_000_000.0  # 2025-11-23T06:40:00Z
PARAMS = MarketParams(market_share=0.3, sector_share=0.2, vol_halflife=600.0, vol_of_vol=0.3,
                      jumps_per_day=1.0, jump_size=0.005, spread_bps=1.5)
STOCKS = [
    StockSpec("AAPL", "Apple Inc.", "Technology", 190.0, 0.28, 3.0),
    StockSpec("JPM", "JPMorgan Chase & Co.", "Financials", 195.0, 0.22, 1.5),
    StockSpec("XOM", "Exxon Mobil Corp.", "Energy", 115.0, 0.24, 1.0),
]
INFOS = tuple(SymbolInfo(s.symbol, s.name, s.sector) for s in STOCKS)
LAST_SAMPLE_TICK = Tick("XOM", 47, 1763880005984.573, 115.02, 100, 115.02, 115.04)


def market(rate: float = 50.0, seed: int = 7) -> SimulatedFeed:
    return SimulatedFeed(STOCKS, PARAMS, rate, seed)


def simulated(n: int, start_ms: float = START_MS, rate: float = 50.0, seed: int = 7) -> list[Tick]:
    return list(islice(market(rate, seed).ticks(start_ms), n))


def simulated_for(seconds: float, start_ms: float = START_MS, rate: float = 50.0,
                  seed: int = 7) -> list[Tick]:
    end = start_ms + seconds * 1000
    return list(takewhile(lambda t: t.ts < end, market(rate, seed).ticks(start_ms)))


def header(source: str = "simulated", created: float = START_MS) -> Header:
    return Header(source, INFOS, created)


def write_file(path: Path, ticks: list[Tick], source: str = "simulated") -> Path:
    writer = RecordingWriter(path, header(source))
    writer.write(ticks)
    writer.close()
    return path


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# -- the format ------------------------------------------------------------------------------------


def test_a_tick_line_is_the_wire_tick_and_round_trips_exactly() -> None:
    tick = Tick("AAPL", 1042, 1763880000123.456, 189.23, 100, 189.22, 189.24)
    line = encode_tick(tick)
    assert line == (b'{"symbol":"AAPL","seq":1042,"ts":1763880000123.456,"price":189.23,'
                    b'"size":100,"bid":189.22,"ask":189.24}\n')
    assert decode_tick(line) == tick
    for t in simulated(2000):
        assert decode_tick(encode_tick(t)) == t


def test_the_header_line_and_its_symbol_info_round_trip() -> None:
    line = encode_header(header())
    obj = orjson.loads(line)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert obj["format"] == "ticker-recording" and obj["version"] == 1
    assert obj["created"] == START_MS and obj["source"] == "simulated"
    assert obj["symbols"] == ["AAPL", "JPM", "XOM"]
    assert obj["info"]["JPM"] == {"name": "JPMorgan Chase & Co.", "sector": "Financials"}
    assert decode_header(line) == header()
    bare = Header("csv:x.csv", (SymbolInfo("A"), SymbolInfo("B")), 1.5)
    assert "info" not in orjson.loads(encode_header(bare))
    assert decode_header(encode_header(bare)) == bare


def test_readers_ignore_fields_they_do_not_know() -> None:
    line = orjson.dumps({"format": "ticker-recording", "version": 1, "created": 5,
                         "source": "x", "symbols": ["A"], "future": True})
    assert decode_header(line).symbol_names == ("A",)
    tick = decode_tick(b'{"symbol":"A","seq":1,"ts":5,"price":1,"size":0,"bid":1,"ask":1,'
                       b'"venue":"X"}')
    assert tick == Tick("A", 1, 5.0, 1.0, 0, 1.0, 1.0)
    assert isinstance(tick.ts, float) and isinstance(tick.price, float)
    # A crypto feed's sizes are fractions of a coin: they are recorded and read back as sent.
    coin = decode_tick(b'{"symbol":"BTC-USD","seq":1,"ts":5,"price":1,"size":0.0012,"bid":1,'
                       b'"ask":1}')
    assert coin.size == 0.0012


@pytest.mark.parametrize(("line", "reason"), [
    (b'{"symbol":"A","seq":1,"ts":5,"price":1,"size":0,"bid":1}', "no 'ask'"),
    (b'{"symbol":"A","seq":"1","ts":5,"price":1,"size":0,"bid":1,"ask":1}', "an integer"),
    (b'{"symbol":"A","seq":1,"ts":5,"price":1,"size":"0","bid":1,"ask":1}', "finite numbers"),
    (b'{"symbol":"A","seq":1,"ts":true,"price":1,"size":0,"bid":1,"ask":1}', "finite numbers"),
    (b'{"symbol":"","seq":1,"ts":5,"price":1,"size":0,"bid":1,"ask":1}', "non-empty string"),
    (b'[1,2]', "JSON object"),
    (b'{"symbol":"A",', "not JSON"),
])
def test_bad_tick_lines_say_what_is_wrong(line: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_tick(line)


@pytest.mark.parametrize(("line", "reason"), [
    (b'{"symbol":"A"}', "not a ticker recording"),
    (b'{"format":"ticker-recording","version":2,"created":1,"source":"x","symbols":[]}',
     "version 2 is newer"),
    (b'{"format":"ticker-recording","version":1,"created":"x","source":"x","symbols":[]}',
     "created"),
    (b'{"format":"ticker-recording","version":1,"created":1,"source":"x","symbols":[1]}',
     "symbols"),
])
def test_bad_headers_say_what_is_wrong(line: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_header(line)


def test_the_committed_sample_recording_still_reads_the_same() -> None:
    """A regression check on the format (not on the simulator): tests/data/sample.jsonl was
    written by record_fast(SimulatedFeed(STOCKS, PARAMS, 50, seed=7), ..., 6 s, START_MS)."""
    head, ticks = read_recording(DATA / "sample.jsonl")
    got = list(ticks)
    assert head.source == "simulated" and head.symbols == INFOS and head.version == 1
    assert len(got) == 302
    assert got[0] == Tick("AAPL", 1, 1763880000014.163, 190.01, 900, 189.99, 190.01)
    assert got[-1] == LAST_SAMPLE_TICK
    for symbol in ("AAPL", "JPM", "XOM"):
        seqs = [t.seq for t in got if t.symbol == symbol]
        assert seqs == list(range(1, len(seqs) + 1))


# -- torn tails, truncated gzip --------------------------------------------------------------------


def test_a_torn_last_line_is_skipped_with_a_warning(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    ticks = simulated(50)
    path = write_file(tmp_path / "r.jsonl", ticks)
    data = path.read_bytes()
    path.write_bytes(data[:-20])  # cuts into the last line
    with caplog.at_level(logging.WARNING):
        got = list(read_ticks(path))
    assert got == ticks[:-1]
    assert any("r.jsonl:51: skipped a torn last line" in m for m in warnings_of(caplog))


def test_a_complete_last_line_without_its_newline_is_kept(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    ticks = simulated(10)
    path = write_file(tmp_path / "r.jsonl", ticks)
    path.write_bytes(path.read_bytes()[:-1])
    with caplog.at_level(logging.WARNING):
        assert list(read_ticks(path)) == ticks
    assert not warnings_of(caplog)


def renumbered(ticks: list[Tick], dropped: Tick) -> list[Tick]:
    """``ticks`` without ``dropped``, its symbol's later seqs one lower."""
    return [t if t.symbol != dropped.symbol or t.seq < dropped.seq
            else Tick(t.symbol, t.seq - 1, t.ts, t.price, t.size, t.bid, t.ask)
            for t in ticks if t != dropped]


@pytest.mark.parametrize("bad", [
    pytest.param(lambda line: line[:30], id="cut-short"),
    # What Python's json.dumps writes for a float("nan") price: not JSON.
    pytest.param(lambda line: re.sub(rb'"price":[0-9.]+', b'"price":NaN', line), id="nan"),
    pytest.param(lambda line: re.sub(rb'"price":[0-9.]+', b'"price":-5.0', line),
                 id="negative-price"),
    pytest.param(lambda line: re.sub(rb'"size":[0-9]+', b'"size":"100"', line), id="wrong-type"),
])
def test_a_bad_line_is_skipped_with_a_warning_naming_it_and_seqs_stay_contiguous(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, bad: Any) -> None:
    ticks = simulated(10)
    path = write_file(tmp_path / "r.jsonl", ticks)
    lines = path.read_bytes().split(b"\n")
    lines[4] = bad(lines[4])  # the 4th tick, on line 5
    path.write_bytes(b"\n".join(lines))
    with caplog.at_level(logging.WARNING):
        got = list(read_ticks(path))
    assert got == renumbered(ticks, ticks[3])
    [warning] = warnings_of(caplog)
    assert "r.jsonl:5: skipped an unreadable tick line" in warning


def test_a_garbage_line_is_skipped_and_the_rest_read(tmp_path: Path) -> None:
    ticks = simulated(10)
    path = write_file(tmp_path / "r.jsonl", ticks)
    lines = path.read_bytes().split(b"\n")
    lines.insert(3, b"\x00\xffnot a tick at all")
    path.write_bytes(b"\n".join(lines))
    assert list(read_ticks(path)) == ticks


def _flush_points(path: Path, ticks: list[Tick], every: int) -> list[tuple[int, int]]:
    """Writes a gzip recording, flushing every ``every`` ticks; returns (file size, ticks
    flushed) after each flush."""
    writer = RecordingWriter(path, header())
    points = []
    for k in range(0, len(ticks), every):
        writer.write(ticks[k:k + every])
        writer.flush(fsync=False)
        points.append((path.stat().st_size, min(k + every, len(ticks))))
    writer.close()
    return points


def test_a_truncated_gzip_reads_everything_flushed_before_the_cut(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ticks = simulated(600)
    full = tmp_path / "full.jsonl.gz"
    points = _flush_points(full, ticks, 50)
    data = full.read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    header_end = points[0][0] - 1
    for size in range(header_end, len(data), 97):
        cut.write_bytes(data[:size])
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            got = list(read_ticks(cut))
        flushed = max((n for end, n in points if end <= size), default=0)
        assert got == ticks[:len(got)], size
        assert len(got) >= flushed, (size, len(got), flushed)
        assert any("gzip stream is truncated" in m for m in warnings_of(caplog)), size
    assert list(read_ticks(full)) == ticks


def test_gzip_members_written_one_after_another_read_as_one(tmp_path: Path) -> None:
    ticks = simulated(20)
    body = encode_header(header()) + b"".join(encode_tick(t) for t in ticks)
    path = tmp_path / "cat.jsonl.gz"
    path.write_bytes(gzip.compress(body[:700]) + gzip.compress(body[700:]))
    assert list(read_ticks(path)) == ticks


def test_gzip_garbage_is_an_error_and_late_garbage_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(b"this is not gzip at all\n")
    with pytest.raises(RecordingError, match="not gzip data"):
        list(read_ticks(path))
    ticks = simulated(5)
    write_file(path, ticks)
    path.write_bytes(path.read_bytes() + b"\x1f\x8b\x08garbage")
    with caplog.at_level(logging.WARNING):
        assert list(read_ticks(path)) == ticks
    assert any("corrupt gzip data" in m for m in warnings_of(caplog))
    assert zlib  # the module under test decodes with zlib directly


def test_a_file_without_a_complete_header_is_incomplete(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(encode_header(header())[:25])
    for path in (empty, torn):
        with pytest.raises(IncompleteRecording):
            read_header(path)
    with pytest.raises(RecordingNotFound):
        read_header(tmp_path / "missing.jsonl")
    other = tmp_path / "other.jsonl"
    other.write_bytes(b'{"hello": 1}\n')
    with pytest.raises(RecordingError, match=r"other\.jsonl:1: not a ticker recording") as info:
        read_header(other)
    assert not isinstance(info.value, IncompleteRecording)


# -- directories -----------------------------------------------------------------------------------


def _three_sessions(directory: Path) -> list[Tick]:
    """One 30 s stream cut in three files whose names sort against time order."""
    ticks = simulated_for(30.0)
    directory.mkdir(exist_ok=True)
    thirds = [ticks[: len(ticks) // 3], ticks[len(ticks) // 3: 2 * len(ticks) // 3],
              ticks[2 * len(ticks) // 3:]]
    for name, part in zip(("c.jsonl", "b.jsonl.gz", "a.jsonl"), thirds, strict=True):
        write_file(directory / name, part)
    return ticks


def test_a_directory_reads_as_one_stream_in_time_order(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    ticks = _three_sessions(tmp_path)
    (tmp_path / "notes.txt").write_text("not a recording")
    (tmp_path / "killed-early.jsonl").write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        source = RecordingSource(tmp_path)
    assert [p.name for p in source.files] == ["c.jsonl", "b.jsonl.gz", "a.jsonl"]
    assert any("killed-early.jsonl" in m and "skipped" in m for m in warnings_of(caplog))
    assert list(source.ticks()) == ticks
    assert source.symbols == INFOS
    middle = ticks[len(ticks) // 2].ts
    assert list(source.ticks(middle)) == [t for t in ticks if t.ts >= middle]


def test_seeking_in_a_directory_does_not_read_the_files_before(tmp_path: Path) -> None:
    ticks = _three_sessions(tmp_path)
    first = tmp_path / "c.jsonl"
    lines = first.read_bytes().split(b"\n")
    lines[5] = b"corrupt"
    first.write_bytes(b"\n".join(lines))
    source = RecordingSource(tmp_path)
    reported: list[tuple[str, int]] = []

    def skipped(path: str, lineno: int, error: str) -> None:
        reported.append((Path(path).name, lineno))

    list(source.ticks(skipped=skipped))
    assert reported == [("c.jsonl", 6)]
    reported.clear()
    late = ticks[-10].ts
    assert list(source.ticks(late, skipped)) == ticks[-10:]
    assert reported == []  # the corrupt file was not read


def test_an_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="no recordings"):
        RecordingSource(tmp_path)


def test_listing_gives_counts_times_and_symbols(tmp_path: Path) -> None:
    ticks = _three_sessions(tmp_path)
    torn = write_file(tmp_path / "d.jsonl", simulated(5, start_ms=START_MS + 60_000), "replay")
    torn.write_bytes(torn.read_bytes()[:-7])
    (tmp_path / "junk.jsonl").write_text("not json\n")
    (tmp_path / "empty.jsonl").write_bytes(b"")
    infos = list_recordings(tmp_path)
    assert [i.name for i in infos] == ["c.jsonl", "b.jsonl.gz", "a.jsonl", "d.jsonl"]
    thirds = [ticks[: len(ticks) // 3], ticks[len(ticks) // 3: 2 * len(ticks) // 3],
              ticks[2 * len(ticks) // 3:]]
    for info, part in zip(infos, thirds, strict=False):
        assert info.tick_count == len(part)
        assert (info.first_ts, info.last_ts) == (part[0].ts, part[-1].ts)
        assert info.symbols == ("AAPL", "JPM", "XOM")
        assert info.source == "simulated" and info.created == START_MS
        assert info.size == (tmp_path / info.name).stat().st_size
    late = simulated(5, start_ms=START_MS + 60_000)
    assert infos[3].tick_count == 4 and infos[3].last_ts == late[3].ts
    assert infos[3].source == "replay"


def test_the_catalog_notices_a_file_that_grew(tmp_path: Path) -> None:
    ticks = simulated(30)
    path = write_file(tmp_path / "live.jsonl", ticks[:10])
    catalog = RecordingCatalog(tmp_path)
    assert [i.tick_count for i in catalog.list()] == [10]
    assert catalog.list()[0] is catalog.list()[0]  # unchanged: served from the cache
    with open(path, "ab") as file:
        file.write(b"".join(encode_tick(t) for t in ticks[10:]))
    assert [(i.tick_count, i.last_ts) for i in catalog.list()] == [(30, ticks[-1].ts)]
    assert recording_info(path).tick_count == 30


# -- names from clients ----------------------------------------------------------------------------


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    directory = tmp_path / "recordings"
    directory.mkdir()
    write_file(directory / "ticker-20251123T064000.000Z.jsonl", simulated(3))
    write_file(tmp_path / "secret.jsonl", simulated(2), "secret")
    return directory


@pytest.mark.parametrize("name", [
    "../../etc/passwd", "/etc/passwd", "a/b", "..", "", ".", "../secret.jsonl",
    "/tmp/x.jsonl", ".hidden.jsonl", "x..jsonl", "a\\b.jsonl", "x.jsonl\x00", "notes.txt",
    "ticker-20251123T064000.000Z.jsonl/", "~/x.jsonl", None, 5,
])
def test_hostile_or_malformed_names_are_refused(recordings: Path, name: object) -> None:
    with pytest.raises(RecordingNameError):
        resolve_recording(recordings, name)


def test_a_symlink_pointing_outside_is_refused(recordings: Path) -> None:
    (recordings / "escape.jsonl").symlink_to(recordings.parent / "secret.jsonl")
    (recordings / "etc.jsonl").symlink_to("/etc/passwd")
    for name in ("escape.jsonl", "etc.jsonl"):
        with pytest.raises(RecordingNameError, match="outside"):
            resolve_recording(recordings, name)
    assert "escape.jsonl" not in [i.name for i in list_recordings(recordings)]


def test_good_names_resolve_strictly_inside(recordings: Path) -> None:
    name = "ticker-20251123T064000.000Z.jsonl"
    path = resolve_recording(recordings, name)
    assert path == (recordings / name).resolve() and path.parent == recordings.resolve()
    (recordings / "alias.jsonl").symlink_to(recordings / name)
    assert resolve_recording(recordings, "alias.jsonl") == path
    with pytest.raises(RecordingNotFound):
        resolve_recording(recordings, "nope.jsonl")
    assert RecordingCatalog(recordings).resolve(name) == path
    assert [i.name for i in list_recordings(recordings)] == ["alias.jsonl", name]
    assert os.path.commonpath([path, recordings.resolve()]) == str(recordings.resolve())
