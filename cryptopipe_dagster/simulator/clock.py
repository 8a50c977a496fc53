"""The simulator's notion of `now`: the wall clock, a frozen instant, or an instant that keeps running."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def parse_instant(value: datetime | str | int | float) -> int:
    """An instant as epoch milliseconds: a datetime (naive means UTC), ISO 8601 text or epoch seconds."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return round(moment.timestamp() * 1000)
    if isinstance(value, bool):
        raise ValueError(f"not an instant: {value!r}")
    if isinstance(value, int | float):
        return round(float(value) * 1000)
    if isinstance(value, str):
        text = value.strip()
        try:
            return round(float(text) * 1000)
        except ValueError:
            pass
        try:
            return parse_instant(datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError as exc:
            raise ValueError(f"not an ISO 8601 instant: {value!r}") from exc
    raise ValueError(f"not an instant: {value!r}")


def iso_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC text with milliseconds, e.g. 2019-10-17T09:30:00.000Z."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


class SimClock:
    """Wall clock by default; `set(instant)` freezes it there, `set(instant, running=True)` lets it run."""

    def __init__(self, now: datetime | str | None = None) -> None:
        self._anchor_ms: int | None = None
        self._offset_ms = 0
        self._running = False
        if now is not None:
            self.set(now)

    def set(self, now: datetime | str | int | float | None, *, running: bool = False) -> None:
        """Move the clock to `now` (None: back to the wall clock)."""
        if now is None:
            self._anchor_ms, self._running = None, False
            return
        self._anchor_ms = parse_instant(now)
        self._running = running
        self._offset_ms = self._anchor_ms - _wall_ms()

    def now_ms(self) -> int:
        """Current simulated time in epoch milliseconds."""
        if self._anchor_ms is None:
            return _wall_ms()
        return _wall_ms() + self._offset_ms if self._running else self._anchor_ms

    def describe(self) -> dict:
        """JSON-ready state for /_sim/stats."""
        mode = "wall" if self._anchor_ms is None else ("running" if self._running else "frozen")
        return {"mode": mode, "now": iso_ms(self.now_ms())}


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000
