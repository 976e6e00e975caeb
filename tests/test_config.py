"""ticker.config.load_config: the packaged defaults, a user's file on top, TICKER_* environment
variables and dotted overrides, and one ConfigError naming the full key for every bad input."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from feeds.market import StockSpec
from ticker.config import Config, load_config
from ticker.errors import ConfigError, TickerError

NO_ENV: dict[str, str] = {}


def write(tmp_path: Path, text: str, name: str = "mine.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path | None = None, *, overrides: Mapping[str, Any] | None = None,
                 environ: Mapping[str, str] = NO_ENV) -> ConfigError:
    """Run load_config and return the single ConfigError it must raise."""
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides, environ)
    error = caught.value
    assert type(error) is ConfigError
    assert isinstance(error, TickerError)
    return error


def assert_names_key(error: ConfigError, key: str) -> None:
    assert error.key == key, f"expected key {key!r}, got {error.key!r} ({error})"
    assert str(error).startswith(f"config error: {key}: "), str(error)
    assert "\n" not in str(error), repr(str(error))


# -- defaults --------------------------------------------------------------------------------------


def test_defaults_load() -> None:
    config = load_config(environ=NO_ENV)
    assert isinstance(config, Config)
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 8000
    assert config.server.log_level == "info"
    assert config.hub.snapshot_size == 100
    assert config.hub.history_size == 10000
    assert config.feed.kind == "simulated"
    assert config.feed.seed == "random"
    assert config.feed.symbols == "universe"
    assert config.feed.tick_rate == 100.0
    assert isinstance(config.feed.tick_rate, float)
    assert config.broker.url == "memory://"
    assert config.feed.market.market_share + config.feed.market.sector_share < 1


def test_config_is_frozen() -> None:
    config = load_config(environ=NO_ENV)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server.port = 1  # type: ignore[misc]


def test_default_universe_is_about_twenty_distinct_stocks_in_real_sectors() -> None:
    universe = load_config(environ=NO_ENV).feed.universe
    assert 15 <= len(universe) <= 30
    assert all(isinstance(stock, StockSpec) for stock in universe)
    symbols = [stock.symbol for stock in universe]
    assert len(set(symbols)) == len(symbols), Counter(symbols).most_common(3)
    assert {"AAPL", "MSFT", "JPM"} <= set(symbols)
    sectors = Counter(stock.sector for stock in universe)
    assert len(sectors) >= 3
    lonely = {sector: n for sector, n in sectors.items() if n < 2}
    assert not lonely, f"sectors with a single stock cannot show sector correlation: {lonely}"


# -- a user's file ---------------------------------------------------------------------------------


def test_user_file_overlays_only_the_keys_it_sets(tmp_path: Path) -> None:
    defaults = load_config(environ=NO_ENV)
    mine = load_config(write(tmp_path, "[server]\nport = 9001\n"), environ=NO_ENV)
    assert mine.server.port == 9001
    assert defaults.server.port != 9001
    assert mine.server == dataclasses.replace(defaults.server, port=9001)
    assert mine.hub == defaults.hub
    assert mine.feed == defaults.feed
    assert mine.feed.universe == defaults.feed.universe
    assert mine.broker == defaults.broker


def test_user_file_merges_nested_tables_key_by_key(tmp_path: Path) -> None:
    defaults = load_config(environ=NO_ENV)
    path = write(tmp_path, "[feed.market]\nvol_of_vol = 0.0\n")
    mine = load_config(path, environ=NO_ENV)
    assert mine.feed.market.vol_of_vol == 0.0
    assert mine.feed.market == dataclasses.replace(defaults.feed.market, vol_of_vol=0.0)
    assert mine.feed.universe == defaults.feed.universe


def test_user_universe_replaces_the_default_one(tmp_path: Path) -> None:
    path = write(tmp_path, """
[[feed.universe]]
symbol = "ABC"
name = "Abc Corp."
sector = "Tech"
price = 10.0
volatility = 0.2
""")
    universe = load_config(path, environ=NO_ENV).feed.universe
    assert universe == (StockSpec("ABC", "Abc Corp.", "Tech", 10.0, 0.2, 1.0),)


def test_path_may_be_a_string(tmp_path: Path) -> None:
    path = write(tmp_path, "[hub]\nsnapshot_size = 7\n")
    assert load_config(str(path), environ=NO_ENV).hub.snapshot_size == 7


# -- every bad input: one ConfigError naming the full dotted key ---------------------------------


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        pytest.param("[server]\nprot = 8000\n", "server.prot", id="unknown-key"),
        pytest.param("[feed.market]\nvolatility = 0.2\n", "feed.market.volatility",
                     id="unknown-nested-key"),
        pytest.param("[serverr]\nport = 8000\n", "serverr", id="unknown-section"),
        pytest.param("port = 8000\n", "port", id="top-level-key"),
        pytest.param("server = 5\n", "server", id="section-not-a-table"),
        pytest.param('[server]\nport = "x"\n', "server.port", id="port-string"),
        pytest.param("[server]\nport = 80.0\n", "server.port", id="port-float"),
        pytest.param("[server]\nport = true\n", "server.port", id="port-bool"),
        pytest.param("[hub]\nsnapshot_size = 1.5\n", "hub.snapshot_size", id="int-as-float"),
        pytest.param("[server]\nhost = 127\n", "server.host", id="host-int"),
        pytest.param("[server]\nws_compression = 1\n", "server.ws_compression", id="bool-int"),
        pytest.param('[server]\nlog_level = "loud"\n', "server.log_level", id="log-level-word"),
        pytest.param('[server]\nlog_level = "INFO"\n', "server.log_level", id="log-level-case"),
        pytest.param("[feed]\ntick_rate = true\n", "feed.tick_rate", id="float-bool"),
        pytest.param('[feed]\ntick_rate = "fast"\n', "feed.tick_rate", id="float-string"),
        pytest.param('[feed]\nseed = "fixed"\n', "feed.seed", id="seed-word"),
        pytest.param("[feed]\nseed = 1.5\n", "feed.seed", id="seed-float"),
        pytest.param('[feed]\nsymbols = "all"\n', "feed.symbols", id="symbols-word"),
        pytest.param('[feed]\nkind = "replay"\n', "feed.kind", id="feed-kind-renamed"),
        pytest.param('[feed]\nsource = "live"\n', "feed.source", id="feed-source-unknown"),
        pytest.param('[feed]\nsource = "coinbase"\n', "feed.source", id="coinbase-no-products"),
        pytest.param('[feed]\nsource = "simulated:fast"\n', "feed.source", id="simulated-args"),
        pytest.param('[feed.upstream]\ncoinbase_url = "https://x"\n', "feed.upstream.coinbase_url",
                     id="upstream-url-not-ws"),
        pytest.param('[feed]\nsource = "replay"\n', "feed.replay.source", id="replay-no-source"),
        pytest.param('[feed]\nuniverse = "AAPL"\n', "feed.universe", id="universe-not-array"),
        pytest.param("[feed]\nuniverse = [1]\n", "feed.universe[0]", id="universe-item-scalar"),
        pytest.param("[server]\nport = 70000\n", "server.port", id="port-too-big"),
        pytest.param("[server]\nport = -1\n", "server.port", id="port-negative"),
        pytest.param("[server]\nmax_frame_ticks = 0\n", "server.max_frame_ticks",
                     id="frame-ticks-0"),
        pytest.param("[server]\nmax_lag_fraction = 1.0\n", "server.max_lag_fraction",
                     id="lag-beyond-history"),
        pytest.param("[server]\nsend_timeout = 0\n", "server.send_timeout", id="timeout-0"),
        pytest.param("[hub]\nhistory_size = 50\n", "hub.history_size",
                     id="history-below-snapshot"),
        pytest.param("[hub]\nsnapshot_size = 0\n", "hub.snapshot_size", id="snapshot-0"),
        pytest.param("[hub]\nbars_kept = 0\n", "hub.bars_kept", id="bars-0"),
        pytest.param("[feed]\ntick_rate = -5\n", "feed.tick_rate", id="tick-rate-negative"),
        pytest.param("[feed]\ntick_rate = 0\n", "feed.tick_rate", id="tick-rate-0"),
        pytest.param("[feed]\ntick_rate = nan\n", "feed.tick_rate", id="tick-rate-nan"),
        pytest.param("[feed]\nrestart_delay = -1\n", "feed.restart_delay", id="restart-negative"),
        pytest.param("[feed]\nseed = -1\n", "feed.seed", id="seed-negative"),
        pytest.param("[feed]\nsymbols = 0\n", "feed.symbols", id="symbols-0"),
        pytest.param("[feed]\nsymbols = 100001\n", "feed.symbols", id="symbols-too-many"),
        pytest.param("[feed]\nuniverse = []\n", "feed.universe", id="universe-empty"),
        pytest.param('[broker]\nurl = "kafka://localhost"\n', "broker.url", id="broker-url"),
        pytest.param("[feed.market]\nmarket_share = 1.0\n", "feed.market.market_share",
                     id="market-share-1"),
        pytest.param("[feed.market]\nsector_share = -0.1\n", "feed.market.sector_share",
                     id="sector-share-negative"),
        pytest.param("[feed.market]\nspread_bps = 0\n", "feed.market.spread_bps",
                     id="spread-0"),
        pytest.param("[feed.market]\njump_size = -0.1\n", "feed.market.jump_size",
                     id="jump-size-negative"),
        pytest.param("[feed.market]\njump_size = nan\n", "feed.market.jump_size",
                     id="jump-size-nan"),
        pytest.param("[feed.market]\nvol_of_vol = nan\n", "feed.market.vol_of_vol",
                     id="vol-of-vol-nan"),
        pytest.param("[feed.market]\njumps_per_day = nan\n", "feed.market.jumps_per_day",
                     id="jumps-per-day-nan"),
    ],
)
def test_bad_file_value_names_its_key(tmp_path: Path, toml: str, key: str) -> None:
    assert_names_key(config_error(write(tmp_path, toml)), key)


def test_shares_that_sum_to_one_name_a_market_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[feed.market]\nmarket_share = 0.6\nsector_share = 0.4\n")
    error = config_error(path)
    assert error.key in ("feed.market.market_share", "feed.market.sector_share"), str(error)
    assert str(error).startswith(f"config error: {error.key}: ")
    # Either share alone is fine: it is the sum that is impossible.
    load_config(write(tmp_path, "[feed.market]\nmarket_share = 0.6\nsector_share = 0.3\n",
                      "ok.toml"), environ=NO_ENV)


def test_unknown_key_lists_the_known_ones(tmp_path: Path) -> None:
    error = config_error(write(tmp_path, "[server]\nprot = 8000\n"))
    assert "port" in error.problem
    assert "unknown key" in error.problem


STOCK = """
[[feed.universe]]
symbol = "{symbol}"
name = "Stock {n}"
sector = "Sector {sector}"
price = {price}
volatility = 0.3
"""


def universe_toml(*stocks: tuple[str, float]) -> str:
    return "".join(STOCK.format(symbol=symbol, n=n, sector=n % 2, price=price)
                   for n, (symbol, price) in enumerate(stocks))


GOOD = [("AAA", 10.0), ("BBB", 20.0), ("CCC", 30.0)]


def test_a_valid_user_universe_loads(tmp_path: Path) -> None:
    universe = load_config(write(tmp_path, universe_toml(*GOOD, ("DDD", 40.0))),
                           environ=NO_ENV).feed.universe
    assert [stock.symbol for stock in universe] == ["AAA", "BBB", "CCC", "DDD"]
    assert universe[3].price == 40.0


@pytest.mark.parametrize(
    ("stocks", "key"),
    [
        pytest.param([*GOOD, ("DDD", -1.0)], "feed.universe[3].price", id="negative-price"),
        pytest.param([*GOOD, ("DDD", 0)], "feed.universe[3].price", id="zero-price"),
        pytest.param([("AAA", 10.0), ("bbb", 20.0)], "feed.universe[1].symbol", id="lower-case"),
        pytest.param([("AAA", 10.0), ("", 20.0)], "feed.universe[1].symbol", id="empty-symbol"),
        pytest.param([*GOOD, ("BBB", 40.0)], "feed.universe[3].symbol", id="duplicate"),
    ],
)
def test_bad_universe_entry_names_its_index_and_field(
        tmp_path: Path, stocks: list[tuple[str, float]], key: str) -> None:
    assert_names_key(config_error(write(tmp_path, universe_toml(*stocks))), key)


def test_universe_entry_missing_a_field_names_it(tmp_path: Path) -> None:
    text = universe_toml(*GOOD).replace("volatility = 0.3\n", "", 1)
    assert_names_key(config_error(write(tmp_path, text)), "feed.universe[0].volatility")


def test_universe_entry_with_a_bad_volatility_names_it(tmp_path: Path) -> None:
    text = universe_toml(*GOOD).replace("volatility = 0.3", "volatility = 9.0", 1)
    assert_names_key(config_error(write(tmp_path, text)), "feed.universe[0].volatility")


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    error = config_error(missing)
    assert error.key == str(missing)
    assert "not found" in str(error)


def test_file_that_is_not_toml_names_the_path(tmp_path: Path) -> None:
    path = write(tmp_path, "[server\nport = \n", "broken.toml")
    error = config_error(path)
    assert error.key == str(path)
    assert "TOML" in str(error)
    assert "\n" not in str(error)


def test_file_that_is_not_utf8_is_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00\x01port = 1\n")
    error = config_error(path)
    assert error.key == str(path)
    assert "\n" not in str(error)


def test_directory_is_not_a_config_file(tmp_path: Path) -> None:
    assert config_error(tmp_path).key == str(tmp_path)


# -- environment -----------------------------------------------------------------------------------


def test_environment_overrides() -> None:
    config = load_config(environ={
        "TICKER_PORT": "9100",
        "TICKER_HOST": "0.0.0.0",
        "TICKER_FEED_TICK_RATE": "250",
        "TICKER_HUB_HISTORY_SIZE": "500",
    })
    assert config.server.port == 9100
    assert config.server.host == "0.0.0.0"
    assert config.feed.tick_rate == 250.0
    assert isinstance(config.feed.tick_rate, float)
    assert config.hub.history_size == 500


def test_environment_long_forms_and_words() -> None:
    config = load_config(environ={
        "TICKER_SERVER_PORT": "9200",
        "TICKER_SERVER_HOST": "localhost",
        "TICKER_SERVER_LOG_LEVEL": "debug",
        "TICKER_SERVER_WS_COMPRESSION": "true",
        "TICKER_FEED_SEED": "42",
        "TICKER_FEED_SYMBOLS": "50",
    })
    assert config.server.port == 9200
    assert config.server.host == "localhost"
    assert config.server.log_level == "debug"
    assert config.server.ws_compression is True
    assert config.feed.seed == 42
    assert config.feed.symbols == 50


def test_unrelated_environment_is_ignored() -> None:
    defaults = load_config(environ=NO_ENV)
    assert load_config(environ={"PORT": "1", "TICKER": "x", "TICKER_NOPE": "1",
                                "ticker_port": "1"}) == defaults


def test_environ_none_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKER_PORT", "9300")
    assert load_config().server.port == 9300


def test_precedence_overrides_then_environment_then_file_then_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 9001\nhost = \"10.0.0.1\"\n"
                           "[hub]\nsnapshot_size = 20\n")
    env = {"TICKER_PORT": "9100", "TICKER_HOST": "10.0.0.2"}
    config = load_config(path, overrides={"server.port": 9200}, environ=env)
    assert config.server.port == 9200  # override beats env and file
    assert config.server.host == "10.0.0.2"  # env beats file
    assert config.hub.snapshot_size == 20  # file beats defaults
    assert config.hub.history_size == 10000  # defaults otherwise
    assert load_config(path, environ=env).server.port == 9100
    assert load_config(path, environ=NO_ENV).server.port == 9001


def test_overrides_reach_nested_keys() -> None:
    config = load_config(overrides={"feed.market.vol_of_vol": 0, "feed.symbols": 50,
                                    "feed.seed": 3}, environ=NO_ENV)
    assert config.feed.market.vol_of_vol == 0.0
    assert config.feed.symbols == 50
    assert config.feed.seed == 3


def test_override_can_fix_what_the_environment_broke() -> None:
    config = load_config(overrides={"server.port": 0}, environ={"TICKER_PORT": "abc"})
    assert config.server.port == 0


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        pytest.param({"TICKER_PORT": "abc"}, "server.port", id="port-word"),
        pytest.param({"TICKER_PORT": "70000"}, "server.port", id="port-too-big"),
        pytest.param({"TICKER_SERVER_PORT": "1.5"}, "server.port", id="long-port-float"),
        pytest.param({"TICKER_FEED_TICK_RATE": "fast"}, "feed.tick_rate", id="tick-rate-word"),
        pytest.param({"TICKER_FEED_TICK_RATE": "-1"}, "feed.tick_rate", id="tick-rate-negative"),
        pytest.param({"TICKER_HUB_HISTORY_SIZE": "5"}, "hub.history_size",
                     id="history-below-snapshot"),
        pytest.param({"TICKER_FEED_SEED": "-1"}, "feed.seed", id="seed-negative"),
        pytest.param({"TICKER_SERVER_LOG_LEVEL": "loud"}, "server.log_level", id="log-level"),
    ],
)
def test_bad_environment_value_names_the_key(environ: dict[str, str], key: str) -> None:
    assert_names_key(config_error(environ=environ), key)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        pytest.param({"server.prot": 1}, "server.prot", id="unknown"),
        pytest.param({"server.port": "1"}, "server.port", id="type"),
        pytest.param({"feed.symbols": 0}, "feed.symbols", id="value"),
        pytest.param({"feed.market.sector_share": 0.9}, "feed.market.sector_share",
                     id="nested-sum"),
    ],
)
def test_bad_override_names_the_key(overrides: dict[str, object], key: str) -> None:
    assert_names_key(config_error(overrides=overrides), key)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        pytest.param({"alpaca.keys": ["PKONLY"]}, "alpaca.keys[0]", id="key-without-secret"),
        pytest.param({"alpaca.keys": ["PK:s", ":secret"]}, "alpaca.keys[1]", id="empty-key"),
        pytest.param({"alpaca.max_symbols": 0}, "alpaca.max_symbols", id="no-symbols"),
        pytest.param({"alpaca.max_connections_per_key": -1}, "alpaca.max_connections_per_key",
                     id="negative-connections"),
        pytest.param({"alpaca.auth_timeout": 0}, "alpaca.auth_timeout", id="no-auth-time"),
    ],
)
def test_bad_alpaca_settings_name_the_key(overrides: dict[str, object], key: str) -> None:
    assert_names_key(config_error(overrides=overrides), key)


def test_alpaca_keys_come_from_the_environment() -> None:
    config = load_config(environ={"TICKER_ALPACA_KEYS": '["PKTEST:se:cret"]'})
    assert config.alpaca.keys == ("PKTEST:se:cret",)


def test_a_websocket_protocol_whose_package_is_missing_is_a_config_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Without this, uvicorn fails at start-up with a ModuleNotFoundError traceback.
    assert load_config(environ={}, overrides={"server.ws_implementation": "wsproto"})
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "wsproto" else real(name, *rest))
    with pytest.raises(ConfigError, match="pip install wsproto") as raised:
        load_config(environ={}, overrides={"server.ws_implementation": "wsproto"})
    assert "server.ws_implementation" in str(raised.value)
