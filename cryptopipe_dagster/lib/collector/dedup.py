"""Per-market duplicate filter with bounded memory: the most recent `capacity` trade ids.

Exchanges re-send trades (reconnect snapshots, REST fills overlapping the stream, duplicated
frames). Duplicates older than the window are rare and harmless: the warehouse MERGE on
(exchange, symbol, trade_id) is the final guard; this filter keeps them off the wire.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice

import numpy as np


class RecentIds:
    """Insertion-ordered set of the last `capacity` ids (oldest evicted first)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: dict[str, None] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def fresh(self, ids: Sequence[str]) -> np.ndarray:
        """Mask of the ids not remembered (the first of repeats within `ids` counts as fresh)."""
        seen = self._ids
        within: set[str] = set()
        mask = np.empty(len(ids), dtype=bool)
        for i, trade_id in enumerate(ids):
            mask[i] = trade_id not in seen and trade_id not in within
            within.add(trade_id)
        return mask

    def remember(self, ids: Sequence[str]) -> None:
        """Add ids; evict the oldest beyond capacity."""
        self._ids.update(dict.fromkeys(ids))
        over = len(self._ids) - self.capacity
        if over > 0:
            for old in list(islice(self._ids, over)):
                del self._ids[old]
