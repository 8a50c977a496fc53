"""Collector building blocks without the network: settings, duplicate filter, checkpoint, metrics."""

from __future__ import annotations

import dataclasses
import json
import math
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cryptopipe_dagster.lib.collector.checkpoint import CheckpointStore
from cryptopipe_dagster.lib.collector.dedup import RecentIds
from cryptopipe_dagster.lib.collector.metrics import CollectorMetrics
from cryptopipe_dagster.lib.collector.settings import CollectorSettings, MarketSpec, parse_market
from cryptopipe_dagster.lib.errors import ConfigError

KRAKEN = "kraken:BTC/USD"

# Every numeric knob of CollectorSettings (so a knob added later is covered too).
NUMERIC_KNOBS = [
    f.name
    for f in dataclasses.fields(CollectorSettings)
    if isinstance(f.default, int | float) and not isinstance(f.default, bool)
]


def _settings(**overrides: object) -> CollectorSettings:
    values: dict = {"markets": (parse_market(KRAKEN),), "project_id": "demo-project", **overrides}
    return CollectorSettings(**values)


# -- parse_market / CollectorSettings -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "exchange", "symbol"),
    [
        ("kraken:BTC/USD", "kraken", "BTC/USD"),
        (" bitstamp : btc-usd ", "bitstamp", "BTC/USD"),
        ("coinbaseexchange:eth_usd", "coinbaseexchange", "ETH/USD"),
        ("kraken:xbt/usd", "kraken", "BTC/USD"),  # Kraken's alias
        ("kraken:XXBTZUSD", "kraken", "BTC/USD"),  # Kraken's legacy pair id
        ("bitstamp:btcusd", "bitstamp", "BTC/USD"),
    ],
)
def test_parse_market_canonicalizes(text, exchange, symbol) -> None:
    spec = parse_market(text)
    assert spec == MarketSpec(exchange, symbol, False)
    assert spec.key == f"{exchange}:{symbol}"
    assert parse_market(text, candles=True).candles is True


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("krakn:BTC/USD", "'krakn'"),  # unknown exchange
        (":BTC/USD", "''"),  # no exchange at all
        ("kraken:BTC/US/D", "'kraken:BTC/US/D'"),  # two separators
        ("kraken:BTC/", "'kraken:BTC/'"),  # empty quote
        ("kraken:BTC/USD:USD", "'kraken:BTC/USD:USD'"),  # derivative settle suffix
        ("kraken:BTC/€", "'kraken:BTC/€'"),  # non-ASCII
        ("kraken", "'kraken'"),  # no colon
        ("kraken:", "'kraken:'"),  # colon but no symbol
        ("kraken BTC/USD", "'kraken BTC/USD'"),  # wrong separator
    ],
)
def test_parse_market_rejects_bad_input_naming_it(text, named) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_market(text)
    assert named in str(raised.value)


def test_settings_accept_good_markets_with_defaults() -> None:
    settings = _settings(markets=(parse_market(KRAKEN), parse_market("bitstamp:BTC/USD", candles=True)))
    assert [m.key for m in settings.markets] == [KRAKEN, "bitstamp:BTC/USD"]
    assert settings.state_path is None and settings.extra_exchange_options == {}
    assert all(getattr(settings, name) > 0 for name in NUMERIC_KNOBS)


def test_settings_need_a_market_and_a_project() -> None:
    with pytest.raises(ConfigError, match="at least one market"):
        _settings(markets=())
    with pytest.raises(ConfigError, match="project"):
        _settings(project_id="")


def test_settings_reject_a_market_listed_twice_naming_it() -> None:
    # Two spellings of the same market (and a candles flag) are still the same ordering/checkpoint key.
    markets = (
        parse_market(KRAKEN),
        parse_market("bitstamp:BTC/USD"),
        parse_market("kraken:xbt-usd", candles=True),
    )
    with pytest.raises(ConfigError) as raised:
        _settings(markets=markets)
    assert KRAKEN in str(raised.value) and "bitstamp" not in str(raised.value)


def test_the_knob_list_is_what_the_collector_tunes() -> None:
    assert {"batch_max_records", "stall_timeout_s", "dedup_capacity", "trades_limit"} <= set(NUMERIC_KNOBS)


@pytest.mark.parametrize("value", [0, -1, -0.5])
@pytest.mark.parametrize("knob", NUMERIC_KNOBS)
def test_settings_reject_non_positive_knobs_naming_them(knob, value) -> None:
    with pytest.raises(ConfigError) as raised:
        _settings(**{knob: value})
    assert knob in str(raised.value) and repr(value) in str(raised.value)


@pytest.mark.parametrize("knob", ["stall_timeout_s", "batch_max_age_s"])
def test_settings_reject_nan_knobs(knob) -> None:
    with pytest.raises(ConfigError, match=knob):
        _settings(**{knob: math.nan})


# -- RecentIds ------------------------------------------------------------------------------------


def test_fresh_counts_repeats_within_one_call_once_and_remembers_nothing() -> None:
    recent = RecentIds(10)
    mask = recent.fresh(["a", "b", "a", "c", "b", "a"])
    assert mask.dtype == np.bool_
    assert mask.tolist() == [True, True, False, True, False, False]
    assert len(recent) == 0  # fresh() only looks
    assert recent.fresh([]).tolist() == []


def test_remembered_ids_are_not_fresh() -> None:
    recent = RecentIds(10)
    recent.remember(["1", "2", "2", "3"])
    assert len(recent) == 3
    assert recent.fresh(["0", "2", "4", "3", "4"]).tolist() == [True, False, True, False, False]


def test_eviction_drops_the_oldest_first() -> None:
    recent = RecentIds(3)
    recent.remember(["a", "b"])
    recent.remember(["c", "d"])
    assert len(recent) == 3
    assert recent.fresh(["a", "b", "c", "d"]).tolist() == [True, False, False, False]
    recent.remember(["e"])
    assert recent.fresh(["b", "c", "d", "e"]).tolist() == [True, False, False, False]


def test_one_call_larger_than_capacity_keeps_its_newest() -> None:
    recent = RecentIds(4)
    recent.remember([str(i) for i in range(10)])
    assert len(recent) == 4
    assert recent.fresh([str(i) for i in range(10)]).tolist() == [True] * 6 + [False] * 4


def test_memory_stays_bounded_over_a_long_stream() -> None:
    recent = RecentIds(500)
    last_id = -1
    for start in range(0, 20_000, 137):
        ids = [str(i) for i in range(start, start + 137)]
        assert recent.fresh(ids).all()  # ids only grow: nothing is a repeat
        recent.remember(ids)
        last_id = start + 136
        assert len(recent) == min(500, last_id + 1)
    newest = [str(i) for i in range(last_id - 499, last_id + 1)]
    assert not recent.fresh(newest).any()  # exactly the newest 500 are remembered
    assert recent.fresh([str(last_id - 500), "0"]).all()


# -- CheckpointStore ------------------------------------------------------------------------------


def test_advance_never_moves_back_and_kinds_are_separate() -> None:
    store = CheckpointStore(None)
    assert store.get(KRAKEN, "trades") is None
    store.advance(KRAKEN, "trades", 1_000)
    store.advance(KRAKEN, "trades", 900)
    store.advance(KRAKEN, "trades", 1_000)
    assert store.get(KRAKEN, "trades") == 1_000
    store.advance(KRAKEN, "trades", 1_001)
    store.advance(KRAKEN, "candles", 60_000)
    store.advance("bitstamp:BTC/USD", "trades", 5)
    assert store.get(KRAKEN, "trades") == 1_001 and store.get(KRAKEN, "candles") == 60_000
    assert store.snapshot() == {
        KRAKEN: {"trades_ts_ms": 1_001, "candles_ts_ms": 60_000},
        "bitstamp:BTC/USD": {"trades_ts_ms": 5},
    }
    store.save()  # in memory only: nothing to write, no error


def test_snapshot_is_a_copy() -> None:
    store = CheckpointStore(None)
    store.advance(KRAKEN, "trades", 10)
    snapshot = store.snapshot()
    snapshot[KRAKEN]["trades_ts_ms"] = 0
    snapshot["other"] = {}
    assert store.snapshot() == {KRAKEN: {"trades_ts_ms": 10}}


def test_save_writes_json_that_reloads_and_still_never_moves_back(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "checkpoint.json"  # parents are created
    store = CheckpointStore(path)
    store.advance(KRAKEN, "trades", 1_571_288_400_543)
    store.advance(KRAKEN, "candles", 1_571_288_400_000)
    store.save()
    assert json.loads(path.read_text()) == {
        KRAKEN: {"candles_ts_ms": 1_571_288_400_000, "trades_ts_ms": 1_571_288_400_543}
    }
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.json"]  # no temp file left
    again = CheckpointStore(path)
    assert again.snapshot() == store.snapshot()
    assert again.get(KRAKEN, "trades") == 1_571_288_400_543
    again.advance(KRAKEN, "trades", 1)
    assert again.get(KRAKEN, "trades") == 1_571_288_400_543


def test_save_replaces_the_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    store = CheckpointStore(path)
    store.advance(KRAKEN, "trades", 1)
    store.save()
    first_inode = path.stat().st_ino
    # A stale temp file from a crash mid-write is neither read nor in the way.
    path.with_suffix(".json.tmp").write_text("{torn")
    assert CheckpointStore(path).get(KRAKEN, "trades") == 1
    with path.open() as reader:  # a reader of the old file keeps seeing a whole old file
        store.advance(KRAKEN, "trades", 2)
        store.save()
        assert json.loads(reader.read()) == {KRAKEN: {"trades_ts_ms": 1}}
    assert path.stat().st_ino != first_inode  # a new file renamed over the old, not rewritten in place
    assert json.loads(path.read_text()) == {KRAKEN: {"trades_ts_ms": 2}}
    assert not path.with_suffix(".json.tmp").exists()


def test_save_writes_only_when_something_advanced(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    store = CheckpointStore(path)
    store.save()
    assert not path.exists()  # nothing to save yet
    store.advance(KRAKEN, "trades", 10)
    store.save()
    path.unlink()
    store.save()
    assert not path.exists()  # unchanged since the last save
    store.advance(KRAKEN, "trades", 9)  # not an advance
    store.save()
    assert not path.exists()
    store.advance(KRAKEN, "trades", 11)
    store.save()
    assert json.loads(path.read_text()) == {KRAKEN: {"trades_ts_ms": 11}}


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b'{"kraken:BTC/USD": {"trades_ts_ms": 15712', b"\xff\xfe\x00garbage"],
    ids=["garbage", "empty", "torn", "not-utf8"],
)
def test_a_corrupt_checkpoint_names_its_path(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "checkpoint.json"
    path.write_bytes(content)
    with pytest.raises(ValueError) as raised:
        CheckpointStore(path)
    assert str(path) in str(raised.value)


# -- CollectorMetrics -----------------------------------------------------------------------------

METRIC_NAMES = [
    "cryptopipe_collector_records_received_total",
    "cryptopipe_collector_records_published_total",
    "cryptopipe_collector_batches_confirmed_total",
    "cryptopipe_collector_publish_failures_total",
    "cryptopipe_collector_duplicates_dropped_total",
    "cryptopipe_collector_dead_letters_total",
    "cryptopipe_collector_reconnects_total",
    "cryptopipe_collector_gap_fills_total",
    "cryptopipe_collector_queue_depth",
    "cryptopipe_collector_event_lag_seconds",
    "cryptopipe_collector_last_message_age_seconds",
    "cryptopipe_collector_receive_to_confirm_seconds",
]
LABELS = {"exchange": "kraken", "symbol": "BTC/USD"}


def _get(port: int) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.status, response.read().decode()


def test_metrics_serve_on_a_free_port_and_stop() -> None:
    metrics = CollectorMetrics()
    port = metrics.serve("127.0.0.1", 0)
    try:
        assert isinstance(port, int) and port > 0
        metrics.received.labels(**LABELS, kind="trades", transport="ws").inc(7)
        metrics.queue_depth.labels(**LABELS).set(3)
        metrics.receive_to_publish.labels(**LABELS).observe(0.02)
        status, text = _get(port)
        assert status == 200
        for name in METRIC_NAMES:
            assert f"# HELP {name} " in text, name
        assert (
            'cryptopipe_collector_records_received_total{exchange="kraken",kind="trades",'
            'symbol="BTC/USD",transport="ws"} 7.0'
        ) in text
        assert 'cryptopipe_collector_queue_depth{exchange="kraken",symbol="BTC/USD"} 3.0' in text
        assert "python_gc_objects_collected_total" not in text  # its own registry, not the global one
    finally:
        metrics.stop()
    with pytest.raises(urllib.error.URLError):
        _get(port)
    metrics.stop()  # idempotent


def test_two_collectors_keep_separate_metrics() -> None:
    first, second = CollectorMetrics(), CollectorMetrics()
    ports = [first.serve("127.0.0.1", 0), second.serve("127.0.0.1", 0)]
    try:
        assert ports[0] != ports[1]
        first.duplicates.labels(**LABELS, kind="trades").inc(2)
        first.duplicates.labels(exchange="bitstamp", symbol="BTC/USD", kind="trades").inc(3)
        assert first.value("cryptopipe_collector_duplicates_dropped_total", **LABELS, kind="trades") == 2
        assert first.total("cryptopipe_collector_duplicates_dropped_total") == 5
        assert second.total("cryptopipe_collector_duplicates_dropped_total") == 0
        assert second.value("cryptopipe_collector_duplicates_dropped_total", **LABELS, kind="trades") == 0
        assert "cryptopipe_collector_duplicates_dropped_total{" not in _get(ports[1])[1]
        assert "cryptopipe_collector_duplicates_dropped_total{" in _get(ports[0])[1]
    finally:
        first.stop()
        second.stop()


def test_clients_of_one_exchange_share_one_market_list(simulator, cryptopipe_home) -> None:
    import asyncio

    from cryptopipe_dagster.lib.collector.service import Collector

    markets = tuple(parse_market(m) for m in ("bitstamp:BTC/USD", "bitstamp:ETH/USD"))
    collector = Collector(
        CollectorSettings(markets=markets, project_id="p", exchange_api_url=simulator.base_url)
    )

    async def two_clients():
        await collector._share_market_lists()
        clients = [collector.make_exchange("bitstamp") for _ in range(2)]
        for client in clients:
            await client.close()
        return clients

    first, second = asyncio.run(two_clients())
    # Neither client asked for the market list: both got the one loaded before the sessions.
    assert first.markets["BTC/USD"] == second.markets["BTC/USD"]
    assert first.markets["BTC/USD"]["id"] == "btcusd"


def test_an_unreachable_exchange_leaves_each_session_to_load_its_own(cryptopipe_home) -> None:
    import asyncio

    from cryptopipe_dagster.lib.collector.service import Collector

    markets = (parse_market("bitstamp:BTC/USD"),)
    collector = Collector(
        CollectorSettings(markets=markets, project_id="p", exchange_api_url="http://127.0.0.1:9")
    )
    asyncio.run(collector._share_market_lists())
    assert not collector.make_exchange("bitstamp").markets
