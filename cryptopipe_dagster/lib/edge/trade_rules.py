"""The trade edge's shared pieces, free of any columnar engine (the collector imports only these):
the stored Arrow types and the per-value symbol and side rules the fast paths apply."""

from __future__ import annotations

import pyarrow as pa

from cryptopipe_dagster.lib.edge.schemas import SIDES
from cryptopipe_dagster.lib.edge.symbols import canonical_symbol
from cryptopipe_dagster.lib.errors import InvalidSymbol

# A venue with integer trade ids (NUMERIC_TRADE_IDS) sends decimal digits; anything else is refused.
NUMERIC_ID_PATTERN = r"[0-9]{1,40}"

TRADE_ARROW_SCHEMA = pa.schema(
    [
        ("exchange", pa.large_string()),
        ("symbol", pa.large_string()),
        ("trade_id", pa.large_string()),
        ("ts", pa.timestamp("ns", tz="UTC")),
        ("price", pa.float64()),
        ("amount", pa.float64()),
        ("side", pa.large_string()),
        ("source", pa.large_string()),
        ("ingested_at", pa.timestamp("ns", tz="UTC")),
    ]
)


def canonical_or_none(symbol: str | None) -> str | None:
    """The canonical pair, None where the exact path would refuse the symbol."""
    try:
        return canonical_symbol(symbol) if symbol is not None else None
    except InvalidSymbol:
        return None


def side_or_none(side: str | None) -> str | None:
    """The exact path's side rule: missing is unknown, case does not matter, others are refused
    (non-ASCII too: Python's and Arrow's lower-casing may differ there, so the exact path decides)."""
    if side is not None and not side.isascii():
        return None
    lowered = "unknown" if side is None else side.lower()
    return lowered if lowered in SIDES else None
