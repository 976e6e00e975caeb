"""Benchmarks of the ticker server, run as ``ticker bench NAME`` (``ticker bench --help``).

``fanout``: delivered ticks/s of one server core to many subscribers, against three baselines
(``bench/baselines/``), with a load generator on the other core (``ticker.bench.loadgen``).
"""

from __future__ import annotations

__all__: list[str] = []
