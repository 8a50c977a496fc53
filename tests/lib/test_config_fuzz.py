"""Hostile configuration: any markets file (any YAML shape, any bytes) and any collector market
spelling either load or fail with ConfigError naming the problem, never another exception."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptopipe_dagster.lib.collector.settings import parse_market
from cryptopipe_dagster.lib.errors import ConfigError
from cryptopipe_dagster.lib.markets_config import MarketsConfig, load_markets_config

KEYS = ["exchanges", "symbols", "timeframes", "demo", "history_start", "exchange", "start", "end"]
HOSTILE = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "bitstamp",
            "kraken",
            "BTC/USD",
            "1h",
            "2020-01-01",
            "2020-13-45",
            "'; DROP TABLE x; --",
            "\u202e",
            "𝔅/𝔗",
        ]
    ),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(), HOSTILE, st.dates().map(str)
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), HOSTILE, st.integers()), inner, max_size=4),
    ),
    max_leaves=25,
)

VALUES = st.one_of(
    SCALARS, st.lists(st.one_of(SCALARS, st.sampled_from(["BTC/USD", "1h", "1d"])), max_size=3)
)
EXCHANGE_IDS = st.one_of(st.sampled_from(["bitstamp", "kraken", "coinbaseexchange"]), HOSTILE, st.integers())
# Shaped like a markets file, hostile in the values: reaches the validation of each field.
SHAPED = st.fixed_dictionaries(
    {
        "exchanges": st.dictionaries(
            EXCHANGE_IDS,
            st.one_of(VALUES, st.fixed_dictionaries({"symbols": VALUES, "timeframes": VALUES})),
            max_size=3,
        )
    },
    optional={
        "demo": st.lists(
            st.one_of(
                VALUES,
                st.fixed_dictionaries(
                    {},
                    optional={
                        k: st.one_of(VALUES, EXCHANGE_IDS)
                        for k in ("exchange", "symbols", "timeframes", "start", "end")
                    },
                ),
            ),
            max_size=3,
        ),
        "history_start": SCALARS,
    },
)


def _loads_or_refuses(path) -> None:
    try:
        config = load_markets_config(path)
    except ConfigError as error:
        assert str(error)
    else:
        assert isinstance(config, MarketsConfig) and config.exchanges


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(DOCUMENTS, SHAPED))
def test_any_yaml_shape_loads_or_is_a_config_error(tmp_path, document) -> None:
    path = tmp_path / "markets.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    _loads_or_refuses(path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_any_bytes_load_or_are_a_config_error(tmp_path, content) -> None:
    path = tmp_path / "markets.yaml"
    path.write_bytes(content)
    _loads_or_refuses(path)


@settings(max_examples=300, deadline=None)
@given(st.one_of(HOSTILE, st.text(alphabet=":/-_ .abcXBTUSD", max_size=20)))
def test_any_collector_market_spelling_parses_or_is_a_config_error(text) -> None:
    try:
        spec = parse_market(text)
    except ConfigError as error:
        assert str(error)
    else:
        assert spec.key == f"{spec.exchange}:{spec.symbol}"
