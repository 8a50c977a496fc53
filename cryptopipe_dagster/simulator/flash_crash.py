"""The `flash_crash` scenario: one market crashes and rebounds within minutes, consistently everywhere.

A crash is a V over `minutes` 1m bars from `start`: prices fall linearly to (1 - depth) of their
value at the bottom minute (a third of the way in), then climb back. It is applied to the derived
1m bars (every price times the minute's factor, in integer ticks, volume unchanged), so the trades
derived from those minutes (trades.py), the coarser candles rolled up from them (series.py) and the
recorded parent bar containing them (re-aggregated from its crashed minutes: its low is the crash
low) all agree. Enabled by configuration: `create_app(flash_crash=FlashCrash(...))`,
`SimulatorServer(..., flash_crash=...)` or `cryptopipe sim`-style spec text via `parse_flash_crash`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryptopipe_dagster.simulator.derive import IntBars, aggregate
from cryptopipe_dagster.simulator.market_data import Market

MINUTE_S = 60


@dataclass(frozen=True)
class FlashCrash:
    """Where and how deep: `exchange:symbol` from the minute `start`, for `minutes`, down by `depth`."""

    exchange: str
    symbol: str
    start: pd.Timestamp
    depth: float = 0.3
    minutes: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.depth < 1:
            raise ValueError(f"flash crash depth must be in (0, 1), got {self.depth}")
        if not 2 <= self.minutes <= 60:
            raise ValueError(f"flash crash minutes must be in [2, 60], got {self.minutes}")
        start = pd.Timestamp(self.start)
        start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
        if start != start.floor("min"):
            raise ValueError(f"flash crash start must be a whole minute, got {self.start}")
        object.__setattr__(self, "start", start)

    @property
    def start_s(self) -> int:
        return int(self.start.timestamp())

    def factors(self) -> np.ndarray:
        """The price factor of each crash minute: down to 1 - depth at the bottom, then back up."""
        bottom = self.minutes // 3
        i = np.arange(self.minutes)
        fall = 1 - self.depth * (i + 1) / (bottom + 1)
        rise = 1 - self.depth * (self.minutes - i) / (self.minutes - bottom)
        return np.where(i <= bottom, fall, rise)


def parse_flash_crash(spec: str) -> FlashCrash:
    """`exchange:BASE/QUOTE@ISO-minute[,depth=0.3][,minutes=10]` -> FlashCrash; ValueError naming it."""
    head, *options = [part.strip() for part in spec.split(",")]
    market, at, when = head.partition("@")
    exchange, colon, symbol = market.partition(":")
    if not (at and colon and exchange and symbol and when):
        raise ValueError(f"bad flash crash {spec!r}: expected exchange:BASE/QUOTE@2019-03-18T12:00Z")
    values: dict = {}
    for option in options:
        name, _, value = option.partition("=")
        if name not in ("depth", "minutes"):
            raise ValueError(f"bad flash crash option {option!r}: depth=<fraction> or minutes=<n>")
        values[name] = float(value) if name == "depth" else int(value)
    return FlashCrash(exchange, symbol, pd.Timestamp(when), **values)


@dataclass(frozen=True)
class CrashOverlay:
    """What series.minutes_of_parents needs: the original parents (children are split from them)
    and the crash to apply to the split minutes."""

    crash: FlashCrash
    original: IntBars  # the recorded parent bars the crash changed, before the crash

    def source_parents(self, parents: IntBars) -> IntBars:
        """`parents` with every crashed one replaced by its recorded original."""
        index = np.searchsorted(self.original.ts, parents.ts)
        index = np.minimum(index, len(self.original) - 1)
        hit = self.original.ts[index] == parents.ts
        if not hit.any():
            return parents
        columns = [
            np.where(hit, o[index], p)
            for o, p in zip(self.original.columns(), parents.columns(), strict=True)
        ]
        return IntBars(*columns)

    def apply(self, minutes: IntBars) -> IntBars:
        """The minutes with the crash's factor applied to the prices of the crash minutes."""
        offset = (minutes.ts - self.crash.start_s) // MINUTE_S
        inside = (offset >= 0) & (offset < self.crash.minutes)
        if not inside.any():
            return minutes
        factor = np.ones(len(minutes))
        factor[inside] = self.crash.factors()[offset[inside]]

        def scaled(ticks: np.ndarray) -> np.ndarray:
            # Rounding is monotonic, so open/close stay within low..high.
            return np.where(inside, np.rint(ticks * factor).astype(np.int64), ticks)

        return IntBars(
            minutes.ts,
            scaled(minutes.open),
            scaled(minutes.high),
            scaled(minutes.low),
            scaled(minutes.close),
            minutes.volume,
        )


def crashed_market(market: Market, crash: FlashCrash) -> Market:
    """`market` with the crash: its parent bars around the crash re-aggregated from crashed minutes."""
    from cryptopipe_dagster.simulator.series import minutes_of_parents  # series imports Market

    ts = market.bars.ts
    first = int(np.searchsorted(ts, crash.start_s - market.timeframe_s + 1, "left"))
    last = int(np.searchsorted(ts, crash.start_s + crash.minutes * MINUTE_S, "left"))
    if last <= first:
        raise ValueError(f"no recorded bar of {market.exchange}:{market.symbol} around {crash.start}")
    overlay = CrashOverlay(crash, market.bars.select(slice(first, last)))
    crashed = dataclasses.replace(market, minute_overlay=overlay)
    minutes = minutes_of_parents(crashed, first, last)
    parents = aggregate(minutes, market.timeframe_s)
    bars = [column.copy() for column in market.bars.columns()]
    rows = np.searchsorted(ts, parents.ts)
    for column, values in zip(bars[1:5], parents.columns()[1:5], strict=True):
        column[rows] = values
    return dataclasses.replace(crashed, bars=IntBars(*bars))
