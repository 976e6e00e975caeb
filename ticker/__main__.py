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
    if args.command == "serve":
        return _serve(config)
    parser.error(f"unknown command {args.command}")
    return 2


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
    serve.add_argument("--config", metavar="PATH",
                       help="TOML config file (default: ./config.toml if present, else the "
                            "built-in defaults); it needs only the keys it changes")
    serve.add_argument("--host", help="interface to listen on (config server.host)")
    serve.add_argument("--port", type=int, help="TCP port, 0 for any free one (server.port)")
    serve.add_argument("--symbols", metavar="N|universe",
                       help="trade N synthetic symbols, or the configured universe (feed.symbols)")
    serve.add_argument("--tick-rate", type=float, metavar="R",
                       help="total trades per second across all symbols (feed.tick_rate)")
    serve.add_argument("--seed", metavar="S|random",
                       help="seed of the simulated market; the same seed repeats it (feed.seed)")
    serve.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"],
                       help="server.log_level")
    _add_bench(commands)
    return parser


def _add_bench(commands: Any) -> None:
    from ticker.bench import fanout

    bench = commands.add_parser(
        "bench", help="run a benchmark", description="Benchmarks of the server on this machine.")
    benchmarks = bench.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    fanout.add_arguments(benchmarks.add_parser(
        "fanout", help="delivered ticks/s to many subscribers, ours against three baselines",
        description=fanout.DESCRIPTION))
    bench.set_defaults(bench_parser=bench)


def _bench(args: argparse.Namespace) -> int:
    if args.benchmark == "fanout":
        from ticker.bench import fanout

        return fanout.main(args)
    args.bench_parser.print_help()
    return 2


def _config(args: argparse.Namespace) -> Config:
    path = args.config
    if path is None and Path("config.toml").is_file():
        path = "config.toml"
    overrides: dict[str, Any] = {}
    for key, value in (("server.host", args.host), ("server.port", args.port),
                       ("feed.tick_rate", args.tick_rate), ("server.log_level", args.log_level),
                       ("feed.symbols", _int_or_word(args.symbols)),
                       ("feed.seed", _int_or_word(args.seed))):
        if value is not None:
            overrides[key] = value
    return load_config(path, overrides)


def _int_or_word(value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.lstrip("-").isdigit() else value


def _serve(config: Config) -> int:
    from ticker.app import create_app
    from ticker.server import serve

    try:
        app = create_app(config)
    except TickerError as error:
        print(f"ticker: {error}", file=sys.stderr)
        return 2
    serve(app, config.server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
