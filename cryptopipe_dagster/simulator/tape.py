"""The replay tape: a market's derived trades from a start instant, in hour chunks, up to a stop.

Streams replay exactly the trades the REST endpoints serve (`series.trades_between`), so a trade
missed on a socket can be fetched over REST with the same id, price, amount and time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from cryptopipe_dagster.simulator import series
from cryptopipe_dagster.simulator.clock import iso_ms, parse_instant
from cryptopipe_dagster.simulator.market_data import Market
from cryptopipe_dagster.simulator.trades import Trades, empty_trades

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class StreamConfig:
    """How streams replay: speed (None = as fast as possible), start (None = the simulator clock
    when the feed starts) and an optional stop after a number of trades or at an instant."""

    speed: float | None = 1.0
    start_ms: int | None = None
    stop_after_trades: int | None = None
    stop_at_ms: int | None = None

    def describe(self) -> dict:
        """JSON-ready form, as POST /_sim/stream accepts it back."""
        stop: int | str | None = self.stop_after_trades
        if self.stop_at_ms is not None:
            stop = iso_ms(self.stop_at_ms)
        return {
            "speed": "max" if self.speed is None else self.speed,
            "start": None if self.start_ms is None else iso_ms(self.start_ms),
            "stop_after": stop,
        }


def stream_config(
    speed: float | int | str | None = 1.0,
    start: datetime | str | int | float | None = None,
    stop_after: int | str | datetime | None = None,
) -> StreamConfig:
    """Validate user input: speed is a number > 0 (1 = real time, 10 = ten times) or "max";
    start an instant; stop_after a trade count >= 1 or an instant. ValueError names the bad value."""
    return StreamConfig(_speed(speed), _instant(start, "start"), *_stop(stop_after))


def _speed(value: float | int | str | None) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "max"):
        return None
    text = value.strip().lower().removesuffix("x") if isinstance(value, str) else value
    try:
        speed = float(text) if not isinstance(text, bool) else -1.0
    except ValueError:
        speed = -1.0
    if not 0 < speed < float("inf"):
        raise ValueError(f"stream speed must be a number > 0 or 'max', got {value!r}")
    return speed


def _instant(value: datetime | str | int | float | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError:
        raise ValueError(f"stream {name} must be an ISO 8601 instant, got {value!r}") from None


def _stop(value: int | str | datetime | None) -> tuple[int | None, int | None]:
    if value is None:
        return None, None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"stream stop_after must be >= 1 trades, got {value!r}")
        return value, None
    if isinstance(value, str) and value.strip().isdigit():
        return _stop(int(value.strip()))
    if isinstance(value, datetime | str):
        return None, _instant(value, "stop_after")
    raise ValueError(f"stream stop_after must be a trade count or an ISO 8601 instant, got {value!r}")


@dataclass(frozen=True)
class TapeChunk:
    """Trades with start_ms <= time < end_ms; `lead` holds the trades of the same hour before
    start_ms (only on the first chunk of a replay starting mid-hour: open candles need them)."""

    trades: Trades
    lead: Trades
    start_ms: int
    end_ms: int


def tape(market: Market, start_ms: int, config: StreamConfig) -> Iterator[TapeChunk]:
    """Hour-aligned chunks of the market's trades from start_ms, skipping gaps in the recording,
    until the recording ends or the config's stop is reached (the last chunk is cut there)."""
    bars_ms, length_ms = market.bars_ms, market.timeframe_s * 1000
    remaining = config.stop_after_trades
    t = start_ms
    first = True
    while remaining is None or remaining > 0:
        t = _next_covered(bars_ms, length_ms, t)
        if t is None or (config.stop_at_ms is not None and t >= config.stop_at_ms):
            return
        bar_end = int(bars_ms[int(bars_ms.searchsorted(t, "right")) - 1]) + length_ms
        stop = bar_end if config.stop_at_ms is None else config.stop_at_ms
        end = min(t - t % HOUR_MS + HOUR_MS, bar_end, stop)
        trades = series.trades_between(market, t, end, end - 1)
        if remaining is not None and len(trades) >= remaining:
            trades = trades.select(slice(0, remaining))
            end = int(trades.ts_ms[-1]) + 1
        if remaining is not None:
            remaining -= len(trades)
        lead = empty_trades()
        if first and t % HOUR_MS:
            lead = series.trades_between(market, t - t % HOUR_MS, t, t - 1)
        first = False
        yield TapeChunk(trades, lead, t, end)
        t = end


def _next_covered(bars_ms, length_ms: int, t: int) -> int | None:
    """t itself when a recorded bar covers it, else the start of the next bar (None after the end)."""
    p = int(bars_ms.searchsorted(t, "right")) - 1
    if p >= 0 and int(bars_ms[p]) + length_ms > t:
        return t
    p += 1
    return int(bars_ms[p]) if p < len(bars_ms) else None
