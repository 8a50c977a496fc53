"""Children derived from a parent bar aggregate back to it exactly, deterministically."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptopipe_dagster.simulator.derive import (
    IntBars,
    aggregate,
    bar_keys,
    points_needed,
    split_bars,
    uniforms,
)
from cryptopipe_dagster.simulator.market_data import Market, MarketStore, format_fixed
from cryptopipe_dagster.simulator.series import minutes_of_parents
from cryptopipe_dagster.simulator.trades import trades_of_minutes


@st.composite
def parent_bars(draw: st.DrawFn, max_volume: int = 10**13) -> tuple[int, int, int, int, int]:
    """(open, high, low, close, volume) in ticks/units with low <= open, close <= high."""
    low = draw(st.integers(1, 10**9))
    high = low + draw(st.integers(0, 10**6))
    open_, close = (draw(st.integers(low, high)) for _ in range(2))
    volume = draw(st.one_of(st.just(0), st.integers(1, 10), st.integers(0, max_volume)))
    return open_, high, low, close, volume


def bars_of(rows: list[tuple[int, int, int, int, int]]) -> IntBars:
    columns = np.array(rows, dtype=np.int64).reshape(-1, 5).T
    return IntBars(np.zeros(len(rows), dtype=np.int64), *columns)


def assert_aggregates_exactly(split, parents: IntBars, decimals: int = 2) -> None:
    """Checked in Decimal on the served text, not on the integers, to prove the decimal claim."""
    for p in range(len(parents)):
        valid = split.valid[p]
        if not valid.any():
            continue

        def text(values, d=decimals):
            return [Decimal(t) for t in format_fixed(np.asarray(values), d)]

        o, h, lo, c = (text(getattr(split, f)[p][valid]) for f in ("open", "high", "low", "close"))
        v = text(split.volume[p][valid], 8)
        (po, ph, plo, pc), (pv,) = (
            text([x[p] for x in parents.columns()[1:5]]),
            text([parents.volume[p]], 8),
        )
        assert (o[0], c[-1], max(h), min(lo), sum(v)) == (po, pc, ph, plo, pv)
        bars = zip(o, h, lo, c, strict=True)
        assert all(lo_i <= min(o_i, c_i) and h_i >= max(o_i, c_i) for o_i, h_i, lo_i, c_i in bars)
        assert all(x >= 0 for x in v)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(parent_bars(), min_size=1, max_size=6),
    st.sampled_from([1, 2, 3, 5, 60, 1440]),
    st.integers(0, 2**63),
)
def test_candle_children_aggregate_exactly(rows, n, seed) -> None:
    parents = bars_of(rows)
    keys = bar_keys(seed, np.arange(len(rows), dtype=np.int64), 1)
    split = split_bars(parents, n, keys)
    assert split.valid.sum() == n * len(rows)
    assert_aggregates_exactly(split, parents)
    again = split_bars(parents, n, keys)
    assert all(
        (getattr(split, f) == getattr(again, f)).all() for f in ("open", "high", "low", "close", "volume")
    )
    # Children of a moving parent continue where the previous one closed.
    assert (split.open[:, 1:] == split.close[:, :-1]).all()


@settings(max_examples=150, deadline=None)
@given(st.lists(parent_bars(max_volume=10**6), min_size=1, max_size=6), st.integers(0, 2**63), st.data())
def test_flat_children_aggregate_exactly_when_count_allows(rows, seed, data) -> None:
    parents = bars_of(rows)
    need = points_needed(parents)
    pairs = zip(need, parents.volume, strict=True)
    counts = np.array([data.draw(st.integers(n, max(n, min(v, 50)))) if v >= n else 0 for n, v in pairs])
    split = split_bars(parents, counts, bar_keys(seed, np.arange(len(rows), dtype=np.int64), 2), flat=True)
    assert_aggregates_exactly(split, parents)
    valid = split.valid
    assert (split.open[valid] == split.high[valid]).all() and (split.low[valid] == split.close[valid]).all()
    assert (split.volume[valid] >= 1).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(parent_bars(max_volume=10**9), min_size=1, max_size=20), st.integers(0, 10**6))
def test_trades_aggregate_exactly_to_their_minutes(store: MarketStore, rows, first_minute) -> None:
    market = store.get("bitstamp", "BTC/USD")
    minutes = bars_of([(o, h, lo, c, v if v == 0 else max(v, 4)) for o, h, lo, c, v in rows])
    minutes = IntBars((first_minute + np.arange(len(rows))) * 60, *minutes.columns()[1:])
    trades = trades_of_minutes(market, minutes)
    assert (np.diff(trades.trade_id) > 0).all() and (np.diff(trades.ts_ms) >= 0).all()
    ticks = trades.price
    rolled = aggregate(IntBars((trades.ts_ms // 60_000) * 60, ticks, ticks, ticks, ticks, trades.amount), 60)
    traded = minutes.select(minutes.volume > 0)
    assert all((a == b).all() for a, b in zip(rolled.columns(), traded.columns(), strict=True))
    assert trades_of_minutes(market, minutes).trade_id.tolist() == trades.trade_id.tolist()


def test_zero_volume_parent_gives_zero_volume_flat_children() -> None:
    parents = bars_of([(500, 500, 500, 500, 0), (500, 510, 490, 505, 0)])
    split = split_bars(parents, 60, bar_keys(1, np.arange(2, dtype=np.int64), 1))
    assert (split.volume == 0).all()
    assert (split.high[0] == 500).all() and (split.low[0] == 500).all()
    assert_aggregates_exactly(split, parents)  # the moving one still spans its range


def test_thin_parent_concentrates_volume_on_few_children() -> None:
    parents = bars_of([(100, 120, 90, 110, 10)])  # 10 units cannot give 60 children 4 each
    split = split_bars(parents, 60, bar_keys(3, np.zeros(1, dtype=np.int64), 1))
    assert_aggregates_exactly(split, parents)
    traded = split.volume[0] > 0
    assert traded.sum() == 2 and (split.volume[0][traded] >= 4).all()
    idle = ~traded
    assert (split.high[0][idle] == split.low[0][idle]).all()  # no volume, no movement


def test_derivation_is_a_pure_function_of_seed_and_bar(store: MarketStore) -> None:
    market = store.get("coinbaseexchange", "BTC/USD")
    alone = minutes_of_parents(market, 100, 101)
    in_batch = minutes_of_parents(market, 90, 110).select(slice(600, 660))
    for a, b in zip(alone.columns(), in_batch.columns(), strict=True):
        assert (a == b).all()
    other_seed = Market(**{**market.__dict__, "key": market.key + 1})
    assert not (minutes_of_parents(other_seed, 100, 101).close == alone.close).all()


def test_uniforms_do_not_depend_on_batch_width() -> None:
    keys = np.array([1, 2, 3], dtype=np.uint64)
    assert (uniforms(keys, 5, 0)[:, :3] == uniforms(keys, 3, 0)).all()
    assert (uniforms(keys[1:], 3, 0) == uniforms(keys, 3, 0)[1:]).all()


def test_real_minutes_and_trades_aggregate_back(store: MarketStore) -> None:
    for market in store.all_markets():
        stop = min(len(market.bars), 40)
        minutes = minutes_of_parents(market, 0, stop)
        rolled_up, parents = aggregate(minutes, market.timeframe_s), market.bars.select(slice(0, stop))
        for a, b in zip(rolled_up.columns(), parents.columns(), strict=True):
            assert (a == b).all()
        some = minutes.select(slice(0, 3000))
        trades = trades_of_minutes(market, some)
        assert (np.diff(trades.trade_id) > 0).all() and (np.diff(trades.ts_ms) >= 0).all()
        minute_ts = (trades.ts_ms // 60_000) * 60
        rolled = aggregate(
            IntBars(minute_ts, trades.price, trades.price, trades.price, trades.price, trades.amount), 60
        )
        traded = some.select(some.volume > 0)
        for a, b in zip(rolled.columns(), traded.columns(), strict=True):
            assert (a == b).all()
