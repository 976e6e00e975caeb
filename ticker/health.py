"""What /livez and /readyz answer, decided without I/O from the node's state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class NodeState:
    broker_connected: bool
    feed_started: bool
    feed_running: bool  # False once a feed ended for good (a replay without loop)
    seconds_since_tick: float | None  # None: no tick yet
    recorder_failure: str | None  # None: healthy, or not recording
    # A live feed's own word on its upstream (None: connected); it replaces the stall check,
    # as a quiet market (a weekend on Alpaca, a slow product on Coinbase) is not a fault.
    upstream_problem: str | None
    live: bool
    epoch: str
    feed: str
    connections: int


def readiness(state: NodeState, stall_timeout: float) -> tuple[bool, dict[str, Any]]:
    """Ready when the broker is connected, the feed is ticking (or ended as planned) and the
    recording, if any, is being written; otherwise the first reason it is not."""
    problems = []
    if not state.broker_connected:
        problems.append("broker unreachable")
    if not state.feed_started:
        problems.append("no feed yet")
    if state.upstream_problem is not None:
        problems.append(f"upstream away: {state.upstream_problem}")
    elif state.live:
        pass
    elif state.feed_started and state.feed_running and (state.seconds_since_tick is None
                                 or state.seconds_since_tick > stall_timeout):
        since = ("no tick yet" if state.seconds_since_tick is None
                 else f"no tick for {state.seconds_since_tick:.0f} s")
        problems.append(f"feed stalled: {since}")
    if state.recorder_failure is not None:
        problems.append(f"recording failed: {state.recorder_failure}")
    body: dict[str, Any] = {
        "status": "not ready" if problems else "ready",
        "epoch": state.epoch, "feed": state.feed, "feed_running": state.feed_running,
        "connections": state.connections,
        "seconds_since_tick": (round(state.seconds_since_tick, 3)
                               if state.seconds_since_tick is not None else None),
        "recording": "failed" if state.recorder_failure else "ok",
    }
    if problems:
        body["reason"] = "; ".join(problems)
    return not problems, body
