"""Runtime configuration: frozen dataclasses read from TOML, with TICKER_* environment overrides.

Layers, later ones winning: the packaged ``config.toml`` (the single source of every default), the
user's file, environment variables, then command-line flags. Validation is eager and strict: an
unknown key, a wrong type or an impossible value raises :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from feeds.market import MarketParams, StockSpec
from ticker.errors import ConfigError
from ticker.resources import default_config_path

Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str
    port: int
    log_level: Literal["critical", "error", "warning", "info", "debug"]
    ws_max_message_bytes: int
    transports: tuple[Literal["ws", "sse", "poll"], ...]
    allowed_origins: tuple[str, ...]
    ws_implementation: Literal["websockets-sansio", "websockets", "wsproto"]
    ws_compression: bool
    ws_ping_interval: float
    sse_keepalive: float
    send_timeout: float
    ws_send_buffer: int
    max_lag_fraction: float
    max_frame_ticks: int
    max_frame_interval: float
    max_symbols_per_connection: int
    max_connections: int
    ops_per_second: float
    ops_burst: int
    rate_limit_strikes: int
    idle_timeout: float
    feed_stall_timeout: float
    shutdown_timeout: float
    gc_thaw_interval: float
    log_format: Literal["text", "json"]

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("port", f"must be in 0..65535, got {self.port}")
        for key in ("ws_max_message_bytes", "max_frame_ticks", "max_symbols_per_connection",
                    "max_connections", "ops_burst", "rate_limit_strikes"):
            _require(key, getattr(self, key) >= 1, "must be >= 1")
        for key in ("ws_ping_interval", "sse_keepalive", "send_timeout", "shutdown_timeout",
                    "ops_per_second", "idle_timeout", "feed_stall_timeout"):
            _require(key, getattr(self, key) > 0, "must be > 0")
        _require("transports", bool(self.transports), "must name at least one transport")
        _require("ws_implementation", self.ws_implementation != "wsproto"
                 or importlib.util.find_spec("wsproto") is not None,
                 "wsproto is not installed (pip install wsproto), or choose websockets-sansio")
        _require("ws_send_buffer", self.ws_send_buffer >= 0, "must be >= 0 (0: the kernel's)")
        _require("max_frame_interval", 0 <= self.max_frame_interval <= 1, "must be 0..1 s")
        _require("max_lag_fraction", 0 < self.max_lag_fraction < 1, "must be between 0 and 1")
        _require("gc_thaw_interval", self.gc_thaw_interval >= 0, "must be >= 0 (0: no freezing)")

    @property
    def janitor_pings(self) -> bool:
        """Whether our janitor pings quiet WebSockets (ticker/transport/keepalive.py) instead of
        uvicorn pinging every one: on websockets-sansio, the one protocol it can ping through."""
        return self.ws_implementation == "websockets-sansio"


@dataclass(frozen=True, slots=True)
class HubConfig:
    snapshot_size: int
    history_size: int
    bars_kept: int

    def __post_init__(self) -> None:
        _require("snapshot_size", self.snapshot_size >= 1, "must be >= 1")
        _require("history_size", self.history_size >= self.snapshot_size,
                 f"must be >= snapshot_size ({self.snapshot_size})")
        _require("bars_kept", self.bars_kept >= 1, "must be >= 1")


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    source: str
    speed: float | Literal["max"]
    loop: bool
    start: str
    end: str

    def __post_init__(self) -> None:
        if isinstance(self.speed, float):
            _require("speed", self.speed > 0, "must be > 0 or \"max\"")


@dataclass(frozen=True, slots=True)
class RecordingsConfig:
    dir: str
    record: bool
    rotate_bytes: int
    rotate_seconds: float
    gzip: bool

    def __post_init__(self) -> None:
        _require("dir", bool(self.dir), "must name a directory")
        _require("rotate_bytes", self.rotate_bytes >= 1024, "must be >= 1024")
        _require("rotate_seconds", self.rotate_seconds >= 1, "must be >= 1")


UPSTREAMS = ("coinbase", "alpaca", "ticker")


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    coinbase_url: str
    alpaca_url: str
    reconnect_initial: float
    reconnect_max: float
    silence_timeout: float

    def __post_init__(self) -> None:
        for key in ("coinbase_url", "alpaca_url"):
            _require(key, getattr(self, key).startswith(("ws://", "wss://")),
                     "must be a ws:// or wss:// URL")
        _require("reconnect_initial", self.reconnect_initial > 0, "must be > 0")
        _require("reconnect_max", self.reconnect_max >= self.reconnect_initial,
                 f"must be >= reconnect_initial ({self.reconnect_initial})")
        _require("silence_timeout", self.silence_timeout > 0, "must be > 0")


@dataclass(frozen=True, slots=True)
class FeedConfig:
    source: str
    seed: int | Literal["random"]
    tick_rate: float
    symbols: int | Literal["universe"]
    restart_delay: float
    market: MarketParams
    universe: tuple[StockSpec, ...]
    replay: ReplayConfig
    upstream: UpstreamConfig

    @property
    def kind(self) -> str:
        """The source's name: "simulated", "replay", "coinbase", "alpaca" or "ticker"."""
        return self.source.partition(":")[0]

    @property
    def source_args(self) -> str:
        """What follows the name in ``source``: "BTC-USD,ETH-USD" in "coinbase:BTC-USD,ETH-USD"."""
        return self.source.partition(":")[2]

    def __post_init__(self) -> None:
        _require("tick_rate", self.tick_rate > 0, "must be > 0")
        kind = self.kind
        _require("source", kind in ("simulated", "replay", *UPSTREAMS),
                 f"must be \"simulated\", \"replay\", \"coinbase:PRODUCT,...\", "
                 f"\"alpaca:iex|sip[:SYMBOL,...]\" or \"ticker:ws://HOST:PORT/ws\", "
                 f"got {self.source!r}")
        _require("source", kind not in ("simulated", "replay") or self.source == kind,
                 f"{kind} takes no arguments, got {self.source!r}")
        _require("source", kind not in UPSTREAMS or bool(self.source_args),
                 f"{kind} needs arguments after \"{kind}:\" (see config.toml)")
        if kind == "replay" and not self.replay.source:
            raise ConfigError("replay.source", "must name a recording file or directory when "
                              "source = \"replay\"")
        _require("restart_delay", self.restart_delay >= 0, "must be >= 0")
        if isinstance(self.seed, int):
            _require("seed", self.seed >= 0, "must be >= 0 or \"random\"")
        if isinstance(self.symbols, int):
            _require("symbols", 1 <= self.symbols <= 100_000, "must be 1..100000 or \"universe\"")
        elif not self.universe:
            raise ConfigError("universe",
                              "is empty, so symbols = \"universe\" has nothing to trade")
        seen: set[str] = set()
        for index, stock in enumerate(self.universe):
            if stock.symbol in seen:
                raise ConfigError(f"universe[{index}].symbol", f"{stock.symbol} appears twice")
            seen.add(stock.symbol)


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    url: str
    prefix: str
    window: float
    wait_at_start: bool

    def __post_init__(self) -> None:
        scheme = self.url.partition("://")[0]
        _require("url", "://" in self.url and scheme in ("memory", "redis", "rediss", "unix"),
                 f"must be memory:// or redis://host:port/db, got {self.url!r}")
        _require("prefix", bool(self.prefix), "must not be empty")
        _require("window", self.window >= 1, "must be >= 1 (seconds)")


@dataclass(frozen=True, slots=True)
class AuthConfig:
    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        for index, token in enumerate(self.tokens):
            _require(f"tokens[{index}]", len(token) >= 16 and token.isprintable()
                     and " " not in token, "must be at least 16 printable characters, no spaces")


@dataclass(frozen=True, slots=True)
class AlpacaConfig:
    enabled: bool
    keys: tuple[str, ...]
    max_symbols: int
    max_connections_per_key: int
    auth_timeout: float

    def __post_init__(self) -> None:
        for index, pair in enumerate(self.keys):
            key, _, secret = pair.partition(":")
            _require(f"keys[{index}]", bool(key) and bool(secret),
                     "must be \"KEY:SECRET\", both non-empty")
        _require("max_symbols", self.max_symbols >= 1, "must be >= 1")
        _require("max_connections_per_key", self.max_connections_per_key >= 0,
                 "must be >= 0 (0 = no limit)")
        _require("auth_timeout", self.auth_timeout > 0, "must be > 0")


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig
    hub: HubConfig
    feed: FeedConfig
    broker: BrokerConfig
    recordings: RecordingsConfig
    auth: AuthConfig
    alpaca: AlpacaConfig

    @property
    def max_lag(self) -> int:
        """Ticks a client may fall behind on one symbol before it is closed as slow."""
        return max(1, int(self.hub.history_size * self.server.max_lag_fraction))


ENV_ALIASES = {"TICKER_HOST": ("server", "host"), "TICKER_PORT": ("server", "port")}


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read the defaults, then ``path``, then ``environ`` (TICKER_*), then ``overrides``.

    ``overrides`` maps dotted keys to values, e.g. ``{"server.port": 0, "feed.tick_rate": 500}``.
    """
    document = read_toml(default_config_path())
    if path is not None:
        document = merge(document, read_toml(Path(path)))
    document = merge(document, env_overrides(os.environ if environ is None else environ))
    for dotted, value in (overrides or {}).items():
        document = merge(document, _nest(dotted.split("."), value))
    config: Config = build(Config, document, "")
    return config


def read_toml(path: Path) -> Document:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(str(path), "file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(str(path), f"not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(str(path), f"cannot be read: {error.strerror or error}") from None


def merge(base: Document, top: Document) -> Document:
    """Tables merge key by key; any other value in ``top`` replaces the one in ``base``."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def env_overrides(environ: Mapping[str, str]) -> Document:
    """TICKER_<SECTION>_<KEY>=value, e.g. TICKER_FEED_TICK_RATE=200; values are parsed as TOML
    (so numbers and booleans work), falling back to a plain string."""
    document: Document = {}
    names: dict[str, tuple[str, str, Any]] = {}
    for section in dataclasses.fields(Config):
        section_type = typing.get_type_hints(Config)[section.name]
        for name, hint in typing.get_type_hints(section_type).items():
            names[f"TICKER_{section.name}_{name}".upper()] = (section.name, name, hint)
    for alias, (section_name, key) in ENV_ALIASES.items():
        names[alias] = names[f"TICKER_{section_name}_{key}".upper()]
    for name, (section_name, key, hint) in names.items():
        if name in environ:
            value = _env_value(environ[name], hint)
            document = merge(document, {section_name: {key: value}})
    return document


def _env_value(raw: str, hint: Any) -> Any:
    """Text fields take the variable as it is; others parse it as a TOML value."""
    if hint is str or (typing.get_origin(hint) is Literal
                       and all(isinstance(c, str) for c in typing.get_args(hint))):
        return raw
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def _nest(keys: list[str], value: Any) -> Document:
    return {keys[0]: value} if len(keys) == 1 else {keys[0]: _nest(keys[1:], value)}


# Keys that were renamed: an old config file gets told the new name, not just "unknown key".
RENAMED = {("FeedConfig", "kind"): "source"}


def build(cls: type[Any], data: Any, where: str) -> Any:
    """Check ``data`` against dataclass ``cls`` field by field and construct it."""
    if not isinstance(data, dict):
        raise ConfigError(where or "config", f"must be a table, got {_kind(data)}")
    fields = {field.name: field for field in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        renamed = RENAMED.get((cls.__name__, key))
        if renamed is not None:
            raise ConfigError(_join(where, key), f"was renamed {renamed} (same values, and more)")
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(_join(where, key), f"unknown key (known keys: {known})")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key = _join(where, name)
        if name in data:
            values[name] = _convert(hints[name], data[name], key)
        elif field.default is not dataclasses.MISSING:
            values[name] = field.default
        else:
            raise ConfigError(key, "missing")
    try:
        return cls(**values)
    except ConfigError as error:
        raise ConfigError(_join(where, error.key), error.problem) from None


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build(typing.cast(type[Any], hint), value, key)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value in choices and type(value) is type(choices[0]):
            return value
        raise ConfigError(key, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(hint):
            try:
                return _convert(option, value, key)
            except ConfigError as error:
                errors.append(error.problem)
        raise ConfigError(key, " or ".join(errors))
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(key, f"must be an array, got {_kind(value)}")
        item_hint = typing.get_args(hint)[0]
        return tuple(_convert(item_hint, item, f"{key}[{i}]") for i, item in enumerate(value))
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(key, f"must be a finite number, got {value}")
        return float(value)
    if hint in (int, str, bool) and type(value) is hint:
        return value
    expected = _TYPE_NAMES.get(hint, str(hint))
    raise ConfigError(key, f"must be {expected}, got {_kind(value)} {value!r}")


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _kind(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
             dict: "table"}
    return names.get(type(value), type(value).__name__)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where and not key.startswith("[") else f"{where}{key}"


def _require(key: str, ok: bool, problem: str) -> None:
    if not ok:
        raise ConfigError(key, problem)
