"""Feeds built from the config: the simulated market or a replay. Shared by `ticker serve` and
`ticker feed`."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from feeds.base import Feed
from feeds.replay import ReplayFeed
from feeds.simulated import SimulatedFeed, synthetic_universe
from ticker.config import FeedConfig

log = logging.getLogger("ticker.feed")

FeedFactory = Callable[[], Feed]


def simulated_feed_factory(config: FeedConfig) -> FeedFactory:
    seed = config.seed if isinstance(config.seed, int) else secrets.randbelow(2**31)
    stocks = (config.universe if config.symbols == "universe"
              else synthetic_universe(int(config.symbols), seed))

    def open_feed() -> Feed:
        log.info("simulated market: %d symbols, %.0f ticks/s, seed %d", len(stocks),
                 config.tick_rate, seed)
        return SimulatedFeed(stocks, config.market, config.tick_rate, seed)

    return open_feed


def replay_feed_factory(config: FeedConfig,
                        on_unreadable: Callable[[], None] | None = None) -> FeedFactory:
    """Opens the recording at once, so a bad path or range fails at start-up, not in the pump."""
    replay = config.replay

    def replay_feed() -> ReplayFeed:
        return ReplayFeed(replay.source, replay.speed, replay.loop, replay.start or None,
                          replay.end or None, on_unreadable=on_unreadable)

    first: list[Feed] = [replay_feed()]

    def open_feed() -> Feed:
        log.info("replaying %s at speed %s%s", replay.source, replay.speed,
                 ", looping" if replay.loop else "")
        return first.pop() if first else replay_feed()

    return open_feed


def feed_factory_for(config: FeedConfig,
                     on_unreadable: Callable[[], None] | None = None) -> FeedFactory:
    """``on_unreadable`` is called for each recording line a replay skips (for /metrics)."""
    if config.kind == "replay":
        return replay_feed_factory(config, on_unreadable)
    return simulated_feed_factory(config)
