"""/metrics in the Prometheus text format, read at scrape time from the plain counters in
ticker/stats.py and the hub (prometheus-client renders; nothing on the hot path takes a lock)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ticker.hub import Hub
from ticker.stats import Stats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class TickerCollector(Collector):
    def __init__(self, hub: Hub, stats: Stats, recorder_written: Callable[[], int | None]) -> None:
        self._hub = hub
        self._stats = stats
        self._recorder_written = recorder_written

    def collect(self) -> Iterator[Metric]:
        stats, hub = self._stats, self._hub
        transports = stats.transports.items()
        yield _labelled(GaugeMetricFamily("ticker_connections", "Open client connections",
                                          labels=["transport"]),
                        {name: t.connections for name, t in transports})
        yield GaugeMetricFamily("ticker_subscriptions", "Symbol subscriptions held, all clients",
                                value=hub.subscription_count())
        for name, help_text, count in (
                ("ticker_ticks_in", "Ticks the hub took in from the feed", hub.ticks_ingested),
                ("ticker_ticks_rejected",
                 "Impossible ticks (NaN, <= 0 price, negative size) dropped", stats.rejected_ticks),
                ("ticker_recording_lines_skipped",
                 "Recording lines a replay skipped (not JSON, impossible values)",
                 stats.unreadable_lines),
                ("ticker_upstream_messages_skipped",
                 "Messages of a live upstream (Coinbase, Alpaca, a relayed ticker) skipped: "
                 "malformed, out of order, not asked for", stats.upstream_skipped),
                ("ticker_keepalive_pings",
                 "Pings sent to WebSockets nothing was written to for an interval", stats.pings),
                ("ticker_keepalive_timeouts", "WebSockets closed (1011) for not answering a ping",
                 stats.unanswered_pings)):
            yield CounterMetricFamily(name, help_text, value=count)
        for name, help_text, attribute in (
                ("ticker_ticks_out", "Ticks handed to clients", "ticks"),
                ("ticker_frames_out", "Messages sent (WebSocket frames, SSE events, poll replies)",
                 "frames"),
                ("ticker_bytes_out", "Payload bytes sent", "bytes"),
                ("ticker_conflated_ticks", "Ticks skipped under max_rate for a later one",
                 "conflated")):
            yield _labelled(CounterMetricFamily(name, help_text, labels=["transport"]),
                            {transport: getattr(t, attribute) for transport, t in transports})
        yield _labelled(CounterMetricFamily("ticker_slow_client_closes",
                                            "Clients dropped for falling behind",
                                            labels=["reason"]),
                        {"lag": stats.closes[4008], "stalled": stats.stalled})
        yield _labelled(CounterMetricFamily("ticker_errors", "Error replies to clients, by code",
                                            labels=["code"]), dict(stats.errors))
        yield _labelled(CounterMetricFamily("ticker_closes",
                                            "Close frames the server sent, by code",
                                            labels=["code"]),
                        {str(code): count for code, count in stats.closes.items()})
        yield _labelled(CounterMetricFamily("ticker_handshakes_refused",
                                            "Connections refused at the handshake, by reason",
                                            labels=["reason"]), dict(stats.refused))
        written = self._recorder_written()
        if written is not None:
            yield CounterMetricFamily("ticker_recorded_ticks", "Ticks written to the recording",
                                      value=written)
        yield from stats.latency.histogram.collect()


def _labelled(family: GaugeMetricFamily | CounterMetricFamily,
              values: dict[str, int]) -> GaugeMetricFamily | CounterMetricFamily:
    for label, value in sorted(values.items()):
        family.add_metric([label], value)
    return family


def registry_for(hub: Hub, stats: Stats, recorder_written: Callable[[], int | None]
                 ) -> CollectorRegistry:
    # A registry per node (not the global one): tests run several servers in one process.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TickerCollector(hub, stats, recorder_written))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
