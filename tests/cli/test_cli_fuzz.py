"""Hostile command-line values: one bad value among good ones is one clear error line and exit
code 2, never a traceback (and never a run)."""

from __future__ import annotations

import ccxt
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cryptopipe_dagster.cli import app
from cryptopipe_dagster.lib.errors import ConfigError
from cryptopipe_dagster.lib.markets_config import parse_date

runner = CliRunner()
GOOD = {
    "--exchange": "bitstamp",
    "--symbols": "BTC/USD",
    "--timeframes": "1d",
    "--start": "2019-01-01",
    "--end": "2019-01-02",
}
HOSTILE = st.one_of(
    st.text(min_size=1, max_size=30),
    st.sampled_from(
        ["'; DROP TABLE raw.candles; --", "\u202eDSU/CTB", "BTC/USD;rm -rf /", "%s%s%n", "..", "\x00"]
    ),
)


def _is_valid(option: str, value: str) -> bool:
    """Values that are good after all (a run would start): not what this test is about."""
    text = value.strip()
    if option == "--exchange":
        return text.lower() in ccxt.exchanges
    if option in ("--start", "--end"):
        try:
            parse_date(text, option)
        except ConfigError:
            return False
        return True
    if option == "--timeframes":
        return all(part.strip() in {"1m", "5m", "15m", "1h", "6h", "1d"} for part in text.split(","))
    letters = "".join(ch for ch in text.upper() if ch.isalnum())
    return letters in {"BTCUSD", "ETHUSD", "LTCUSD", "XBTUSD"} or not text


@pytest.mark.parametrize("option", sorted(GOOD))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=HOSTILE)
def test_one_hostile_backfill_value_is_one_clear_error(option, value, cryptopipe_home) -> None:
    assume(not _is_valid(option, value))
    args = [part for name, good in GOOD.items() for part in (name, value if name == option else good)]
    result = runner.invoke(app, ["backfill", *args], terminal_width=200)
    assert result.exit_code == 2, (args, result.output)
    assert (
        "Traceback" not in result.output
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    )
