"""``ticker bench fanout``: its bookkeeping without sockets, then one tiny real run end to end."""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from picows import WSMsgType
from picows.picows import _make_test_ws_frame

import ticker
from ticker.bench.fanout import _selected, run_ramp
from ticker.bench.loadgen import BenchClient, Tracker, owed_by_all
from ticker.bench.measurement import Measurement, judge
from ticker.bench.report import Ramp, Step, at_tenth, row, summary
from ticker.bench.sample import SampleStream, Window, percentiles
from ticker.bench.servers import KINDS, server_command
from ticker.bench.workload import (
    Workload,
    client_symbols,
    ladder,
    sample_indices,
    symbol_names,
)

IMPORT_ROOT = str(Path(ticker.__file__).resolve().parents[1])
UNIT = float(os.environ.get("TICKER_TEST_TIMEOUT_UNIT", "1.0"))


# -- workload --------------------------------------------------------------------------------------


def test_every_symbol_gets_the_same_number_of_subscribers() -> None:
    workload = Workload()
    names = symbol_names(workload)
    assert names[0] == "S0001" and names[-1] == "S0100"
    counts = Counter(s for i in range(workload.clients) for s in client_symbols(i, workload, names))
    assert set(counts) == set(names)
    assert set(counts.values()) == {100}


@pytest.mark.parametrize(("clients", "symbols", "per_client", "sample"),
                         [(1000, 100, 10, 50), (50, 20, 10, 50), (300, 100, 7, 20),
                          (1000, 100, 10, 10)])
def test_the_sample_is_spread_and_covers_every_symbol(clients: int, symbols: int,
                                                      per_client: int, sample: int) -> None:
    workload = Workload(symbols=symbols, clients=clients, symbols_per_client=per_client,
                        sample=sample)
    names = symbol_names(workload)
    chosen = sample_indices(workload)
    assert len(chosen) == len(set(chosen)) == min(sample, clients)
    assert all(0 <= i < clients for i in chosen)
    covered = {s for i in chosen for s in client_symbols(i, workload, names)}
    assert covered == set(names)
    if sample < clients:
        assert chosen[-1] - chosen[0] > clients // 2  # not just the first connections


def test_the_default_run_is_ours_and_the_baselines_and_variants_run_on_request() -> None:
    default = [kind.name for kind in _selected(argparse.Namespace(only=None))]
    assert default == ["ours", "naive", "broadcast", "batched"]
    asked = _selected(argparse.Namespace(only=[["ours-wsproto", "ours"]]))
    assert [kind.name for kind in asked] == ["ours", "ours-wsproto"]
    wsproto = asked[1]
    # The same `ticker serve` command; the protocol comes in through the server's environment.
    assert server_command(wsproto, 1, 100, 10.0, 1) == server_command(asked[0], 1, 100, 10.0, 1)
    assert wsproto.env() == {"TICKER_SERVER_WS_IMPLEMENTATION": "wsproto"}
    assert asked[0].env() == {}


def test_ladder() -> None:
    assert ladder(50, 1000) == [50, 70, 100, 150, 200, 300, 400, 500, 700, 1000]
    assert ladder(1000, 4000) == [1000, 1500, 2000, 3000, 4000]


# -- what the sampled clients check ----------------------------------------------------------------


def tick(symbol: str, seq: int, ts: float) -> dict[str, Any]:
    return {"symbol": symbol, "seq": seq, "ts": ts, "price": 1.0, "size": 100, "bid": 1.0,
            "ask": 1.01}


def test_a_stream_counts_gaps_and_duplicates_after_the_snapshot() -> None:
    stream = SampleStream(Window())
    stream.snapshot("A", [tick("A", 4, 0), tick("A", 5, 0)])
    stream.ticks([tick("A", 6, 0), tick("A", 9, 0), tick("B", 3, 0), tick("B", 4, 0)], 10.0)
    stream.ticks([tick("A", 9, 0), tick("A", 8, 0), tick("A", 10, 0)], 10.0)
    assert (stream.gaps, stream.duplicates) == (2, 2)


def test_the_window_counts_by_production_time_and_judges_lateness() -> None:
    window = Window()
    window.open(1000.0, 2000.0)
    a, b = SampleStream(window), SampleStream(window)
    a.ticks([tick("A", 1, 999.0), tick("A", 2, 1000.0)], 1010.0)  # seq 1: before the window
    a.ticks([tick("A", 3, 1500.0)], 1520.0)
    b.ticks([tick("A", 2, 1000.0)], 1200.0)  # 200 ms late
    # b misses seq 3; seq 5 was produced after the window.
    b.ticks([tick("A", 4, 1990.0), tick("A", 5, 2000.0)], 2010.0)
    assert window.produced("A") == 3  # seqs 2..4
    assert window.owed([["A"], ["A"]]) == 6
    assert window.received == 4
    assert window.on_time == 3
    assert sorted(window.latencies) == [10.0, 20.0, 20.0, 200.0]
    assert b.gaps == 1
    assert window.newest_ts == 2000.0


def test_ticks_before_the_window_opens_are_not_measured() -> None:
    window = Window()
    SampleStream(window).ticks([tick("A", 1, 5.0)], 6.0)
    assert window.received == 0 and not window.latencies


def test_owed_by_all_uses_the_sample_and_estimates_uncovered_symbols() -> None:
    window = Window()
    window.open(0.0, 100.0)
    SampleStream(window).ticks([tick("A", 1, 1.0), tick("A", 4, 2.0), tick("B", 7, 3.0),
                                tick("B", 8, 4.0)], 5.0)
    sampled = [["A", "B"]]
    owed, uncovered = owed_by_all(window, [["A", "B"], ["A", "C"]], sampled)
    assert window.produced("A") == 4 and window.produced("B") == 2
    assert (owed, uncovered) == (4 + 2 + 4 + 3, 1)  # C counted at the mean of A and B


def test_percentiles_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentiles(values, (50, 99, 100)) == [50.0, 99.0, 100.0]
    assert percentiles([7.0], (50, 99)) == [7.0, 7.0]
    assert all(math.isnan(v) for v in percentiles([], (50,)))


class FakeTransport:
    is_close_frame_sent = False

    def __init__(self) -> None:
        self.sent: list[tuple[Any, Any]] = []

    def send(self, kind: Any, data: Any) -> None:
        self.sent.append((kind, data))

    def send_close(self, code: Any) -> None:
        self.sent.append(("close", code))

    def disconnect(self, graceful: bool = True) -> None:
        self.sent.append(("disconnect", graceful))


def frame(message: dict[str, Any]) -> Any:
    return _make_test_ws_frame(WSMsgType.TEXT, orjson.dumps(message), True, False)


def test_a_counting_client_counts_ticks_without_parsing() -> None:
    tracker = Tracker(1)
    client = BenchClient(b'{"op":"subscribe","symbols":["A"]}', None, tracker)
    transport: Any = FakeTransport()
    client.on_ws_connected(transport)
    assert transport.sent == [(WSMsgType.TEXT, b'{"op":"subscribe","symbols":["A"]}')]
    client.on_ws_frame(transport, frame({"type": "hello", "symbols": ["A"]}))
    client.on_ws_frame(transport, frame({"type": "subscribed", "symbols": ["A"]}))
    client.on_ws_frame(transport, frame({"type": "snapshot", "symbol": "A",
                                         "ticks": [tick("A", 1, 0.0)]}))
    client.on_ws_frame(transport, frame({"type": "ticks",
                                         "ticks": [tick("A", 2, 0.0), tick("A", 3, 0.0)]}))
    assert (client.frames, client.ticks) == (1, 2)  # the snapshot is not live ticks
    assert tracker.subscribed == 1 and tracker.all_subscribed.is_set()


def test_a_sampled_client_checks_every_tick() -> None:
    window = Window()
    window.open(0.0, 1e15)
    client = BenchClient(b"", SampleStream(window), Tracker(1))
    transport: Any = FakeTransport()
    client.on_ws_frame(transport, frame({"type": "snapshot", "symbol": "A",
                                         "ticks": [tick("A", 1, 0.0)]}))
    client.on_ws_frame(transport, frame({"type": "ticks", "ticks": [tick("A", 3, 1.0)]}))
    assert client.sample is not None and client.sample.gaps == 1
    assert client.ticks == 1 and window.received == 1


# -- verdicts and the ramp -------------------------------------------------------------------------


def measured(**fields: Any) -> Measurement:
    base: dict[str, Any] = {
        "tick_rate": 1000.0, "clients": 10, "subscribed": 10, "window_s": 5.0,
        "delivered": 5000, "sample_delivered": 1000, "owed": 5000, "owed_tps": 1000.0,
        "sample_owed": 1000, "sample_received": 1000, "sample_on_time": 1000, "p50_ms": 1.0,
        "p99_ms": 5.0, "max_ms": 9.0, "loadgen_cpu": 0.3, "other_cpu": 0.0}
    return Measurement(**(base | fields))


def at_rate(rate: float, **fields: Any) -> Measurement:
    """A step whose delivered count grows with the rate, so the best step is the fastest."""
    return measured(tick_rate=rate, delivered=int(rate * 500), owed=int(rate * 500), **fields)


def test_a_good_step_is_sustained() -> None:
    verdict = judge(measured())
    assert verdict.sustained and verdict.trusted and verdict.reason == ""


@pytest.mark.parametrize(("fields", "reason"), [
    ({"sample_on_time": 998}, "99.80% on time"),
    ({"p99_ms": 150.0}, "p99 150 ms"),
    ({"gaps": 3}, "3 gaps"),
    ({"disconnects": 2, "close_codes": {"4008": 2}}, "2 clients dropped (4008 x2)"),
    ({"delivered": 4200}, "clients outside the sample got 80.0% of the sample's ticks"),
    ({"sample_owed": 0}, "no tick in the window"),
    ({"failure": "only 3 of 10 clients subscribed"}, "only 3 of 10 clients subscribed"),
])
def test_a_bad_step_says_why(fields: dict[str, Any], reason: str) -> None:
    verdict = judge(measured(**fields))
    assert not verdict.sustained and reason in verdict.reason, verdict.reason
    assert row(Step(measured(**fields), verdict))  # the table copes with it


def test_a_saturated_load_generator_is_not_trusted() -> None:
    verdict = judge(measured(loadgen_cpu=0.95))
    assert not verdict.trusted and not verdict.sustained
    assert "load generator" in verdict.reason


def test_the_ramp_stops_after_the_first_failure_and_keeps_the_best() -> None:
    seen: list[float] = []

    def step(kind: Any, rate: float) -> Measurement:
        seen.append(rate)
        good = rate < 3000
        return measured(tick_rate=rate, delivered=int(rate * 5 * 100),
                        owed=int(rate * 5 * 100), sample_on_time=1000 if good else 500)

    ramp = run_ramp(KINDS[0], [150, 1000, 2000, 3000, 4000], step)
    assert seen == [150, 1000, 2000, 3000]
    assert ramp.capacity == 200_000
    tenth = at_tenth(ramp)
    assert tenth is not None and tenth.measurement.tick_rate == 150


def test_the_ramp_skips_ahead_while_the_server_idles_and_fills_in_after_a_failure() -> None:
    seen: list[float] = []

    def step(kind: Any, rate: float) -> Measurement:
        seen.append(rate)
        return at_rate(rate, server_cpu=rate / 1000, sample_on_time=1000 if rate < 700 else 10)

    ramp = run_ramp(KINDS[0], ladder(50, 2000), step)
    # 50 -> 100 -> 200 -> 400 -> 1000 (each under half a core) fails; back to the skipped 500
    # (holds) and 700 (fails). The rates skipped below the last good one are not needed.
    assert seen == [50, 100, 200, 400, 1000, 500, 700]
    assert ramp.best is not None and ramp.best.measurement.tick_rate == 500


def test_a_ramp_goes_back_for_the_rates_it_skipped() -> None:
    seen: list[float] = []

    def step(kind: Any, rate: float) -> Measurement:
        seen.append(rate)
        return at_rate(rate, server_cpu=0.1, sample_on_time=1000 if rate < 300 else 10)

    ramp = run_ramp(KINDS[0], ladder(50, 2000), step)
    assert seen == [50, 100, 200, 400, 300]
    assert ramp.best is not None and ramp.best.measurement.tick_rate == 200


def test_a_ramp_that_fails_at_once_falls_back_to_lower_rates() -> None:
    seen: list[float] = []

    def step(kind: Any, rate: float) -> Measurement:
        seen.append(rate)
        return measured(tick_rate=rate, sample_on_time=1000 if rate <= 300 else 10)

    ramp = run_ramp(KINDS[0], [1000, 1500], step, [700, 500, 300, 200])
    assert seen == [1000, 700, 500, 300]
    assert ramp.best is not None and ramp.best.measurement.tick_rate == 300


def test_a_step_disturbed_by_other_programs_runs_once_more() -> None:
    seen: list[float] = []

    def step(kind: Any, rate: float) -> Measurement:
        seen.append(rate)
        noisy = len(seen) == 2
        return measured(tick_rate=rate, sample_on_time=500 if noisy else 1000,
                        other_cpu=0.9 if noisy else 0.0)

    ramp = run_ramp(KINDS[0], [1000, 2000, 3000], step)
    assert seen == [1000, 2000, 2000, 3000]
    assert [s.verdict.sustained for s in ramp.steps] == [True, False, True, True]
    assert ramp.disturbed
    assert "disturbed" in summary([ramp], Workload(), 1.0)


def test_measurement_round_trips_through_json() -> None:
    original = measured(close_codes={"1001": 1})
    data = json.loads(json.dumps(original.to_json()))
    assert Measurement.from_json(data) == original
    assert data["delivered_tps"] == 1000.0 and data["on_time_share"] == 1.0
    assert Ramp(KINDS[1], [Step.of(original)]).to_json()["capacity_tps"] == 1000.0


# -- the real thing, tiny --------------------------------------------------------------------------


def run_bench(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``ticker bench ARGS`` from this checkout, with no TICKER_* settings of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKER_")}
    env["PYTHONPATH"] = IMPORT_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "ticker", "bench", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=80 * UNIT, check=False)


@pytest.mark.e2e
@pytest.mark.timeout(int(90 * UNIT))
def test_bench_fanout_quick_runs_ours_and_a_baseline(tmp_path: Path) -> None:
    out = tmp_path / "fanout.json"
    done = run_bench(tmp_path, "fanout", "--quick", "--clients", "50", "--sample", "10",
                     "--symbols", "20", "--rates", "100,200", "--baseline-rates", "50,100",
                     "--only", "ours,batched", "--out", str(out),
                     "--log-dir", str(tmp_path / "logs"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Sustained capacity" in done.stdout and "produced/s" in done.stdout
    report = json.loads(out.read_text())
    assert report["workload"]["clients"] == 50
    servers = {server["name"]: server for server in report["servers"]}
    assert set(servers) == {"ours", "batched"}
    for name, server in servers.items():
        assert server["steps"], name
        for step in server["steps"]:
            where = f"{name} at {step['tick_rate']}: {step}"
            assert step["failure"] is None, where
            assert step["subscribed"] == 50, where
            assert step["delivered_tps"] > 0 and step["owed"] > 0, where
            # The sample holds 5 of each of the two symbol sets (clients alternate), so it is
            # owed exactly a fifth; the other 40 clients only count ticks, and must count about
            # as many per owed tick as the sample parsed.
            assert step["owed"] == 5 * step["sample_owed"], where
            assert 0.8 < step["outside_share"] < 1.2, where
            # Counted by arrival vs owed by production time: 1 s of a bursty server is rough.
            assert 0.7 < step["delivered_share"] < 1.3, where
            assert step["gaps"] == 0 and step["duplicates"] == 0, where
            assert step["disconnects"] == 0, where
            assert 0 < step["p50_ms"] <= step["p99_ms"] <= step["max_ms"] < 10_000, where
            assert step["sample_received"] <= step["sample_owed"], where
            # /proc counts in 10 ms ticks: a quiet 1 s step may show 0 %.
            assert 0 <= step["server_cpu"] < 1.5 and 0 <= step["loadgen_cpu"] < 1.5, where
        # Other programs may share this machine and spoil a step; not every step.
        best = max(server["steps"], key=lambda step: step["on_time_share"])
        assert best["on_time_share"] > 0.99 and best["p99_ms"] < 1000, best
    # The batched baseline holds each tick for its 50 ms timer: a latency far from that means
    # the clock arithmetic is wrong, not that the server got faster.
    batched = min(servers["batched"]["steps"], key=lambda step: step["p50_ms"])
    assert 5 < batched["p50_ms"] < 80 and batched["max_ms"] > 25, batched
    assert set(report["ours_ratio_to"]) == {"batched"}


@pytest.mark.e2e
@pytest.mark.timeout(int(90 * UNIT))
def test_bench_slow_alternates_steps_without_and_with_stalled_clients(tmp_path: Path) -> None:
    out = tmp_path / "slow.json"
    done = run_bench(tmp_path, "slow", "--clients", "40", "--sample", "8", "--rate", "200",
                     "--stalled", "4", "--pairs", "1", "--warmup", "1", "--measure", "1",
                     "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "p99 with stalled clients minus without" in done.stdout, done.stdout
    report = json.loads(out.read_text())
    assert [step["stalled_clients"] for step in report["steps"]] == [0, 4]
    for step in report["steps"]:
        where = f"{step['stalled_clients']} stalled: {step}"
        assert step["failure"] is None and step["subscribed"] == 40, where
        # Every stalled client got its subscription through before it stopped reading.
        assert step["stalled"] == step["stalled_clients"], where
        assert step["gaps"] == 0 and step["duplicates"] == 0 and step["disconnects"] == 0, where
        assert step["sample_owed"] > 0 and step["p99_ms"] is not None, where
    assert report["verdict"].startswith(("within noise", "costs the others")), report["verdict"]
