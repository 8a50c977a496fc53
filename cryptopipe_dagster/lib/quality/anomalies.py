"""Anomaly detection over stored candles, per market and timeframe, vectorized over whole batches.

An anomaly is flagged, never dropped: a real violent move is data. Every detector returns rows in
ANOMALY_COLUMNS (the `ops.anomalies` table, keyed by exchange, symbol, timeframe, ts, kind):

- price_jump: a bar's log return (close vs the previous close), or its wick (low / high vs the
  previous close), far from the trailing window's median in units of its MAD (robust: one earlier
  jump does not hide the next, and the threshold follows the market's own volatility);
- volume_spike: log volume far above the trailing window's median, in units of its MAD;
- stuck_feed: a run of flat bars (open == high == low == close) or zero-volume bars longer than
  the market's own normal (a quantile of its other runs, times a multiple, never below a floor);
- stale_feed: the newest bar closed longer ago than the timeframe's freshness target;
- divergence: the same pair on two exchanges apart by more than a threshold (basis points of the
  log ratio of closes) for at least N consecutive bars of a common timeframe.

Returns across a hole in the data (the previous bar is not the one just before) are not scored:
an outage of days is not a move of one bar. Thresholds: config/anomalies.yaml (anomaly_config.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from cryptopipe_dagster.lib.quality.anomaly_config import AnomalyConfig, RobustZ, StuckFeed
from cryptopipe_dagster.lib.timeframes import timeframe_seconds
from cryptopipe_dagster.lib.warehouse import Warehouse
from cryptopipe_dagster.lib.warehouse.tables import CANDLES

ANOMALY_COLUMNS = ["exchange", "symbol", "timeframe", "ts", "kind", "value", "threshold", "detail"]
MARKET = ["exchange", "symbol", "timeframe"]
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
KINDS = ("price_jump", "volume_spike", "stuck_feed", "stale_feed", "divergence")


def empty_anomalies() -> pd.DataFrame:
    """No anomalies, in ANOMALY_COLUMNS."""
    return pd.DataFrame(
        {c: pd.Series(dtype="datetime64[ns, UTC]" if c == "ts" else object) for c in ANOMALY_COLUMNS}
    )


def prepare(candles: pd.DataFrame) -> pd.DataFrame:
    """Candles sorted by market and time, with `contiguous` (the previous row is the bar just before)."""
    frame = candles.sort_values([*MARKET, "ts"], kind="stable").reset_index(drop=True)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    step = frame["timeframe"].astype(str).map(lambda tf: pd.Timedelta(seconds=timeframe_seconds(tf)))
    same_market = (frame[MARKET].astype(str) == frame[MARKET].astype(str).shift()).all(axis=1)
    frame["contiguous"] = same_market & (frame["ts"] - frame["ts"].shift() == step)
    frame["new_market"] = ~same_market
    return frame


def trailing_median_mad(values: np.ndarray, window: int, min_periods: int) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD of the `window` values before each position (itself excluded; NaNs ignored);
    NaN where fewer than `min_periods` of them are valid."""
    padded = np.concatenate([np.full(window, np.nan), values.astype(float)])
    windows = sliding_window_view(padded, window)[: len(values)]
    with warnings.catch_warnings():  # an all-NaN window is expected at a market's start
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(windows, axis=1)
        mad = np.nanmedian(np.abs(windows - median[:, None]), axis=1)
    enough = (~np.isnan(windows)).sum(axis=1) >= min_periods
    return np.where(enough, median, np.nan), np.where(enough, mad, np.nan)


def robust_z(frame: pd.DataFrame, values: pd.Series, rule: RobustZ) -> pd.Series:
    """(value - trailing median) / max(1.4826 * trailing MAD, floor), per market (NaN: no score)."""
    out = np.full(len(frame), np.nan)
    for positions in frame.groupby(MARKET, sort=False, observed=True).indices.values():
        x = values.to_numpy(dtype=float)[positions]
        median, mad = trailing_median_mad(x, rule.window, rule.min_periods)
        out[positions] = (x - median) / np.maximum(MAD_TO_SIGMA * mad, rule.min_scale)
    return pd.Series(out, index=frame.index)


def _text(values: pd.Series, spec: str) -> pd.Series:
    """Values formatted for the detail text (object dtype even when empty, so it concatenates)."""
    return values.map(spec.format).astype(object)


def _rows(frame: pd.DataFrame, kind: str, value, threshold, detail) -> pd.DataFrame:
    rows = frame[MARKET + ["ts"]].copy()
    rows["kind"], rows["value"], rows["threshold"], rows["detail"] = kind, value, threshold, detail
    return rows[ANOMALY_COLUMNS].reset_index(drop=True)


def _thresholds(frame: pd.DataFrame, rule: RobustZ, wick: bool = False) -> pd.Series:
    timeframes = frame["timeframe"].astype(str)
    return timeframes.map({tf: rule.threshold(tf, wick) for tf in timeframes.unique()}).astype(float)


def price_jumps(frame: pd.DataFrame, rule: RobustZ) -> pd.DataFrame:
    """Bars whose return or wick is further from the trailing ones than the timeframe's threshold
    (value: the return's robust z, or the wick's when only the wick is out)."""
    previous = frame["close"].shift().where(frame["contiguous"])
    ret = np.log(frame["close"] / previous)
    body_high, body_low = np.maximum(frame["open"], frame["close"]), np.minimum(frame["open"], frame["close"])
    wick = np.maximum(np.log(frame["high"] / body_high), np.log(body_low / frame["low"])).where(
        frame["contiguous"]
    )
    ret_z, wick_z = robust_z(frame, ret, rule).abs(), robust_z(frame, wick, rule)
    ret_limit, wick_limit = _thresholds(frame, rule), _thresholds(frame, rule, wick=True)
    by_return = ret_z > ret_limit
    hit = by_return | (wick_z > wick_limit)
    score = ret_z.where(by_return, wick_z)
    threshold = ret_limit.where(by_return, wick_limit)
    found = frame[hit]
    detail = (
        "return "
        + _text(np.expm1(ret[hit]) * 100, "{:+.2f}%")
        + ", low "
        + _text((found["low"] / previous[hit] - 1) * 100, "{:+.2f}%")
        + ", high "
        + _text((found["high"] / previous[hit] - 1) * 100, "{:+.2f}%")
        + " vs previous close "
        + previous[hit].map("{:g}".format).astype(str)
    )
    return _rows(found, "price_jump", score[hit].round(2), threshold[hit], detail)


def volume_spikes(frame: pd.DataFrame, rule: RobustZ) -> pd.DataFrame:
    """Bars whose log volume is more than rule.z robust deviations above the trailing ones."""
    log_volume = np.log(frame["volume"].where(frame["volume"] > 0))
    score = robust_z(frame, log_volume, rule)
    limit = _thresholds(frame, rule)
    hit = score > limit
    detail = "volume " + frame.loc[hit, "volume"].map("{:g}".format).astype(str)
    return _rows(frame[hit], "volume_spike", score[hit].round(2), limit[hit], detail)


def _run_ids(flagged: pd.Series, frame: pd.DataFrame) -> pd.Series:
    """A run number per flagged row: consecutive flagged bars of one market share it."""
    starts = flagged & ~(flagged.shift(fill_value=False) & frame["contiguous"])
    return starts.cumsum().where(flagged)


def stuck_feeds(frame: pd.DataFrame, rule: StuckFeed) -> pd.DataFrame:
    """Runs of flat or zero-volume bars longer than the market's normal (one row per run, at its start)."""
    flat = (frame["high"] == frame["low"]) | (frame["volume"] <= 0)
    run = _run_ids(flat, frame)
    if run.isna().all():
        return empty_anomalies()
    runs = (
        frame[flat]
        .assign(run=run[flat])
        .groupby("run")
        .agg(
            exchange=("exchange", "first"),
            symbol=("symbol", "first"),
            timeframe=("timeframe", "first"),
            ts=("ts", "first"),
            last_ts=("ts", "last"),
            length=("ts", "size"),
        )
    )
    # The market's normal: a quantile of its runs, leaving its longest run out (that one is the
    # candidate; with few runs it would otherwise set its own bar).
    rank = runs.groupby(MARKET, observed=True)["length"].rank(method="first", ascending=False)
    others = runs[rank > 1].groupby(MARKET, observed=True)["length"].quantile(rule.quantile)
    runs = runs.join(others.rename("normal"), on=MARKET)
    floor = runs["timeframe"].astype(str).map(rule.floor_bars).fillna(1)
    limit = np.maximum(floor, np.ceil(rule.multiple * runs["normal"].fillna(0)))
    hit = runs["length"] > limit
    found = runs[hit]
    detail = (
        found["length"].astype(str)
        + " flat or zero-volume bars through "
        + found["last_ts"].map(lambda t: t.isoformat()).astype(str)
    )
    return _rows(found, "stuck_feed", found["length"].astype(float), limit[hit].astype(float), detail)


def stale_feeds(frame: pd.DataFrame, freshness: dict[str, pd.Timedelta], now: pd.Timestamp) -> pd.DataFrame:
    """Markets whose newest bar closed longer ago than the timeframe's target (value: age in hours)."""
    newest = frame.groupby(MARKET, observed=True, as_index=False)["ts"].max()
    step = newest["timeframe"].astype(str).map(lambda tf: pd.Timedelta(seconds=timeframe_seconds(tf)))
    target = newest["timeframe"].astype(str).map(freshness)
    age = now - (newest["ts"] + step)
    hit = target.notna() & (age > target)
    hours = age[hit].dt.total_seconds() / 3600
    detail = "newest bar closed " + hours.map("{:.1f}".format).astype(str) + " h before " + now.isoformat()
    return _rows(newest[hit], "stale_feed", hours.round(2), target[hit].dt.total_seconds() / 3600, detail)


def closes_at(frame: pd.DataFrame, exchange: str, symbol: str, timeframe: str) -> pd.Series:
    """Closes of one market's `timeframe` bars: stored ones, else rolled up from the coarsest finer
    stored timeframe (the last finer bar's close, only for bars whose last finer bar is there)."""
    step = timeframe_seconds(timeframe)
    market = frame[(frame["exchange"] == exchange) & (frame["symbol"] == symbol)]
    finer = sorted(
        {str(tf) for tf in market["timeframe"].unique() if step % timeframe_seconds(str(tf)) == 0},
        key=timeframe_seconds,
        reverse=True,
    )
    if not finer:
        return pd.Series(dtype=float)
    source = market[market["timeframe"] == finer[0]]
    bucket = source["ts"].dt.floor(pd.Timedelta(seconds=step))
    last_bar = bucket + pd.Timedelta(seconds=step - timeframe_seconds(finer[0]))
    complete = source[source["ts"] == last_bar]
    return pd.Series(complete["close"].to_numpy(), index=bucket[source["ts"] == last_bar].to_numpy())


def divergences(frame: pd.DataFrame, config: AnomalyConfig) -> pd.DataFrame:
    """Bars of runs of at least min_bars consecutive bars where two exchanges' closes differ > bps."""
    rule, found = config.divergence, []
    step = pd.Timedelta(seconds=timeframe_seconds(rule.timeframe))
    for symbol, a, b in rule.pairs:
        pair = pd.concat(
            {a: closes_at(frame, a, symbol, rule.timeframe), b: closes_at(frame, b, symbol, rule.timeframe)},
            axis=1,
        ).dropna()
        if pair.empty:
            continue
        pair.index = pd.to_datetime(pair.index, utc=True)
        bps = (np.log(pair[a] / pair[b]).abs() * 10_000).round(1)
        over = bps > rule.bps
        chained = over & over.shift(fill_value=False) & (pair.index.to_series().diff() == step).to_numpy()
        run = (over & ~chained).cumsum().where(over)
        length = run.map(run.value_counts())
        hit = over & (length >= rule.min_bars)
        rows = pd.DataFrame(
            {"exchange": a, "symbol": symbol, "timeframe": rule.timeframe, "ts": pair.index[hit]}
        )
        detail = (
            f"{a} "
            + pair.loc[hit, a].map("{:g}".format).astype(str)
            + f" vs {b} "
            + pair.loc[hit, b].map("{:g}".format).astype(str)
            + ", run of "
            + length[hit].astype(int).astype(str)
            + " bars"
        )
        found.append(_rows(rows, "divergence", bps[hit].to_numpy(), rule.bps, detail.to_numpy()))
    return pd.concat(found, ignore_index=True) if found else empty_anomalies()


def detect_anomalies(candles: pd.DataFrame, config: AnomalyConfig, now: pd.Timestamp) -> pd.DataFrame:
    """Every anomaly of every detector over `candles` (any markets and timeframes), ANOMALY_COLUMNS."""
    if candles.empty:
        return empty_anomalies()
    frame = prepare(candles)
    parts = [
        price_jumps(frame, config.price_jump),
        volume_spikes(frame, config.volume_spike),
        stuck_feeds(frame, config.stuck_feed),
        stale_feeds(frame, config.freshness, pd.Timestamp(now).tz_convert("UTC")),
        divergences(frame, config),
    ]
    found = (
        pd.concat([p for p in parts if not p.empty], ignore_index=True)
        if any(len(p) for p in parts)
        else None
    )
    if found is None:
        return empty_anomalies()
    found["value"] = found["value"].astype(float)
    found["threshold"] = found["threshold"].astype(float)
    return found.sort_values(["kind", *MARKET, "ts"], kind="stable").reset_index(drop=True)


def scan_warehouse(warehouse: Warehouse, config: AnomalyConfig, now: pd.Timestamp) -> pd.DataFrame:
    """Every anomaly in the trailing `lookback_days` of each configured timeframe, counted back from
    the newest stored day (so a historical warehouse is scanned where its data is); stale feeds are
    judged against `now`."""
    newest_day = warehouse.newest_partition_date(CANDLES)
    if newest_day is None:
        return empty_anomalies()
    end = pd.Timestamp(newest_day, tz="UTC") + pd.Timedelta(days=1)
    frames = [
        warehouse.candles_of_timeframe(timeframe, end - pd.Timedelta(days=days), end)
        for timeframe, days in config.lookback_days.items()
    ]
    candles = (
        pd.concat([f for f in frames if not f.empty], ignore_index=True)
        if any(len(f) for f in frames)
        else None
    )
    return empty_anomalies() if candles is None else detect_anomalies(candles, config, now)
