"""The ``ticker`` command (also ``python -m ticker``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ticker import __version__
from ticker.config import Config, load_config
from ticker.errors import TickerError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "bench":
        return _bench(args)
    try:
        config = _config(args)
    except TickerError as error:
        print(f"ticker: {error}", file=sys.stderr)
        return 2
    try:
        if args.command == "serve":
            return _serve(config, args.workers or 1, argv)
        if args.command == "feed":
            from ticker.feed_process import run

            return run(config)
        if args.command == "record":
            from ticker.offline import record

            return record(config, args.out, args.duration, _symbol_list(args.only), args.fast)
        if args.command == "import":
            from ticker.offline import import_

            return import_(args.source, args.out, args.skip_bad, args.symbol, args.dayfirst)
    except (TickerError, ValueError, OSError) as error:
        print(f"ticker: {error}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command}")
    return 2


def _symbol_list(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    return tuple(part.strip().upper() for part in text.split(",") if part.strip())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ticker",
        description="A live stock-ticker server: a simulated market streamed over WebSocket to "
                    "a browser dashboard and to programs that subscribe by symbol.")
    parser.add_argument("--version", action="version", version=f"ticker {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="run the server with the dashboard",
        description="Run the server: the feed, the hub, the WebSocket endpoint /ws, the REST API "
                    "and the dashboard at /. Flags override the config file and TICKER_* "
                    "environment variables.")
    serve.add_argument("--host", help="interface to listen on (config server.host)")
    serve.add_argument("--port", type=int, help="TCP port, 0 for any free one (server.port)")
    serve.add_argument("--workers", type=int, metavar="N",
                       help="run N server processes on the one port (needs a redis:// broker)")
    _feed_flags(serve)

    feed = commands.add_parser(
        "feed", help="run only the feed, publishing to a Redis broker for server nodes",
        description="Run the feed (simulated, or a replay) as its own process and publish every "
                    "tick to the broker; any number of `ticker serve --broker redis://...` "
                    "nodes relay it to clients.")
    _feed_flags(feed)

    record = commands.add_parser(
        "record", help="record the simulated market to a file, without a server",
        description="Record the simulated market to a recording file (JSON Lines; .gz names "
                    "are gzip-compressed), in real time or, with --fast, in simulated time.")
    record.add_argument("--config", metavar="PATH", help="TOML config file (as for serve)")
    record.add_argument("--out", required=True, metavar="FILE", help="recording to write")
    record.add_argument("--duration", default="60s",
                        help="how much market time to record: 90, 60s, 5m, 1h30m (default 60s)")
    record.add_argument("--symbols", dest="only", metavar="SYM,SYM",
                        help="only these symbols of the universe (default: all)")
    record.add_argument("--universe", dest="symbols", metavar="N|universe",
                        help="trade N synthetic symbols instead of the configured universe")
    record.add_argument("--seed", metavar="S", help="seed of the simulated market (feed.seed)")
    record.add_argument("--tick-rate", type=float, metavar="R", help="feed.tick_rate")
    record.add_argument("--fast", action="store_true",
                        help="produce the same ticks as fast as possible (simulated time)")

    importer = commands.add_parser(
        "import", help="turn a CSV of real price history into a recording",
        description="Turn real price history into a recording. The layout is detected: long "
                    "(time, symbol, price[, size]), wide (time + one price column per symbol) "
                    "or OHLC(V) bars. Times may be ISO 8601, Unix seconds or milliseconds, or "
                    "written dates such as 'Jan 1 2000'.")
    importer.add_argument("source", metavar="FILE.csv")
    importer.add_argument("--out", required=True, metavar="REC",
                          help="recording to write (.jsonl or .jsonl.gz)")
    importer.add_argument("--skip-bad", action="store_true",
                          help="skip bad rows (and report them) instead of stopping at the first")
    importer.add_argument("--symbol", help="the symbol, for an OHLC file without a symbol column "
                                           "(default: from the file name)")
    importer.add_argument("--dayfirst", action="store_true", default=None,
                          help="read ambiguous dates like 01/02/2000 as day/month")
    _add_bench(commands)
    return parser


def _feed_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH",
                        help="TOML config file (default: ./config.toml if present, else the "
                             "built-in defaults); it needs only the keys it changes")
    parser.add_argument("--broker", metavar="URL",
                        help="memory:// (default) or redis://host:port/db (broker.url)")
    parser.add_argument("--feed", metavar="NAME[:ARGS]",
                        help="where ticks come from (feed.source): simulated (default), "
                             "coinbase:BTC-USD,ETH-USD (the real market, no account), "
                             "alpaca:iex or alpaca:sip[:SYM,...] (keys from APCA_API_KEY_ID and "
                             "APCA_API_SECRET_KEY), ticker:ws://HOST:PORT/ws (relay a ticker "
                             "server)")
    parser.add_argument("--symbols", metavar="N|universe",
                        help="trade N synthetic symbols, or the configured universe (feed.symbols)")
    parser.add_argument("--tick-rate", type=float, metavar="R",
                        help="total trades per second across all symbols (feed.tick_rate)")
    parser.add_argument("--seed", metavar="S|random",
                        help="seed of the simulated market; the same seed repeats it (feed.seed)")
    parser.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"],
                        help="server.log_level")
    parser.add_argument("--record", metavar="DIR",
                        help="record every published tick into DIR, rotating files by size and "
                             "by the hour (recordings.dir, recordings.record)")
    parser.add_argument("--replay", metavar="FILE|DIR",
                        help="serve a recording as the feed instead of the simulated market "
                             "(feed.source = replay, feed.replay.source)")
    parser.add_argument("--speed", metavar="X|max",
                        help="replay speed: 10 = ten times faster, max = as fast as possible")
    parser.add_argument("--loop", action="store_true", default=None,
                        help="start the replay over at its end, each pass a new epoch")
    parser.add_argument("--from", dest="start", metavar="TIME",
                        help="replay from TIME (Unix ms or ISO 8601)")
    parser.add_argument("--to", dest="end", metavar="TIME", help="replay up to TIME")


BENCHMARKS = {
    "fanout": "delivered ticks/s to many subscribers, ours against three baselines",
    "cost": "server CPU per delivered tick and per frame, from 100 to 10,000 clients",
    "connections": "subscribed connections one process holds, and memory per connection",
    "transports": "short polling, long polling, SSE and WebSocket side by side",
    "nodes": "one server node against two, sharing one feed through Redis",
    "replay": "how closely a replay keeps the recorded timing",
    "slow": "what clients that stop reading cost everyone else",
}


def _benchmark(name: str) -> Any:
    """The module of ``ticker bench NAME``; each has DESCRIPTION, add_arguments() and main()."""
    import importlib

    module = "replay_pacing" if name == "replay" else name
    return importlib.import_module(f"ticker.bench.{module}")


def _add_bench(commands: Any) -> None:
    bench = commands.add_parser(
        "bench", help="run a benchmark", description="Benchmarks of the server on this machine.")
    benchmarks = bench.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    for name, summary in BENCHMARKS.items():
        module = _benchmark(name)
        module.add_arguments(benchmarks.add_parser(name, help=summary,
                                                   description=module.DESCRIPTION))
    bench.set_defaults(bench_parser=bench)


def _bench(args: argparse.Namespace) -> int:
    if args.benchmark in BENCHMARKS:
        return int(_benchmark(args.benchmark).main(args))
    args.bench_parser.print_help()
    return 2


def _config(args: argparse.Namespace) -> Config:
    path = getattr(args, "config", None)
    if path is None and Path("config.toml").is_file():
        path = "config.toml"
    flags = vars(args)
    overrides: dict[str, Any] = {}
    for key, value in (("server.host", flags.get("host")), ("server.port", flags.get("port")),
                       ("feed.tick_rate", flags.get("tick_rate")),
                       ("server.log_level", flags.get("log_level")),
                       ("feed.symbols", _int_or_word(flags.get("symbols"))),
                       ("feed.seed", _int_or_word(flags.get("seed"))),
                       ("feed.replay.speed", _speed(flags.get("speed"))),
                       ("feed.replay.loop", flags.get("loop")),
                       ("feed.replay.start", flags.get("start")),
                       ("feed.replay.end", flags.get("end")),
                       ("broker.url", flags.get("broker")),
                       ("feed.source", flags.get("feed"))):
        if value is not None:
            overrides[key] = value
    if flags.get("replay"):
        overrides["feed.source"] = "replay"
        overrides["feed.replay.source"] = flags["replay"]
    if flags.get("record"):
        overrides["recordings.record"] = True
        overrides["recordings.dir"] = flags["record"]
    return load_config(path, overrides)


def _speed(value: str | None) -> float | str | None:
    if value is None or value.strip().lower() == "max":
        return value and "max"
    try:
        return float(value.strip().lower().rstrip("x"))
    except ValueError:
        return value  # the config check names it


def _int_or_word(value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.lstrip("-").isdigit() else value


def _serve(config: Config, workers: int, argv: list[str] | None) -> int:
    from ticker.app import create_app
    from ticker.server import serve, serve_workers

    relay_only = not config.broker.url.startswith("memory://")
    if relay_only:
        _check_broker(config)
    if workers > 1:
        if not relay_only:
            print("ticker: --workers needs a shared broker: add --broker redis://host:port/db "
                  "and run `ticker feed` with the same broker", file=sys.stderr)
            return 2
        return serve_workers(config, workers, sys.argv[1:] if argv is None else argv)
    app = create_app(config, run_feed_here=not relay_only)
    serve(app, config.server)
    return 0


def _check_broker(config: Config) -> None:
    """Reach the broker before starting the server, so an unreachable Redis is one clear line
    (or, with broker.wait_at_start, a wait) rather than a failed start-up with a traceback."""
    import asyncio
    import logging.config

    from ticker.brokers import broker_from_url
    from ticker.logs import log_config

    logging.config.dictConfig(log_config(config.server.log_level, config.server.log_format))

    async def reach() -> None:
        broker = broker_from_url(config.broker.url, config.broker.prefix, config.broker.window,
                                 config.broker.wait_at_start)
        await broker.connect()
        await broker.disconnect()

    asyncio.run(reach())


if __name__ == "__main__":
    sys.exit(main())
