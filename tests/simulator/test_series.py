"""Candle and trade windows as of a clock: consistency across steps, gaps, partial bars, cursors."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from cryptopipe_dagster.simulator import series
from cryptopipe_dagster.simulator.derive import aggregate
from cryptopipe_dagster.simulator.market_data import MarketStore

FAR_FUTURE_MS = 4_000_000_000_000


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def same(a, b) -> bool:
    return len(a) == len(b) and all((x == y).all() for x, y in zip(a.columns(), b.columns(), strict=True))


@pytest.fixture(scope="module")
def coinbase(store: MarketStore):
    return store.get("coinbaseexchange", "BTC/USD")


@pytest.fixture(scope="module")
def bitstamp_eth(store: MarketStore):
    return store.get("bitstamp", "ETH/USD")


@pytest.mark.parametrize("step", [300, 900, 21600, 86400])
def test_every_step_is_the_rollup_of_minutes(coinbase, step: int) -> None:
    start = epoch("2019-06-01T00:00:00")
    end = start + 2 * 86400 - 1
    minutes = series.candles(coinbase, 60, start, end, FAR_FUTURE_MS)
    assert same(series.candles(coinbase, step, start, end, FAR_FUTURE_MS), aggregate(minutes, step))


def test_native_step_is_the_recording(coinbase) -> None:
    bars = series.candles(coinbase, 3600, 0, 2**40, FAR_FUTURE_MS)
    assert same(bars, coinbase.bars)
    index = series.recorded_slice(coinbase, 3600, 0, 2**40, FAR_FUTURE_MS)
    assert index == slice(0, len(coinbase.bars))


def test_outage_stays_a_gap_at_every_step(bitstamp_eth) -> None:
    gap_start, gap_end = epoch("2019-03-20T00:00:00"), epoch("2019-04-01T00:00:00")
    for step in (60, 3600, 86400):
        bars = series.candles(bitstamp_eth, step, gap_start - 86400, gap_end + 86400 - 1, FAR_FUTURE_MS)
        assert not ((bars.ts >= gap_start) & (bars.ts < gap_end)).any()
        assert len(bars) == 2 * 86400 // step
    trades = series.trades_between(bitstamp_eth, gap_start * 1000, gap_end * 1000, FAR_FUTURE_MS)
    assert len(trades) == 0


def test_nothing_before_listing_or_after_the_recording(bitstamp_eth) -> None:
    listed = epoch("2017-11-09T00:00:00")
    assert len(series.candles(bitstamp_eth, 60, listed - 86400, listed - 1, FAR_FUTURE_MS)) == 0
    assert series.candles(bitstamp_eth, 86400, 0, 2**40, FAR_FUTURE_MS).ts[0] == listed
    last = series.candles(bitstamp_eth, 60, epoch("2020-01-17T00:00:00"), 2**40, FAR_FUTURE_MS)
    assert len(last) == 1440


def test_bar_containing_now_is_partial(coinbase) -> None:
    hour = epoch("2019-10-17T09:00:00")
    now_ms = (hour + 30 * 60) * 1000 + 12_345  # 09:30:12.345
    recorded = coinbase.bars.select(coinbase.bars.ts == hour)
    partial = series.candles(coinbase, 3600, hour - 7200, hour + 7200, now_ms)
    assert partial.ts[-1] == hour and partial.ts[-3] == hour - 7200
    assert partial.open[-1] == recorded.open[0]
    assert partial.volume[-1] < recorded.volume[0]
    assert recorded.low[0] <= partial.low[-1] <= partial.high[-1] <= recorded.high[0]
    minutes = series.candles(coinbase, 60, hour, hour + 3599, now_ms)
    assert minutes.ts[-1] == hour + 30 * 60  # the current minute, from its trades so far
    trades = series.trades_between(coinbase, hour * 1000, (hour + 3600) * 1000, now_ms)
    assert trades.ts_ms.max() <= now_ms
    assert trades.amount.sum() == minutes.volume.sum() == partial.volume[-1]
    assert partial.close[-1] == minutes.close[-1] == trades.price[-1]
    assert series.recorded_slice(coinbase, 3600, hour - 7200, hour, now_ms) is None


def test_clock_before_a_bar_hides_it(coinbase) -> None:
    hour = epoch("2019-10-17T09:00:00")
    bars = series.candles(coinbase, 3600, hour - 3600, hour + 3600, hour * 1000 - 1)
    assert bars.ts.tolist() == [hour - 3600]


def test_trade_cursors_walk_the_tape_without_gaps_or_overlaps(coinbase) -> None:
    now_ms = epoch("2019-10-17T09:30:00") * 1000
    newest = series.trades_older_than(coinbase, None, 700, now_ms)
    older = series.trades_older_than(coinbase, int(newest.trade_id[0]), 700, now_ms)
    window = series.trades_between(coinbase, int(older.ts_ms[0]), now_ms + 1, now_ms)
    assert np.array_equal(np.concatenate([older.trade_id, newest.trade_id]), window.trade_id)
    assert newest.ts_ms.max() <= now_ms
    forward = series.trades_newer_than(coinbase, int(older.trade_id[0]) - 1, 1400, now_ms)
    assert np.array_equal(forward.trade_id, window.trade_id)


def test_trade_cursor_crosses_the_outage(bitstamp_eth) -> None:
    after_gap = epoch("2019-04-01T00:00:00") * 1000
    first_after = series.trades_newer_than(bitstamp_eth, 0, 1, FAR_FUTURE_MS)
    assert first_after.ts_ms[0] // 1000 >= epoch("2017-11-09T00:00:00")
    before = series.trades_older_than(bitstamp_eth, (after_gap // 60_000) * 1000, 5, FAR_FUTURE_MS)
    assert before.ts_ms.max() < epoch("2019-03-20T00:00:00") * 1000
