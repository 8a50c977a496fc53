"""The collector's checkpoint: per market, the newest event Pub/Sub has confirmed.

A restarted collector fills over REST from there (minus a margin), so a crash loses nothing; what
it re-sends is dropped by the warehouse MERGE. Written atomically (temp file + rename).
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class CheckpointStore:
    """``{market_key: {"trades_ts_ms": int, "candles_ts_ms": int}}``, in memory and optionally on disk."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._state: dict[str, dict[str, int]] = {}
        self._dirty = False
        if path is not None and path.exists():
            try:
                loaded = json.loads(path.read_text())
            except ValueError as error:
                raise ValueError(
                    f"collector checkpoint {path} is not JSON ({error}); move it away"
                ) from error
            if not isinstance(loaded, dict) or not all(isinstance(v, dict) for v in loaded.values()):
                raise ValueError(f"collector checkpoint {path} is not a JSON object of markets; move it away")
            self._state = {k: dict(v) for k, v in loaded.items()}

    def get(self, market: str, kind: str) -> int | None:
        """The confirmed high-water event time (ms) of a market's kind, if any."""
        value = self._state.get(market, {}).get(f"{kind}_ts_ms")
        return int(value) if isinstance(value, int) else None

    def advance(self, market: str, kind: str, ts_ms: int) -> None:
        """Move the high-water mark forward (never back)."""
        entry = self._state.setdefault(market, {})
        key = f"{kind}_ts_ms"
        if ts_ms > entry.get(key, -1):
            entry[key] = int(ts_ms)
            self._dirty = True

    def save(self) -> None:
        """Persist if changed since the last save."""
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(self._state, sort_keys=True, indent=1))
        os.replace(tmp, self.path)
        self._dirty = False

    def snapshot(self) -> dict[str, dict[str, int]]:
        """A copy of the whole state."""
        return {k: dict(v) for k, v in self._state.items()}


def start_checkpoint(path: Path, markets: list[str], start_ms: int) -> None:
    """Write a fresh checkpoint that makes a collector answer for every trade from `start_ms` on.

    Without a checkpoint a collector answers from the first trade it reads; a replay (the demo, the
    benchmarks, tests) knows where its tape starts and says so, so nothing before the first read is
    lost to a slow start."""
    store = CheckpointStore(None)
    store.path = path
    for market in markets:
        # Fills start at the whole second at or before the checkpoint: start_ms itself, not a ms before.
        store.advance(market, "trades", start_ms)
    store.save()
