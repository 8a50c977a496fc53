"""Payload drift: a venue changing its format, as the `payload_drift` (REST) and `ws_drift`
(WebSocket) faults apply it to records.

One change per fault (FaultSettings.drift_change): `rename` a field (`close` -> `close_v2`; an
array row loses the value instead), `retype` it (the value wrapped in an object), or `add` a new
field. The field is the first of FaultSettings.drift_fields the record has (arrays: position 4,
the close of every venue's OHLCV array).
"""

from __future__ import annotations

import random
from typing import Any

DRIFT_CHANGES = ("rename", "retype", "add")
ADDED_FIELD = "drift_extra"
_ARRAY_POSITION = 4


def drift_record(record: Any, change: str, fields: tuple[str, ...]) -> Any:
    """A copy of `record` with the change applied (records of other shapes come back as they are)."""
    if change not in DRIFT_CHANGES:
        raise ValueError(f"drift_change must be one of {', '.join(DRIFT_CHANGES)}, not {change!r}")
    if isinstance(record, dict):
        return _drift_dict(record, change, fields)
    if isinstance(record, list) and len(record) > _ARRAY_POSITION:
        row = list(record)
        if change == "rename":
            del row[_ARRAY_POSITION]
        elif change == "retype":
            row[_ARRAY_POSITION] = {"value": row[_ARRAY_POSITION]}
        else:
            row.append("1")
        return row
    return record


def _drift_dict(record: dict, change: str, fields: tuple[str, ...]) -> dict:
    out = dict(record)
    if change == "add":
        out[ADDED_FIELD] = "1"
        return out
    name = next((f for f in fields if f in out), None)
    if name is None:
        return out
    if change == "rename":
        out[f"{name}_v2"] = out.pop(name)
    else:
        out[name] = {"value": out[name]}
    return out


def drift_rows(rows: list, change: str, fields: tuple[str, ...], share: float, rng: random.Random) -> None:
    """In place: a `share` of the rows (chosen by `rng`; all of them at 1.0) drifted."""
    count = len(rows) if share >= 1.0 else round(len(rows) * max(share, 0.0))
    for index in rng.sample(range(len(rows)), k=count):
        rows[index] = drift_record(rows[index], change, fields)
