from pathlib import Path

import pytest

from cryptopipe_dagster.lib.errors import ConfigError, InvalidSymbol, InvalidTimeframe, UnknownExchange
from cryptopipe_dagster.lib.markets_config import load_markets_config
from cryptopipe_dagster.lib.settings import DEFAULT_MARKETS_FILE, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "markets.yaml"
    path.write_text(text)
    return path


def test_shipped_markets_file_loads():
    config = load_markets_config(DEFAULT_MARKETS_FILE)
    assert set(config.exchanges) == {"coinbaseexchange", "bitstamp", "kraken"}
    assert config.markets_of("bitstamp").symbols == ("BTC/USD", "ETH/USD", "LTC/USD")
    assert config.demo and all(spec.start <= spec.end for spec in config.demo)


@pytest.mark.parametrize(
    ("text", "error", "named"),
    [
        (
            "exchanges: {notanexchange: {symbols: [BTC/USD], timeframes: [1h]}}",
            UnknownExchange,
            "notanexchange",
        ),
        ("exchanges: {bitstamp: {symbols: [BTC-USD], timeframes: [1h]}}", InvalidSymbol, "BTC-USD"),
        ("exchanges: {bitstamp: {symbols: [BTC/], timeframes: [1h]}}", InvalidSymbol, "BTC/"),
        ("exchanges: {bitstamp: {symbols: [BTC/USD], timeframes: [7q]}}", InvalidTimeframe, "7q"),
        ("exchanges: {bitstamp: {symbols: [], timeframes: [1h]}}", ConfigError, "symbols"),
        ("exchanges: []", ConfigError, "exchanges"),
        (
            "exchanges: {bitstamp: {symbols: [BTC/USD], timeframes: [1d]}}\ndemo: [{exchange: bitstamp, "
            "symbols: [BTC/USD], timeframes: [1d], start: 2020-01-02, end: 2020-01-01}]",
            ConfigError,
            "before",
        ),
        (
            "exchanges: {bitstamp: {symbols: [BTC/USD], timeframes: [1d]}}\ndemo: [{exchange: bitstamp, "
            "symbols: [BTC/USD], timeframes: [1d], start: 2020-13-01, end: 2020-01-01}]",
            ConfigError,
            "2020-13-01",
        ),
        ("exchanges: {bitstamp: [", ConfigError, "markets file"),
    ],
)
def test_bad_markets_file_names_the_bad_value(tmp_path, text, error, named):
    with pytest.raises(error, match=named):
        load_markets_config(write(tmp_path, text))


def test_settings_reject_bad_environment():
    with pytest.raises(ConfigError, match="staging"):
        load_settings({"CRYPTOPIPE_ENV": "staging"})
    with pytest.raises(ConfigError, match="ftp://x"):
        load_settings({"CRYPTOPIPE_EXCHANGE_API_URL": "ftp://x"})


def test_settings_local_defaults(tmp_path):
    settings = load_settings({"CRYPTOPIPE_HOME": str(tmp_path)})
    assert settings.env == "local"
    assert settings.duckdb_path == tmp_path / "warehouse.duckdb"
    assert settings.exchange_api_url == "http://127.0.0.1:8765"


def test_duckdb_path_is_shared_with_dbt_through_one_variable(tmp_path):
    settings = load_settings(
        {"CRYPTOPIPE_HOME": str(tmp_path), "CRYPTOPIPE_DUCKDB_PATH": str(tmp_path / "x.duckdb")}
    )
    assert settings.duckdb_path == tmp_path / "x.duckdb"
