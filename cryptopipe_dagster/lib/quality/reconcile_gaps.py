"""Reconciliation mismatches as gap ledger entries: runs of consecutive mismatched minutes per market
and reason become spans in ops.gaps.

- ``missing_rest_candle``: the exchange's 1m candle is missing: a candle gap (timeframe 1m) that
  the scheduled repair re-fetches like any other.
- ``missing_from_trades`` (trades missing: a dropped stream or an incomplete REST fill),
  ``price_mismatch`` and ``volume_mismatch`` (the trades disagree with the candle): trade gaps
  (timeframe 'trades'), listed for operators; the collector's next REST fill is their repair.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptopipe_dagster.lib.historical.gap_ledger import CANDLES_KIND, TRADES_KIND, new_gaps
from cryptopipe_dagster.lib.warehouse import Warehouse

MINUTE = pd.Timedelta(minutes=1)
CANDLE_REASONS = frozenset({"missing_rest_candle"})


def mismatch_spans(compared: pd.DataFrame) -> pd.DataFrame:
    """Runs of consecutive mismatched minutes: exchange, symbol, reason, span_start, span_end
    (exclusive), minutes. One vectorized pass: a run breaks where the market or reason changes or
    a minute is skipped."""
    columns = ["exchange", "symbol", "reason", "span_start", "span_end", "minutes"]
    bad = compared[compared["mismatch"].notna()]
    if bad.empty:
        return pd.DataFrame(columns=columns)
    bad = bad.assign(reason=bad["mismatch"].astype(str), minute=pd.to_datetime(bad["minute"], utc=True))
    bad = bad.sort_values(["exchange", "symbol", "reason", "minute"]).reset_index(drop=True)
    # NumPy arrays: BigQuery's client returns Arrow-backed columns, whose bools cannot be summed.
    keys = bad[["exchange", "symbol", "reason"]].astype(str).to_numpy()
    same_group = np.r_[False, (keys[1:] == keys[:-1]).all(axis=1)]
    minutes = bad["minute"].to_numpy(dtype="datetime64[ns]")
    next_minute = np.r_[False, (minutes[1:] - minutes[:-1]) == np.timedelta64(1, "m")]
    run_id = np.cumsum(~(same_group & next_minute))
    runs = bad.groupby(run_id, sort=False).agg(
        exchange=("exchange", "first"),
        symbol=("symbol", "first"),
        reason=("reason", "first"),
        span_start=("minute", "min"),
        last=("minute", "max"),
        minutes=("minute", "size"),
    )
    return runs.assign(span_end=runs["last"] + MINUTE)[columns].reset_index(drop=True)


def record_mismatch_gaps(warehouse: Warehouse, compared: pd.DataFrame, now: pd.Timestamp) -> int:
    """Record the mismatch spans of a reconciliation in the gap ledger; how many were new."""
    spans = mismatch_spans(compared)
    frames = []
    for (exchange, symbol, reason), group in spans.groupby(["exchange", "symbol", "reason"], sort=True):
        is_candle = reason in CANDLE_REASONS
        rows = zip(group.span_start, group.span_end, group.minutes.astype(int), strict=True)
        frames.append(
            new_gaps(
                str(exchange),
                str(symbol),
                "1m" if is_candle else TRADES_KIND,
                rows,
                kind=CANDLES_KIND if is_candle else TRADES_KIND,
                source=f"reconcile:{reason}",
                now=now,
            )
        )
    return warehouse.record_gaps(pd.concat(frames, ignore_index=True)) if frames else 0
