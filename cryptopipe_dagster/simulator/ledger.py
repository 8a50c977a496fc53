"""The emitted-trades ledger of one replayed market: every trade the replay has passed, in order.

A trade enters the ledger when the replay reaches it, whether or not its message reached anyone
(faults drop, corrupt or delay messages, never ledger entries), so "the warehouse holds exactly the
ledger" is the end-to-end check for a collector that recovers gaps over REST.
"""

from __future__ import annotations

import numpy as np

from cryptopipe_dagster.simulator.clock import iso_ms


class Ledger:
    """Trade ids and times in emission order: committed chunks plus the current chunk's prefix."""

    def __init__(self) -> None:
        self._ids: list[np.ndarray] = []
        self._ts: list[np.ndarray] = []
        self._current_ids = np.empty(0, dtype=np.int64)
        self._current_ts = np.empty(0, dtype=np.int64)
        self._current_n = 0
        self.count = 0

    def begin(self, trade_ids: np.ndarray, ts_ms: np.ndarray) -> None:
        """Start a chunk whose trades will be emitted one by one (`advance`)."""
        self.commit()
        self._current_ids, self._current_ts, self._current_n = trade_ids, ts_ms, 0

    def advance(self) -> None:
        """The next trade of the current chunk was emitted."""
        self._current_n += 1
        self.count += 1

    def commit(self) -> None:
        """Move the emitted prefix of the current chunk to the committed part."""
        if self._current_n:
            self._ids.append(self._current_ids[: self._current_n])
            self._ts.append(self._current_ts[: self._current_n])
        self._current_ids = self._current_ids[self._current_n :]
        self._current_ts = self._current_ts[self._current_n :]
        self._current_n = 0

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(trade ids, times in ms) of every emitted trade."""
        self.commit()
        if not self._ids:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        if len(self._ids) > 1:  # compact, so repeated reads stay cheap
            self._ids, self._ts = [np.concatenate(self._ids)], [np.concatenate(self._ts)]
        return self._ids[0], self._ts[0]

    def last_id(self) -> int | None:
        """Id of the newest emitted trade."""
        if self._current_n:
            return int(self._current_ids[self._current_n - 1])
        return int(self._ids[-1][-1]) if self._ids else None

    def describe(self, offset: int = 0, limit: int | None = None) -> dict:
        """Count, first and last trade, and ids[offset : offset + limit] (all when limit is None)."""
        ids, ts = self.arrays()
        summary: dict = {
            "count": len(ids),
            "first_id": None,
            "last_id": None,
            "first_ts": None,
            "last_ts": None,
        }
        if len(ids):
            summary.update(
                first_id=int(ids[0]),
                last_id=int(ids[-1]),
                first_ts=iso_ms(int(ts[0])),
                last_ts=iso_ms(int(ts[-1])),
            )
        end = len(ids) if limit is None else offset + limit
        summary.update(offset=offset, ids=ids[offset:end].tolist())
        return summary
