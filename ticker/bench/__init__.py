"""Benchmarks of the ticker server, run as ``ticker bench NAME`` (``ticker bench --help``).

``fanout``: delivered ticks/s of one server core to many subscribers, against three baselines
(``bench/baselines/``), with a load generator on the other core (``ticker.bench.loadgen``).
``connections``: connections held and memory per connection. ``transports``: short polling,
long polling, SSE and WebSocket side by side. ``replay``: replay pacing error.
"""

from __future__ import annotations

import argparse

__all__ = ["command_options"]


def command_options(args: argparse.Namespace) -> dict[str, object]:
    """A command's own options for its JSON output (argparse also carries the CLI's parsers)."""
    return {k: v for k, v in vars(args).items() if isinstance(v, str | int | float | bool)}
