"""Message format of the ``market-data`` topic: one message = one micro-batch of one market.

Payload: an Arrow IPC *stream* (zstd-compressed buffers) of the canonical records (TradeSchema or
CandleSchema columns). Arrow rather than JSON lines because the batch is already a column store on
both ends: types survive exactly (float64 bits, ns UTC timestamps, strings) with no text
conventions to agree on, the schema travels inside the payload (drift is visible, not guessed),
decoding is one vectorized call straight into pandas/DuckDB, and it is several times smaller than
JSON, which matters against Pub/Sub's 10 MB message cap and per-byte pricing. The cost, payloads
not readable in a console, is paid back by the attributes, which carry everything needed to route
and audit a message without decoding it:

    exchange, symbol   the market (also the ordering key ``exchange:symbol``)
    kind               trades | candles | dead_letters (records the collector rejected at the edge;
                       the collector has no warehouse access, so they travel the same way)
    schema_version     of the record layout; also stored in the Arrow schema metadata
    event_ts           ISO-8601 UTC of the batch's max event time (``ts``)
    batch_id           sha256 of kind + the sorted record keys: a re-published batch has the same id
    record_count       rows in the batch
    content_type       application/vnd.apache.arrow.stream (lets the format change without guessing)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast, get_args

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cryptopipe_dagster.lib.edge.schemas import frame_from_arrow
from cryptopipe_dagster.lib.errors import InvalidBatch, UndecodableMessage

RecordKind = Literal["trades", "candles", "dead_letters"]
RECORD_KINDS: tuple[str, ...] = get_args(RecordKind)
SCHEMA_VERSION = "1"
CONTENT_TYPE = "application/vnd.apache.arrow.stream"
EVENT_TIME_COLUMN = "ts"
# The time column event_ts is taken from, per kind (a dead letter's event is its rejection).
EVENT_TIME_COLUMNS: dict[str, str] = {"trades": "ts", "candles": "ts", "dead_letters": "first_seen_at"}
# The deterministic record keys (the warehouse MERGE keys) of each kind.
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "trades": ("exchange", "symbol", "trade_id"),
    "candles": ("exchange", "symbol", "timeframe", "ts"),
    "dead_letters": ("exchange", "dead_letter_id"),
}
# A dead letter's symbol may be unreadable (null); the batch's symbol attribute is then this.
ANY_SYMBOL = "*"
# Pub/Sub refuses messages over 10 MB; leave room for attributes and request framing.
MAX_MESSAGE_BYTES = 9_500_000
REQUIRED_ATTRIBUTES = ("content_type", "schema_version", "kind", "exchange", "symbol", "batch_id")
_META_KIND = b"cryptopipe.kind"
_META_SCHEMA_VERSION = b"cryptopipe.schema_version"
_KEY_SEPARATOR = "\x1f"  # ASCII unit separator: cannot occur in exchange ids, symbols or trade ids


@dataclass(frozen=True)
class EncodedBatch:
    """A batch ready for ``PublisherClient.publish(topic, data, ordering_key, **attributes)``."""

    data: bytes
    ordering_key: str
    attributes: dict[str, str]

    @property
    def batch_id(self) -> str:
        """The deterministic id (also in `attributes`)."""
        return self.attributes["batch_id"]


def market_ordering_key(exchange: str, symbol: str) -> str:
    """The ordering key of a market: ``exchange:symbol``, e.g. ``binance:BTC/USDT``."""
    return f"{exchange}:{symbol}"


def encode_batch(records: pd.DataFrame | pa.Table, kind: RecordKind) -> EncodedBatch:
    """Serialize one market's records as an Arrow IPC stream with the attributes above.

    InvalidBatch if `kind` is unknown, the batch is empty, spans several markets, lacks a key
    column or a UTC ``ts``, has a null key, or encodes to more than MAX_MESSAGE_BYTES.
    """
    if kind not in RECORD_KINDS:
        raise InvalidBatch("unknown kind", kind)
    table = records if isinstance(records, pa.Table) else pa.Table.from_pandas(records, preserve_index=False)
    _check_shape(table, kind)
    exchange, symbol = _market_of(table, kind)
    if exchange is None or symbol is None:
        raise InvalidBatch("a batch must hold exactly one exchange and one symbol", _markets(table))
    metadata = {
        **(table.schema.metadata or {}),
        _META_KIND: kind.encode(),
        _META_SCHEMA_VERSION: SCHEMA_VERSION.encode(),
    }
    data = _ipc_bytes(table.replace_schema_metadata(metadata))
    if len(data) > MAX_MESSAGE_BYTES:
        raise InvalidBatch(
            f"encoded size {len(data)} B exceeds {MAX_MESSAGE_BYTES} B: split it", table.num_rows
        )
    attributes = {
        "exchange": exchange,
        "symbol": symbol,
        "kind": kind,
        "schema_version": SCHEMA_VERSION,
        "event_ts": _iso_utc(max_event_ns(table, EVENT_TIME_COLUMNS[kind])),
        "batch_id": batch_id(table, kind),
        "record_count": str(table.num_rows),
        "content_type": CONTENT_TYPE,
    }
    return EncodedBatch(data=data, ordering_key=market_ordering_key(exchange, symbol), attributes=attributes)


def decode_batch(data: bytes, attributes: Mapping[str, str]) -> pd.DataFrame:
    """The records of a message, checked against its attributes; UndecodableMessage(reason_code) if not.

    Reason codes: missing_attribute, unsupported_content_type, unsupported_schema_version,
    unknown_kind, undecodable_payload, invalid_columns, empty_batch, attribute_mismatch,
    batch_id_mismatch.
    """
    missing = [name for name in REQUIRED_ATTRIBUTES if not attributes.get(name)]
    if missing:
        raise UndecodableMessage("missing_attribute", f"attributes {missing} absent")
    if attributes["content_type"] != CONTENT_TYPE:
        raise UndecodableMessage("unsupported_content_type", attributes["content_type"])
    if attributes["schema_version"] != SCHEMA_VERSION:
        raise UndecodableMessage("unsupported_schema_version", attributes["schema_version"])
    kind = attributes["kind"]
    if kind not in RECORD_KINDS:
        raise UndecodableMessage("unknown_kind", kind)
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
        # Arrow trusts the buffers it reads: a corrupt one (bad offsets, invalid UTF-8) would crash
        # a compute kernel (a segfault, seen with one flipped bit) instead of raising. Check all.
        table.validate(full=True)
    except (pa.ArrowException, ValueError, OSError) as error:
        raise UndecodableMessage("undecodable_payload", f"{type(error).__name__}: {error}") from error
    try:
        _check_shape(table, cast(RecordKind, kind))
    except InvalidBatch as error:
        code = "empty_batch" if error.reason == "empty batch" else "invalid_columns"
        raise UndecodableMessage(code, str(error)) from error
    try:
        _check_attributes(table, cast(RecordKind, kind), attributes)
        return frame_from_arrow(table)
    except UndecodableMessage:
        raise
    # Values no producer of ours writes (times beyond what pandas or a ns cast holds, ...): the
    # loader dead-letters the message with this reason instead of failing its tick.
    except (pa.ArrowException, ValueError, TypeError, OverflowError) as error:
        raise UndecodableMessage("invalid_columns", f"{type(error).__name__}: {error}") from error


def batch_id(table: pa.Table, kind: RecordKind) -> str:
    """sha256 hex of the kind and the sorted record keys: row order and non-key values do not change it."""
    keys = [_key_text(table[column]) for column in KEY_COLUMNS[kind]]
    joined = pc.binary_join_element_wise(*keys, _KEY_SEPARATOR).combine_chunks()
    ordered = pc.take(joined, pc.array_sort_indices(joined))
    digest = hashlib.sha256(kind.encode())
    digest.update(("\n" + "\n".join(ordered.to_pylist())).encode())
    return digest.hexdigest()


def max_event_ns(table: pa.Table, column: str = EVENT_TIME_COLUMN) -> int:
    """The latest ``ts`` (or `column`) as epoch nanoseconds (UTC)."""
    as_ns = pc.cast(table[column], pa.timestamp("ns", tz="UTC"))
    return int(pc.max(pc.cast(as_ns, pa.int64())).as_py())


def _check_shape(table: pa.Table, kind: RecordKind) -> None:
    event_column = EVENT_TIME_COLUMNS[kind]
    required = dict.fromkeys((*KEY_COLUMNS[kind], "symbol", event_column))
    missing = [column for column in required if column not in table.column_names]
    if missing:
        raise InvalidBatch("missing columns", missing)
    ts_type = table.schema.field(event_column).type
    if not pa.types.is_timestamp(ts_type) or ts_type.tz is None:
        raise InvalidBatch(f"{event_column} must be a timezone-aware timestamp", str(ts_type))
    for column in required:
        column_type = table.schema.field(column).type
        if column != event_column and not pa.types.is_timestamp(column_type) and not _is_text(column_type):
            raise InvalidBatch(f"{column} must be text", str(column_type))
    if table.num_rows == 0:
        raise InvalidBatch("empty batch")
    nulls = {column: table[column].null_count for column in KEY_COLUMNS[kind] if table[column].null_count}
    if nulls:
        raise InvalidBatch("null record keys", nulls)


def _is_text(arrow_type: pa.DataType) -> bool:
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


def _check_attributes(table: pa.Table, kind: RecordKind, attributes: Mapping[str, str]) -> None:
    for column, value in zip(("exchange", "symbol"), _market_of(table, kind), strict=True):
        if value != attributes[column]:
            raise UndecodableMessage(
                "attribute_mismatch", f"{column}={attributes[column]!r} but records hold {_markets(table)}"
            )
    actual = batch_id(table, kind)
    if actual != attributes["batch_id"]:
        raise UndecodableMessage(
            "batch_id_mismatch", f"attribute {attributes['batch_id']} != records {actual}"
        )


def _market_of(table: pa.Table, kind: RecordKind) -> tuple[str | None, str | None]:
    """(exchange, symbol) the batch belongs to; None where the records hold several (or none)."""
    exchange, symbol = _single_value(table, "exchange"), _single_value(table, "symbol")
    if kind == "dead_letters" and symbol is None:
        readable = pc.unique(pc.drop_null(table["symbol"]))
        symbol = str(readable[0].as_py()) if len(readable) == 1 else ANY_SYMBOL
    return exchange, symbol


def _single_value(table: pa.Table, column: str) -> str | None:
    values = pc.unique(table[column])
    return str(values[0].as_py()) if len(values) == 1 and values[0].is_valid else None


def _markets(table: pa.Table) -> list[str]:
    pairs = table.select(["exchange", "symbol"]).group_by(["exchange", "symbol"]).aggregate([])
    return [
        f"{e}:{s}" for e, s in zip(pairs["exchange"].to_pylist(), pairs["symbol"].to_pylist(), strict=True)
    ]


def _key_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    # Timestamps as integer ns: one spelling per instant, whatever unit or zone the column has.
    if pa.types.is_timestamp(column.type):
        column = pc.cast(pc.cast(column, pa.timestamp("ns", tz="UTC")), pa.int64())
    return pc.cast(column, pa.string())


def _ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _iso_utc(epoch_ns: int) -> str:
    return pd.Timestamp(epoch_ns, unit="ns", tz="UTC").isoformat().replace("+00:00", "Z")
