"""One ramp step's numbers, as the load generator measured them, and the "sustained" verdict.

Definitions (field notes, "Fan-out speed"): a step is sustained when at least 99.9 % of the owed
ticks were delivered on time (within 100 ms of the feed's ``ts``) and p99 latency is under 100 ms.
We also require no gap, no duplicate and no dropped client. Where latency comes from
(``latency_source``): "kernel" (the default load generator, ``ticker.bench.kernel_loadgen``)
stamps every frame of every client with the kernel's receive time; "picows"
(``ticker.bench.loadgen``) parses a sample of clients and stamps a frame when its Python callback
ran, so it also requires that the other clients received as much per owed tick as the sample did
(within 1 %).

The load generator must not be the bottleneck: a step whose generator used more than 80 % of its
core measured the generator, not the server: it is flagged rather than judged. With kernel
timestamps, so is a step where the generator read too coarsely to place p99 within 5 ms (a read
stamps every frame in it with its last segment's arrival; ``p99_low_ms`` is p99 with each frame
that may have come earlier moved back to the socket's previous read, so the true p99 lies
between the two), or that got reads without a kernel timestamp.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MIN_ON_TIME = 0.999
MAX_P99_MS = 100.0
MIN_OUTSIDE_SHARE = 0.99  # ticks per owed tick outside the sample, relative to the sample
MAX_LOADGEN_CPU = 0.8
MAX_P99_SPREAD_MS = 5.0  # p99 minus its lower bound (kernel timestamps): more, and it is blurred
KERNEL = "kernel"  # latency from SO_TIMESTAMPNS receive times, every frame of every client
PICOWS = "picows"  # latency from a sampled client's callback time (time.time())
NOISY_CPU = 0.25  # other programs using more than this (in cores) make a step worth repeating
NOISY_STEAL = 0.1  # so does the hypervisor taking more than this (in cores) for other guests


@dataclass(slots=True)
class Measurement:
    tick_rate: float  # ticks/s the server's feed produces, across all symbols
    clients: int
    subscribed: int  # clients that got "subscribed" before the warm-up
    # The window's length: picows, the wall time between the two counter readings; kernel, the
    # window itself, as arrivals are placed in it by their kernel stamps.
    window_s: float = 0.0
    delivered: int = 0  # ticks received by all clients in the window (picows: counted, not parsed)
    sample_delivered: int = 0  # the part of ``delivered`` the sampled clients received
    frames: int = 0
    owed: int = 0  # ticks all clients were owed for the window: per symbol span x subscribers
    owed_tps: float = 0.0  # owed over the window's length (in tick time)
    uncovered_symbols: int = 0  # symbols with subscribers but no sampled one (owed estimated)
    sample_clients: int = 0  # clients whose ticks are parsed: all of them with kernel stamps
    sample_owed: int = 0
    sample_received: int = 0
    sample_on_time: int = 0
    latency_source: str = PICOWS  # KERNEL or PICOWS (older JSON: picows)
    min_ms: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    gaps: int = 0
    duplicates: int = 0
    disconnects: int = 0  # of the measured clients (stalled ones are expected to be dropped)
    stalled: int = 0  # stalled clients (Workload.stalled) that subscribed, then stopped reading
    close_codes: dict[str, int] = field(default_factory=dict)
    errors: int = 0  # "error" messages from the server
    freshest_lag_ms: float | None = None  # window end minus the newest ts seen by then
    server_cpu: float | None = None  # of one core, over the window
    loadgen_cpu: float | None = None
    other_cpu: float | None = None  # other programs on the machine, in cores: noise
    stolen_cpu: float | None = None  # taken by the hypervisor for other guests, in cores: noise
    # Kernel timestamps only: p50 and p99 with each frame that may have arrived before its read's
    # last segment placed at the socket's previous read instead (lower bounds), how many frames
    # that concerned, the generator's reads in the window, how long after the kernel's stamp each
    # returned, reads that carried no stamp, and the time to decode after the window.
    p50_low_ms: float | None = None
    p99_low_ms: float | None = None
    early_frames: int = 0
    reads: int = 0
    read_lag_p50_ms: float | None = None
    read_lag_p99_ms: float | None = None
    read_lag_max_ms: float | None = None
    untimestamped_reads: int = 0
    digest_s: float | None = None
    failure: str | None = None  # the step could not be measured at all

    @property
    def delivered_tps(self) -> float:
        return self.delivered / self.window_s if self.window_s > 0 else 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.window_s if self.window_s > 0 else 0.0

    @property
    def outside_share(self) -> float | None:
        """Ticks received per owed tick by the clients outside the sample, relative to the
        sample's; None when every client is sampled."""
        others_owed = self.owed - self.sample_owed
        if others_owed <= 0 or self.sample_owed <= 0 or self.sample_delivered <= 0:
            return None
        others = (self.delivered - self.sample_delivered) / others_owed
        return others / (self.sample_delivered / self.sample_owed)

    @property
    def p99_spread_ms(self) -> float | None:
        """How far the true p99 may lie below the reported one (kernel timestamps)."""
        if self.p99_ms is None or self.p99_low_ms is None:
            return None
        return self.p99_ms - self.p99_low_ms

    @property
    def noisy(self) -> bool:
        return ((self.other_cpu is not None and self.other_cpu > NOISY_CPU)
                or (self.stolen_cpu is not None and self.stolen_cpu > NOISY_STEAL))

    @property
    def on_time_share(self) -> float:
        return self.sample_on_time / self.sample_owed if self.sample_owed else 0.0

    @property
    def delivered_share(self) -> float:
        """Delivered over owed, both as rates: the first is counted by arrival time."""
        return self.delivered_tps / self.owed_tps if self.owed else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(delivered_tps=round(self.delivered_tps, 1),
                    frames_per_s=round(self.frames_per_s, 1),
                    on_time_share=round(self.on_time_share, 6),
                    delivered_share=round(self.delivered_share, 6),
                    outside_share=_round(self.outside_share, 6))
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        names = cls.__dataclass_fields__
        return cls(**{key: value for key, value in data.items() if key in names})


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True, slots=True)
class Verdict:
    sustained: bool
    trusted: bool  # False: the load generator was saturated, so the numbers are its own
    reason: str  # why not sustained (or not trusted); "" when sustained and trusted


def judge(step: Measurement) -> Verdict:
    """Sustained when the step passes on its measured numbers. Every latency is an upper bound
    (a late read, or a busy load generator, only makes a tick look later: the kernel stamped its
    arrival, or the callback ran, no earlier than it came), and the delivered count is of kernel
    arrivals, so a step that passes passed however busy the generator was. A step that fails
    while the generator was saturated is not trusted: the failure may be the generator's."""
    problems = _blind(step) + _problems(step)
    if not problems:
        return Verdict(True, True, "")
    saturated = _saturated(step)
    return Verdict(False, not saturated, "; ".join(saturated + problems))


def _blind(step: Measurement) -> list[str]:
    """Reads the latencies could not see: the upper bounds do not cover them."""
    if step.untimestamped_reads:
        return [f"{step.untimestamped_reads} reads without a kernel timestamp"]
    return []


def _saturated(step: Measurement) -> list[str]:
    """Why the load generator, not the server, may have been the bottleneck."""
    reasons = []
    if step.loadgen_cpu is not None and step.loadgen_cpu > MAX_LOADGEN_CPU:
        reasons.append(f"load generator at {step.loadgen_cpu:.0%} of its core")
    spread = step.p99_spread_ms
    if spread is not None and spread > MAX_P99_SPREAD_MS:
        reasons.append(f"load generator read too coarsely: p99 between {step.p99_low_ms:.1f} "
                       f"and {step.p99_ms:.1f} ms")
    return reasons


def _problems(step: Measurement) -> list[str]:
    if step.failure:
        return [step.failure]
    problems = []
    if step.sample_owed == 0:
        problems.append("no tick in the window")
    elif step.on_time_share < MIN_ON_TIME:
        problems.append(f"{step.on_time_share:.2%} on time")
    if step.p99_ms is not None and step.p99_ms >= MAX_P99_MS:
        problems.append(f"p99 {step.p99_ms:.0f} ms")
    if step.gaps or step.duplicates:
        problems.append(f"{step.gaps} gaps, {step.duplicates} duplicates")
    if step.disconnects:
        codes = ", ".join(f"{code} x{count}" for code, count in sorted(step.close_codes.items()))
        problems.append(f"{step.disconnects} clients dropped" + (f" ({codes})" if codes else ""))
    outside = step.outside_share
    if outside is not None and outside < MIN_OUTSIDE_SHARE:
        problems.append(f"clients outside the sample got {outside:.1%} of the sample's ticks")
    return problems


__all__ = ["KERNEL", "MAX_LOADGEN_CPU", "MAX_P99_MS", "MAX_P99_SPREAD_MS", "MIN_ON_TIME",
           "NOISY_CPU", "NOISY_STEAL", "PICOWS", "Measurement", "Verdict", "judge"]
