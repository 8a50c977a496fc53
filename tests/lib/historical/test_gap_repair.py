"""The gap ledger against the simulator over loopback (unmodified ccxt), on DuckDB and BigQuery:
the recorded Bitstamp outage ends as a confirmed exchange gap, a transient hole is repaired, and
range-set checkpoints let disjoint backfills and resumes compose."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cryptopipe_dagster.lib.errors import ExchangeUnavailable
from cryptopipe_dagster.lib.historical.candle_backfill import BackfillTarget, backfill_candles, exchange_now
from cryptopipe_dagster.lib.historical.gap_ledger import CONFIRMED, OPEN, REPAIRED, GapPolicy
from cryptopipe_dagster.lib.historical.gap_repair import repair_due_gaps
from tests.lib.historical.test_candle_backfill import FAST_RETRY, fast_client, recorded, stored, utc

T0 = pd.Timestamp("2026-12-01 12:00", tz="UTC")  # the ledger's clock in these tests
H = pd.Timedelta(hours=1)
POLICY = GapPolicy(confirm_attempts=3, confirm_after=2 * H, first_backoff=30 * pd.Timedelta(minutes=1))


def outage_gap(store) -> pd.Series:
    gaps = store.list_gaps(exchange="bitstamp", symbol="BTC/USD", timeframe="1d")
    return gaps.set_index("span_start").loc[utc("2019-03-20")]


def test_recorded_bitstamp_outage_ends_as_confirmed_exchange_gap(simulator, any_warehouse, data_dir):
    store = any_warehouse
    client = fast_client(simulator, "bitstamp")
    target = BackfillTarget("bitstamp", "BTC/USD", "1d", utc("2019-03-01"), utc("2019-04-30"))
    stats = backfill_candles(
        client, store, target, now=exchange_now(client), gap_policy=POLICY, ledger_now=T0
    )
    assert stats.gaps_recorded >= 1 and stats.gap_candles_repaired == 0
    gap = (
        store.list_gaps(exchange="bitstamp", symbol="BTC/USD").set_index("span_start").loc[utc("2019-03-20")]
    )
    assert (gap.span_end, gap.missing, gap.state, gap.attempts) == (utc("2019-04-01"), 12, OPEN, 1)
    assert gap.next_attempt == T0 + POLICY.first_backoff  # the backfill made the first attempt

    def repair(at: pd.Timestamp):
        return repair_due_gaps(store, lambda _id: client, now=at, policy=POLICY, retry=FAST_RETRY)

    assert repair(T0 + pd.Timedelta(minutes=10)).attempted == 0  # not due yet: backoff
    assert repair(T0 + H).attempted >= 1
    assert repair(T0 + 3 * H).confirmed >= 1
    final = (
        store.list_gaps(exchange="bitstamp", symbol="BTC/USD").set_index("span_start").loc[utc("2019-03-20")]
    )
    evidence = json.loads(final.evidence)
    assert final.state == CONFIRMED and final.attempts == 3 and pd.isna(final.next_attempt)
    assert [e["answer"] for e in evidence] == ["no data"] * 3 and all(e["returned"] == 0 for e in evidence)
    repair(T0 + 48 * H)  # a confirmed gap is never due again
    assert outage_gap(store).attempts == 3
    # Nothing invented: the table equals the recording, outage days absent.
    expected = recorded(data_dir, "bitstamp_btc_eth_ltc_usd_1d.csv", "BTC/USD", target.start, target.end)
    got = stored(store, "bitstamp", "BTC/USD", "1d")
    pd.testing.assert_frame_equal(got.assign(ts=got.ts.dt.tz_convert("UTC")), expected, check_dtype=False)


def test_transient_hole_is_found_open_then_repaired(faulty_simulator, any_warehouse, data_dir):
    store = any_warehouse
    client = fast_client(faulty_simulator, "coinbaseexchange")
    now = exchange_now(client)
    hide_from, hide_to = utc("2019-01-05 06:00"), utc("2019-01-05 09:00")
    faulty_simulator.set_faults(
        "hidden_span:1",
        hide_from_ms=hide_from.value // 1_000_000,
        hide_to_ms=hide_to.value // 1_000_000,
        hide_requests=2,  # the backfill's page and its in-run attempt both miss it
    )
    target = BackfillTarget("coinbaseexchange", "BTC/USD", "1h", utc("2019-01-05"), utc("2019-01-06"))
    backfill_candles(client, store, target, now=now, gap_policy=POLICY, ledger_now=T0, retry=FAST_RETRY)
    (gap,) = store.list_gaps(exchange="coinbaseexchange").itertuples()
    assert (gap.span_start, gap.span_end, gap.state, gap.attempts) == (hide_from, hide_to, OPEN, 1)
    report = repair_due_gaps(store, lambda _id: client, now=T0 + H, policy=POLICY, retry=FAST_RETRY)
    assert (report.repaired, report.candles_filled) == (1, 3)
    (gap,) = store.list_gaps(exchange="coinbaseexchange").itertuples()
    assert gap.state == REPAIRED and [e["answer"] for e in json.loads(gap.evidence)] == [
        "no data",
        "complete",
    ]
    expected = recorded(data_dir, "coinbase_btcusd_1h.csv", "BTC/USD", target.start, target.end)
    got = stored(store, "coinbaseexchange", "BTC/USD", "1h")
    pd.testing.assert_frame_equal(got.assign(ts=got.ts.dt.tz_convert("UTC")), expected, check_dtype=False)


def test_disjoint_backfills_compose_and_a_covering_one_fetches_only_the_middle(simulator, any_warehouse):
    client = fast_client(simulator, "bitstamp")
    now = exchange_now(client)

    def run(start: str, end: str):
        target = BackfillTarget("bitstamp", "ETH/USD", "1d", utc(start), utc(end))
        return backfill_candles(client, any_warehouse, target, now=now, gap_policy=POLICY, ledger_now=T0)

    assert run("2018-01-01", "2018-02-01").inserted == 31
    assert run("2018-03-01", "2018-04-01").inserted == 31
    checkpoint = any_warehouse.get_checkpoint("bitstamp", "ETH/USD", "1d")
    assert checkpoint.ranges == (
        (utc("2018-01-01"), utc("2018-02-01")),
        (utc("2018-03-01"), utc("2018-04-01")),
    )
    covering = run("2018-01-01", "2018-04-01")
    assert (
        covering.resumed_from == utc("2018-02-01")
        and covering.inserted == 28
        and covering.already_present == 0
    )
    assert any_warehouse.get_checkpoint("bitstamp", "ETH/USD", "1d").ranges == (
        (utc("2018-01-01"), utc("2018-04-01")),
    )
    assert run("2018-01-15", "2018-03-15").skipped_complete


def test_resume_after_a_crash_mid_window_keeps_an_earlier_disjoint_range(
    faulty_simulator, any_warehouse, data_dir
):
    store = any_warehouse
    client = fast_client(faulty_simulator, "coinbaseexchange")
    now = exchange_now(client)
    early = BackfillTarget("coinbaseexchange", "BTC/USD", "1h", utc("2018-01-01"), utc("2018-01-03"))
    backfill_candles(client, store, early, now=now, gap_policy=POLICY, ledger_now=T0, retry=FAST_RETRY)
    target = BackfillTarget("coinbaseexchange", "BTC/USD", "1h", utc("2018-05-01"), utc("2018-07-01"))
    faulty_simulator.set_faults(",".join(f"server_error@{n}" for n in range(4, 200)))  # 3 pages land
    with pytest.raises(ExchangeUnavailable):
        backfill_candles(client, store, target, now=now, flush_rows=300, retry=FAST_RETRY, ledger_now=T0)
    crashed = store.get_checkpoint("coinbaseexchange", "BTC/USD", "1h")
    assert crashed.ranges[0] == (early.start, early.end) and crashed.ranges[1][0] == target.start
    faulty_simulator.set_faults("")
    resumed = backfill_candles(client, store, target, now=now, retry=FAST_RETRY, ledger_now=T0)
    assert resumed.resumed_from == crashed.ranges[1][1]
    final = store.get_checkpoint("coinbaseexchange", "BTC/USD", "1h")
    assert final.ranges == ((early.start, early.end), (target.start, target.end))
    expected = recorded(data_dir, "coinbase_btcusd_1h.csv", "BTC/USD", target.start, target.end)
    assert len(stored(store, "coinbaseexchange", "BTC/USD", "1h")) == len(expected) + 48


def test_an_unreachable_exchange_is_skipped_and_its_gaps_stay_due(simulator, warehouse):
    from cryptopipe_dagster.lib.exchanges.clients import create_exchange
    from cryptopipe_dagster.lib.historical.gap_ledger import new_gaps
    from cryptopipe_dagster.lib.pubsub.emulator import free_loopback_port

    span = [(utc("2019-03-20"), utc("2019-04-01"), 12)]
    for exchange_id in ("bitstamp", "coinbaseexchange"):
        warehouse.record_gaps(
            new_gaps(exchange_id, "BTC/USD", "1d", span, kind="candles", source="test", now=T0)
        )
    nobody = f"http://127.0.0.1:{free_loopback_port()}"  # nothing listens there
    clients = {
        "bitstamp": fast_client(simulator, "bitstamp"),
        "coinbaseexchange": create_exchange("coinbaseexchange", exchange_api_url=nobody, timeout_ms=500),
    }
    report = repair_due_gaps(warehouse, clients.__getitem__, now=T0 + H, policy=POLICY, retry=FAST_RETRY)
    assert report.attempted == 1 and report.gaps[0]["exchange"] == "bitstamp"
    unreachable = warehouse.list_gaps(exchange="coinbaseexchange").iloc[0]
    assert unreachable.attempts == 0 and unreachable.next_attempt == T0  # still due on the next run
