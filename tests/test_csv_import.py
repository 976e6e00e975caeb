"""Importing price history from CSV: each layout, each time format, bad rows, and never leaving a
half-written recording behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from feeds.csv_import import CsvImportError, ImportReport, import_csv, quote
from feeds.recording import read_recording, read_ticks
from feeds.replay import ReplayFeed
from feeds.times import column_parser
from feeds.writer import RecordingWriter
from ticker.errors import FeedError
from ticker.model import Tick

CSV = Path(__file__).parent / "data" / "csv"
DAY = 86_400_000.0
JAN2 = 1_704_153_600_000.0  # 2024-01-02T00:00:00Z
JAN2_1430 = JAN2 + 14.5 * 3_600_000  # 2024-01-02T14:30:00Z


def imported(src: Path, out: Path, **options: object) -> tuple[ImportReport, list[Tick]]:
    report = import_csv(src, out, **options)  # type: ignore[arg-type]
    return report, list(read_ticks(out))


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


def triples(ticks: list[Tick]) -> list[tuple[str, int, float, float, int]]:
    return [(t.symbol, t.seq, t.ts, t.price, t.size) for t in ticks]


# -- layouts ---------------------------------------------------------------------------------------


def test_long_layout_sorted_by_time_with_seqs_per_symbol(tmp_path: Path) -> None:
    report, ticks = imported(CSV / "long.csv", tmp_path / "long.jsonl")
    assert report.layout == "long" and report.rows == 4 and report.skipped == 0
    assert triples(ticks) == [
        ("MSFT", 1, JAN2_1430 - 1000, 370.80, 10),
        ("AAPL", 1, JAN2_1430, 185.64, 100),
        ("MSFT", 2, JAN2_1430 + 250, 370.87, 200),
        ("AAPL", 2, JAN2_1430 + 1000, 185.70, 50),
    ]
    assert report.symbols == ("MSFT", "AAPL") and report.ticks == 4
    assert (report.first_ts, report.last_ts) == (ticks[0].ts, ticks[-1].ts)
    header, _ = read_recording(tmp_path / "long.jsonl")
    assert header.source == "csv:long.csv" and header.symbol_names == ("MSFT", "AAPL")


def test_the_synthetic_quote_is_a_cent_wide_or_proportionate_below_ten_dollars() -> None:
    assert quote(185.64) == (185.635, 185.645)
    assert quote(10.0) == (9.995, 10.005)
    bid, ask = quote(0.5)
    assert (bid, ask) == (0.49975, 0.50025) and bid < 0.5 < ask


def test_every_imported_tick_carries_its_quote(tmp_path: Path) -> None:
    _, ticks = imported(CSV / "long.csv", tmp_path / "out.jsonl")
    assert all((t.bid, t.ask) == quote(t.price) and t.bid < t.price < t.ask for t in ticks)


def test_wide_layout_one_column_per_symbol_gaps_left_out(tmp_path: Path) -> None:
    report, ticks = imported(CSV / "wide.csv", tmp_path / "wide.jsonl")
    assert report.layout == "wide" and report.symbols == ("AAPL", "MSFT", "BRK-B")
    assert triples(ticks) == [
        ("AAPL", 1, JAN2, 185.64, 0), ("MSFT", 1, JAN2, 370.87, 0),
        ("AAPL", 2, JAN2 + DAY, 184.25, 0), ("BRK-B", 1, JAN2 + DAY, 357.50, 0),
        ("AAPL", 3, JAN2 + 2 * DAY, 181.91, 0), ("MSFT", 2, JAN2 + 2 * DAY, 367.94, 0),
        ("BRK-B", 2, JAN2 + 2 * DAY, 358.10, 0),
    ]
    assert report.notes == ("numeric dates are ambiguous; read as MM/DD/YYYY",)


def test_ohlcv_bars_become_four_ticks_symbol_from_the_file_name(tmp_path: Path) -> None:
    report, ticks = imported(CSV / "aapl_daily.csv", tmp_path / "aapl.jsonl.gz")
    assert report.layout == "ohlcv" and report.symbols == ("AAPL",) and report.rows == 4
    assert report.ticks == 12 and "1 rows had no prices and were left out" in report.notes
    # Bars on Jan 2, 3 and 5: the spacing is the median gap, 1.5 days, cut at the next bar.
    lengths = [DAY, 1.5 * DAY, 1.5 * DAY]
    starts = [JAN2, JAN2 + DAY, JAN2 + 3 * DAY]
    assert [t.ts for t in ticks] == [s + n * k / 4 for s, n in zip(starts, lengths, strict=True)
                                     for k in range(4)]
    assert [t.price for t in ticks[:8]] == [187.15, 188.44, 183.89, 185.64,  # high nearer open
                                            184.22, 183.43, 185.88, 184.25]  # low nearer open
    assert [t.size for t in ticks[:4]] == [20622176, 20622176, 20622175, 20622175]
    assert sum(t.size for t in ticks[4:8]) == 58414500
    assert [t.seq for t in ticks] == list(range(1, 13))


def test_ohlc_with_a_symbol_column_and_unix_seconds(tmp_path: Path) -> None:
    report, ticks = imported(CSV / "bars.csv", tmp_path / "bars.jsonl")
    assert report.layout == "ohlc" and report.symbols == ("AAPL", "MSFT")
    assert all(t.size == 0 for t in ticks)
    aapl = [t for t in ticks if t.symbol == "AAPL"]
    msft = [t for t in ticks if t.symbol == "MSFT"]
    assert [t.ts for t in aapl] == [JAN2_1430 + k * 15_000 for k in range(8)]
    assert [t.ts for t in msft] == [JAN2_1430 + k * 15_000 for k in range(4)]  # a lone bar: 60 s
    assert [t.price for t in msft] == [370.00, 369.80, 370.50, 370.40]  # low nearer open
    assert [t.ts for t in ticks] == sorted(t.ts for t in ticks)


def test_a_price_series_without_a_symbol_column(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "BRK-B.csv", "date,close,volume\n2024-01-02,357.5,1200\n")
    report, ticks = imported(src, tmp_path / "out.jsonl")
    assert report.layout == "long" and triples(ticks) == [("BRK-B", 1, JAN2, 357.5, 1200)]
    report, ticks = imported(src, tmp_path / "out.jsonl", symbol="brk.b")
    assert ticks[0].symbol == "BRK.B"
    with pytest.raises(CsvImportError, match=r"cannot take a symbol from the file name.*--symbol"):
        import_csv(write_csv(tmp_path / "^GSPC.csv", "date,price\n2024-01-02,1\n"),
                   tmp_path / "x.jsonl")


def test_nasdaq_style_dollar_prices_and_close_last(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "msft.csv", """
Date,Close/Last,Volume,Open,High,Low
01/03/2024,$370.60,"25,258,600",$369.01,$373.26,$368.51
""")
    report, ticks = imported(src, tmp_path / "out.jsonl")
    assert report.layout == "ohlcv"
    assert [t.price for t in ticks] == [369.01, 368.51, 373.26, 370.60]
    assert sum(t.size for t in ticks) == 25_258_600


def test_semicolons_with_decimal_commas(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "sap.csv", "Datum;Symbol;Price\n02.01.2024;SAP;139,52\n")
    with pytest.raises(CsvImportError, match="no time column"):
        import_csv(src, tmp_path / "out.jsonl")
    src = write_csv(tmp_path / "sap.csv", "Date;Symbol;Price\n03.01.2024;SAP;139,52\n")
    report, ticks = imported(src, tmp_path / "out.jsonl")
    assert triples(ticks) == [("SAP", 1, JAN2 + DAY, 139.52, 0)]  # 3 January: day first
    assert report.notes == ("numeric dates are ambiguous; read as DD.MM/YYYY",)


def test_the_layout_comes_from_header_names_in_any_case(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "x.csv", "DATETIME,SYMBOL,LAST,VOLUME\n2024-01-02,AAPL,1.5,7\n")
    assert imported(src, tmp_path / "a.jsonl")[0].layout == "long"
    src = write_csv(tmp_path / "x.csv", "<DATE>,Adj_Close\n2024-01-02,1.5\n")
    assert triples(imported(src, tmp_path / "b.jsonl")[1]) == [("X", 1, JAN2, 1.5, 0)]


@pytest.mark.parametrize(("header", "reason"), [
    ("symbol,price\n", "no time column"),
    ("date\n", "only a time column"),
    ("date,symbol,size\n", "a symbol column but no price column"),
    ("date,AAPL,aapl\n", "duplicate column names: aapl"),
    ("date,Not A Symbol\n", "column 'Not A Symbol' is not a symbol"),
    ("", "the file is empty"),
])
def test_headers_that_fit_no_layout_are_refused(tmp_path: Path, header: str,
                                                reason: str) -> None:
    src = write_csv(tmp_path / "x.csv", header + ("2024-01-02,1,2\n" if header else ""))
    with pytest.raises(CsvImportError, match=reason):
        import_csv(src, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_a_symbol_argument_with_a_symbol_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CsvImportError, match="has a symbol column"):
        import_csv(CSV / "long.csv", tmp_path / "out.jsonl", symbol="AAPL")


# -- time formats ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "ms"), [
    ("2024-01-02", JAN2),
    ("2024-01-02T14:30:00Z", JAN2_1430),
    ("2024-01-02T14:30:00.125Z", JAN2_1430 + 125),
    ("2024-01-02 15:30:00+01:00", JAN2_1430),
    ("2024-01-02 14:30", JAN2_1430),
    ("20240102", JAN2),
    ("1704205800", JAN2_1430),
    ("1704205800.5", JAN2_1430 + 500),
    ("1704205800000", JAN2_1430),
    ("1704205800000000", JAN2_1430),
    ("Jan 2 2024", JAN2),
    ("January 2, 2024", JAN2),
    ("2 Jan 2024", JAN2),
    ("02-Jan-24", JAN2),
    ("Tue, Jan 2 2024 2:30 PM", JAN2_1430),
    ("01/02/2024", JAN2),
    ("1/2/2024 14:30:00", JAN2_1430),
    ("2024/01/02 14:30", JAN2_1430),
    ("02.01.2024", JAN2),
])
def test_each_time_format(tmp_path: Path, written: str, ms: float) -> None:
    src = write_csv(tmp_path / "t.csv", f'time,symbol,price\n"{written}",AAPL,1.5\n')
    _, ticks = imported(src, tmp_path / "out.jsonl")
    assert ticks[0].ts == ms


def test_separate_date_and_time_columns(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "t.csv", "Date,Time,Symbol,Price\n2024-01-02,14:30:00,A,1\n"
                                        "01/02/2024,2:30 PM,A,2\n")
    assert [t.ts for t in imported(src, tmp_path / "out.jsonl")[1]] == [JAN2_1430] * 2


def test_month_and_day_order_is_decided_for_the_whole_column(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "t.csv", "date,price\n02/01/2024,1\n13/01/2024,2\n")
    report, ticks = imported(src, tmp_path / "out.jsonl", symbol="A")
    assert [t.ts for t in ticks] == [JAN2, JAN2 + 11 * DAY] and report.notes == ()
    src = write_csv(tmp_path / "t.csv", "date,price\n01/02/2024,1\n01/13/2024,2\n")
    assert [t.ts for t in imported(src, tmp_path / "b.jsonl", symbol="A")[1]] == \
        [JAN2, JAN2 + 11 * DAY]
    _, ticks = imported(write_csv(tmp_path / "t.csv", "date,price\n02/01/2024,1\n"),
                        tmp_path / "c.jsonl", symbol="A", dayfirst=True)
    assert ticks[0].ts == JAN2
    src = write_csv(tmp_path / "t.csv", "date,price\n13/01/2024,1\n01/13/2024,2\n")
    with pytest.raises(CsvImportError, match="mixes day-first and month-first"):
        import_csv(src, tmp_path / "d.jsonl", symbol="A")


def test_the_column_parser_reports_its_guess_only_when_it_guessed() -> None:
    assert column_parser(["2024-01-02", "1704205800"])[1] is None
    assert column_parser(["01/02/2024"])[1] == "numeric dates are ambiguous; read as MM/DD/YYYY"


# -- bad rows --------------------------------------------------------------------------------------

BAD_ROWS = [
    (3, "price 'abc' is not a number"),
    (4, "'yesterday' is not a time"),
    (5, "expected 4 fields like the header, found 3"),
    (6, "price must be > 0, got '-1'"),
    (7, "'BAD SYMBOL!' is not a symbol"),
    (8, "size must be >= 0, got '-5'"),
]


def test_a_bad_row_is_an_error_with_its_line_and_reason(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with pytest.raises(CsvImportError) as info:
        import_csv(CSV / "bad.csv", out)
    error = info.value
    assert isinstance(error, FeedError)
    assert (error.line, error.reason) == (3, "price 'abc' is not a number")
    assert str(error) == f"{CSV / 'bad.csv'}:3: price 'abc' is not a number"
    assert not out.exists()


@pytest.mark.parametrize(("line", "reason"), BAD_ROWS)
def test_each_kind_of_bad_row_names_line_and_reason(tmp_path: Path, line: int,
                                                    reason: str) -> None:
    rows = (CSV / "bad.csv").read_text().splitlines()
    src = write_csv(tmp_path / "one.csv", "\n".join([rows[0], rows[1], rows[line - 1]]) + "\n")
    with pytest.raises(CsvImportError, match=":3: ") as info:
        import_csv(src, tmp_path / "out.jsonl")
    assert reason in info.value.reason


def test_skip_bad_goes_on_and_counts(tmp_path: Path) -> None:
    report, ticks = imported(CSV / "bad.csv", tmp_path / "out.jsonl", skip_bad=True)
    assert report.rows == 8 and report.skipped == 6 and report.ticks == 2
    assert triples(ticks) == [("AAPL", 1, JAN2, 185.64, 100),
                              ("AAPL", 2, JAN2 + 9 * DAY, 182.00, 300)]
    assert len(report.problems) == 6
    for problem, (line, reason) in zip(report.problems, BAD_ROWS, strict=True):
        assert problem.startswith(f"line {line}: ") and reason in problem


def test_an_inconsistent_bar_is_a_bad_row(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "x.csv", "date,open,high,low,close\n2024-01-02,10,9,8,9.5\n"
                                        "2024-01-03,10,11,9,10\n")
    with pytest.raises(CsvImportError, match=r":2: inconsistent bar: open 10.0, high 9.0"):
        import_csv(src, tmp_path / "out.jsonl")
    report, ticks = imported(src, tmp_path / "out.jsonl", skip_bad=True)
    assert report.skipped == 1 and len(ticks) == 4


def test_only_bad_rows_is_an_error_even_when_skipping(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "x.csv", "date,symbol,price\n2024-01-02,A,abc\n")
    with pytest.raises(CsvImportError, match=r"no ticks to import \(1 bad rows skipped\)"):
        import_csv(src, tmp_path / "out.jsonl", skip_bad=True)


# -- nothing half-written --------------------------------------------------------------------------


def test_a_failed_import_leaves_nothing_and_keeps_an_older_file(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    import_csv(CSV / "long.csv", out)
    before = out.read_bytes()
    big = "date,symbol,price\n" + "".join(f"2024-01-02,A,{k + 1}\n" for k in range(5000))
    with pytest.raises(CsvImportError, match=":5002: "):
        import_csv(write_csv(tmp_path / "big.csv", big + "2024-01-03,A,oops\n"), out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv", "out.jsonl"]


def test_a_write_that_fails_midway_removes_its_temporary_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(self: RecordingWriter, ticks: object) -> None:
        self.write_tick(Tick("A", 1, 1.0, 1.0, 0, 1.0, 1.0))
        self.flush(fsync=False)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(RecordingWriter, "write", failing)
    out = tmp_path / "sub" / "out.jsonl.gz"
    with pytest.raises(OSError, match="No space left"):
        import_csv(CSV / "long.csv", out)
    assert list(out.parent.iterdir()) == []


def test_an_import_replays(tmp_path: Path) -> None:
    _, ticks = imported(CSV / "aapl_daily.csv", tmp_path / "aapl.jsonl")

    async def replay() -> list[Tick]:
        feed = ReplayFeed(tmp_path / "aapl.jsonl", speed="max")
        return [t async for batch in feed.batches() for t in batch]

    assert asyncio.run(replay()) == ticks
