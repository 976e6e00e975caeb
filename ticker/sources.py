"""Feeds built from the config (``feed.source``): the simulated market, a replay, or a live
upstream. Shared by `ticker serve` and `ticker feed`."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Mapping

from feeds.base import Feed
from feeds.replay import ReplayFeed
from feeds.simulated import SimulatedFeed, synthetic_universe
from ticker.client.backoff import Backoff
from ticker.config import FeedConfig
from ticker.errors import ConfigError
from ticker.model import SymbolInfo

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


def upstream_feed_factory(config: FeedConfig, on_skip: Callable[[], None] | None = None,
                          environ: Mapping[str, str] | None = None) -> FeedFactory:
    """A live upstream; its arguments and credentials are checked now, so a typo fails at
    start-up with the key to fix, not later in the pump."""
    from feeds.live.base import LiveFeed

    environ = os.environ if environ is None else environ
    upstream = config.upstream
    args = config.source_args
    if config.kind == "ticker":
        from feeds.live.relay import RelayFeed, redacted

        token = environ.get("TICKER_RELAY_TOKEN") or None
        RelayFeed.check_url(args)

        def open_relay() -> Feed:
            log.info("relaying %s", redacted(args))
            return RelayFeed(args, token, upstream.reconnect_initial, upstream.reconnect_max,
                             on_skip)

        return open_relay
    if config.kind == "coinbase":
        from feeds.live.coinbase import CoinbaseUpstream, parse_products

        products = parse_products(args)

        def open_coinbase() -> Feed:
            return LiveFeed(CoinbaseUpstream(products, upstream.coinbase_url,
                                             upstream.silence_timeout),
                            Backoff(upstream.reconnect_initial, upstream.reconnect_max), on_skip)

        return open_coinbase
    from feeds.live.alpaca import AlpacaUpstream, parse_alpaca_source

    stream, symbols = parse_alpaca_source(args, _universe_infos(config))
    key, secret = environ.get("APCA_API_KEY_ID", ""), environ.get("APCA_API_SECRET_KEY", "")
    if not key or not secret:
        raise ConfigError("feed.source", f"{config.source!r} needs APCA_API_KEY_ID and "
                          "APCA_API_SECRET_KEY in the environment (never in a file)")

    def open_alpaca() -> Feed:
        # No silence timeout: Alpaca sends nothing while the market is closed (a reconnect each
        # time would reset every client); WebSocket pings tell a dead connection.
        return LiveFeed(AlpacaUpstream(stream, symbols, upstream.alpaca_url, key, secret, None),
                        Backoff(upstream.reconnect_initial, upstream.reconnect_max), on_skip)

    return open_alpaca


def _universe_infos(config: FeedConfig) -> tuple[SymbolInfo, ...]:
    """The configured universe's names and sectors (no reference price: that is the market's)."""
    return tuple(SymbolInfo(stock.symbol, stock.name, stock.sector) for stock in config.universe)


def feed_factory_for(config: FeedConfig, on_unreadable: Callable[[], None] | None = None,
                     on_skip: Callable[[], None] | None = None) -> FeedFactory:
    """``on_unreadable`` is called for each recording line a replay skips, ``on_skip`` for each
    upstream message a live feed skips (both for /metrics)."""
    if config.kind == "replay":
        return replay_feed_factory(config, on_unreadable)
    if config.kind == "simulated":
        return simulated_feed_factory(config)
    return upstream_feed_factory(config, on_skip)
