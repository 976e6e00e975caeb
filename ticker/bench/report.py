"""The fan-out benchmark's results: one ramp per server, its table, the summary and the JSON."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ticker.bench.measurement import (
    KERNEL,
    MAX_LOADGEN_CPU,
    MAX_P99_SPREAD_MS,
    PICOWS,
    Measurement,
    Verdict,
    judge,
)
from ticker.bench.servers import ServerKind
from ticker.bench.workload import Workload

TARGET_TPS = 2_000_000  # delivered ticks/s our server should sustain
TARGET_P50_MS = 5.0  # ... and these latencies at 10 % of its capacity
TARGET_P99_MS = 20.0
LATENCY_SOURCES = {
    KERNEL: "kernel receive time (SO_TIMESTAMPNS, CLOCK_REALTIME) of the read that completed "
            "the tick's frame, minus the tick's ts; every tick of every client",
    PICOWS: "time.time() when a sampled picows client's callback got the tick's frame, minus "
            "the tick's ts; the sample's ticks only (includes the load generator's own delay)",
}


@dataclass(frozen=True, slots=True)
class Step:
    measurement: Measurement
    verdict: Verdict

    @classmethod
    def of(cls, measurement: Measurement) -> Step:
        return cls(measurement, judge(measurement))

    def to_json(self) -> dict[str, Any]:
        return {**self.measurement.to_json(), "sustained": self.verdict.sustained,
                "trusted": self.verdict.trusted, "verdict": self.verdict.reason or "ok"}


@dataclass(slots=True)
class Ramp:
    kind: ServerKind
    steps: list[Step] = field(default_factory=list)

    @property
    def best(self) -> Step | None:
        """The sustained step with the most ticks delivered: the sustained capacity."""
        good = [s for s in self.steps if s.verdict.sustained and s.verdict.trusted]
        return max(good, key=lambda s: s.measurement.delivered_tps, default=None)

    @property
    def capacity(self) -> float:
        best = self.best
        return best.measurement.delivered_tps if best else 0.0

    @property
    def limited_by_loadgen(self) -> bool:
        return any(not s.verdict.trusted for s in self.steps)

    @property
    def disturbed(self) -> bool:
        """Some step failed while other programs, or other guests of the hypervisor (steal),
        used the cores: the capacity may be low."""
        return any(s.measurement.noisy and not s.verdict.sustained for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        best = self.best
        return {"name": self.kind.name, "title": self.kind.title,
                "capacity_tps": round(self.capacity, 1),
                "capacity_tick_rate": best.measurement.tick_rate if best else None,
                "limited_by_load_generator": self.limited_by_loadgen,
                "disturbed_by_other_programs": self.disturbed,
                "steps": [s.to_json() for s in self.steps]}


# -- the table -------------------------------------------------------------------------------------

HEADER = (f"{'produced/s':>10} {'delivered/s':>12} {'on time':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'gaps':>5} {'drops':>5} {'server':>6} {'loadgen':>7} {'p99 lo':>6} "
          f"{'other':>5} {'stolen':>6}  verdict")
# "p99 lo": kernel timestamps only, the lower bound of p99 (measurement.py): the true p99 lies
# between it and "p99 ms".


def ramp_title(kind: ServerKind, workload: Workload, latency: str = KERNEL) -> str:
    source = (f"latency from kernel receive timestamps on all {workload.clients} clients"
              if latency == KERNEL else f"latency from {workload.sample} sampled clients (picows)")
    return (f"{kind.name}: {kind.title}\n"
            f"  {workload.symbols} symbols, {workload.clients} clients x "
            f"{workload.symbols_per_client} symbols, {source}\n  {HEADER}")


def latency_json(latency: str) -> dict[str, Any]:
    """What the report's latencies are, for its JSON."""
    return {"source": latency, "definition": LATENCY_SOURCES[latency],
            "kernel_timestamps": latency == KERNEL}


def row(step: Step) -> str:
    m = step.measurement
    verdict = "ok" if step.verdict.sustained else step.verdict.reason
    if m.failure:
        return f"  {m.tick_rate:>10,.0f}  {verdict}"
    return (f"  {m.tick_rate:>10,.0f} {m.delivered_tps:>12,.0f} {m.on_time_share:>8.3%} "
            f"{_ms(m.p50_ms):>7} {_ms(m.p99_ms):>7} {_ms(m.max_ms):>7} "
            f"{m.gaps + m.duplicates:>5} {m.disconnects:>5} {_pct(m.server_cpu):>6} "
            f"{_pct(m.loadgen_cpu):>7} {_ms(m.p99_low_ms):>6} {_pct(m.other_cpu):>5} "
            f"{_pct(m.stolen_cpu):>6}  {verdict}")


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


# -- the summary -----------------------------------------------------------------------------------


def summary(ramps: Sequence[Ramp], workload: Workload, seconds: float) -> str:
    lines = [f"Sustained capacity (>= 99.9 % of owed ticks within 100 ms, p99 < 100 ms), "
             f"{workload.clients} clients x {workload.symbols_per_client} of "
             f"{workload.symbols} symbols:"]
    ours = next((r for r in ramps if r.kind.name == "ours"), None)
    for ramp in ramps:
        lines.append("  " + _capacity_line(ramp, ours))
    if ours is not None:
        lines.extend(_targets(ours, workload))
    loads = [s.measurement.loadgen_cpu for r in ramps for s in r.steps
             if s.measurement.loadgen_cpu is not None]
    if loads:
        lines.append(f"Load generator CPU: at most {max(loads):.0%} of its core "
                     f"(a failed step above {MAX_LOADGEN_CPU:.0%} is not trusted: the failure "
                     "may be the generator's).")
    lags = [s.measurement.read_lag_p99_ms for r in ramps for s in r.steps
            if s.measurement.read_lag_p99_ms is not None]
    spreads = [spread for r in ramps for s in r.steps
               if (spread := s.measurement.p99_spread_ms) is not None
               and s.measurement.latency_source == KERNEL]
    if lags and spreads:
        lines.append(f"Latency from kernel receive timestamps; the load generator read at most "
                     f"{max(lags):.1f} ms after them (p99 of a step), which left p99 uncertain "
                     f"by at most {max(spreads):.1f} ms (a failed step above "
                     f"{MAX_P99_SPREAD_MS:g} ms is not trusted; a step passes or fails on the "
                     "upper bound, p99 ms).")
    lines.append(f"Total run time: {seconds:.0f} s.")
    return "\n".join(lines)


def _capacity_line(ramp: Ramp, ours: Ramp | None) -> str:
    best = ramp.best
    if best is None:
        first = ramp.steps[0].measurement.tick_rate if ramp.steps else math.nan
        text = f"{ramp.kind.name:<10} none: not sustained even at {first:,.0f} ticks/s produced"
    else:
        m = best.measurement
        text = (f"{ramp.kind.name:<10} {m.delivered_tps:>12,.0f} ticks/s delivered "
                f"({m.tick_rate:,.0f}/s produced, p50 {_ms(m.p50_ms)} ms, p99 {_ms(m.p99_ms)} ms)")
    if ramp.limited_by_loadgen:
        text += "; at least: the load generator saturated above it"
    if ramp.disturbed:
        text += ("; other programs or the hypervisor disturbed failing steps (see 'other' and "
                 "'stolen'), so maybe more")
    if ours is not None and ramp is not ours:
        text += f"; ours is {_ratio(ours.capacity, ramp.capacity)}"
    return text


def ratio(ours: float, other: float) -> float | None:
    return ours / other if other > 0 else None


def _ratio(ours: float, other: float) -> str:
    value = ratio(ours, other)
    return "n/a" if value is None else f"{value:,.1f}x"


def at_tenth(ours: Ramp) -> Step | None:
    """Our good step nearest to 10 % of our capacity (in delivered ticks/s), if one is within a
    factor of two of it."""
    if ours.capacity <= 0:
        return None
    target = ours.capacity / 10
    distances = [(abs(math.log(s.measurement.delivered_tps / target)), s)
                 for s in ours.steps if s.verdict.sustained and s.measurement.delivered_tps > 0]
    distance, nearest = min(distances, key=lambda pair: pair[0], default=(math.inf, None))
    return nearest if distance <= math.log(2) else None


def nominal_tps(tick_rate: float, workload: Workload) -> float:
    """Ticks/s a step owes its clients if every symbol trades at the mean rate; what it owes in
    fact depends on which symbols the clients drew, as the market's symbols trade unevenly."""
    return tick_rate * workload.clients * workload.symbols_per_client / workload.symbols


def _targets(ours: Ramp, workload: Workload) -> list[str]:
    best = ours.best
    nominal = nominal_tps(best.measurement.tick_rate, workload) if best else 0.0
    lines = [f"Target >= {TARGET_TPS:,} delivered ticks/s: "
             + ("met" if nominal >= TARGET_TPS else "not met")
             + (f" (sustained at {best.measurement.tick_rate:,.0f} produced/s: {nominal:,.0f} "
                f"nominal, {best.measurement.owed_tps:,.0f} owed to these clients, "
                f"{best.measurement.delivered_tps:,.0f} delivered)" if best else "")]
    tenth = at_tenth(ours)
    if tenth is None and ours.capacity > 0:
        lines.append("At ~10 % of capacity: no step ran near there.")
    if tenth is not None:
        m = tenth.measurement
        met = ((m.p50_ms or math.inf) < TARGET_P50_MS and (m.p99_ms or math.inf) < TARGET_P99_MS)
        lines.append(f"At ~10 % of capacity ({m.delivered_tps:,.0f} delivered/s): p50 "
                     f"{_ms(m.p50_ms)} ms, p99 {_ms(m.p99_ms)} ms (target p50 < "
                     f"{TARGET_P50_MS:g} ms, p99 < {TARGET_P99_MS:g} ms: "
                     f"{'met' if met else 'not met'})")
    return lines


def to_json(ramps: Sequence[Ramp], workload: Workload, extra: dict[str, Any]) -> dict[str, Any]:
    ours = next((r for r in ramps if r.kind.name == "ours"), None)
    ratios = {r.kind.name: ratio(ours.capacity, r.capacity)
              for r in ramps if ours is not None and r is not ours}
    tenth = at_tenth(ours) if ours is not None else None
    return {"benchmark": "fanout", "workload": workload.to_json(),
            "criteria": {"on_time_ms": 100, "min_on_time_share": 0.999, "max_p99_ms": 100,
                         "max_loadgen_cpu": MAX_LOADGEN_CPU,
                         "max_p99_spread_ms": MAX_P99_SPREAD_MS},
            **extra,
            "servers": [r.to_json() for r in ramps],
            "ours_ratio_to": ratios,
            "ours_at_tenth_of_capacity": tenth.to_json() if tenth else None}


__all__ = ["HEADER", "LATENCY_SOURCES", "Ramp", "Step", "at_tenth", "latency_json", "ramp_title",
           "ratio", "row", "summary", "to_json"]
