"""Payload fingerprints: the shape (field paths and JSON types) of what an exchange endpoint sends.

A shape is the sorted set of (field path, JSON type) of one record: for a ccxt trade, the venue's
raw payload under ``info.`` (nested dicts as dotted paths) plus the names of ccxt's unified fields;
for a ccxt OHLCV row (ccxt keeps no raw payload per row), its six positions named ts..volume.
A fingerprint is the sha256 of a shape. Shapes are taken from a bounded sample of each batch
(first, last and evenly spaced records) plus every rejected record, never from every record: the
hot path stays columnar.

Drift is a field that is new, missing or of another type than in the endpoint's last known shape.
A rejected record whose own shape has lost or retyped a field of the known shape was not bad
data: the exchange changed its format. Its reason becomes ``schema_drift``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SAMPLE_SIZE = 32  # records fingerprinted per batch (plus the rejected ones)
SAMPLE_EVERY_S = 1.0  # per endpoint, see PayloadTracker.sample_every_s
MAX_DEPTH = 3  # nested payload levels named in a shape
# Reasons a changed format produces (a value gone, a number turned text or container, a row
# reshaped); other reasons (a negative price, an inconsistent candle) are about values, not shape.
DRIFT_PRONE_REASONS = frozenset(
    {"malformed_row", "null_value", "non_numeric_value", "ts_out_of_range", "invalid_trade_id"}
)
CANDLE_POSITIONS = ("ts", "open", "high", "low", "close", "volume")

Shape = tuple[tuple[str, str], ...]
UNIFIED = "unified"  # the type recorded for a ccxt unified field (its name is the contract)


def json_type(value: object) -> str:
    """The JSON type name of a decoded value (int and float are both `number`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, int | float | np.number):
        return "number"
    return type(value).__name__


def record_shape(record: object) -> Shape:
    """The (path, type) pairs of one record: a dict's keys (nested dicts dotted), an OHLCV row's
    positions, or a single ('$', type) for anything else."""
    pairs: list[tuple[str, str]] = []
    if isinstance(record, dict) and isinstance(record.get("info"), dict):
        # A ccxt unified record: the venue's payload (`info`) is what drifts; the unified fields
        # are ccxt's own format, derived from it (a price ccxt could not read is None there, which
        # says nothing about the format), so only their names are part of the shape.
        _walk(record["info"], "info.", pairs, 1)
        pairs += [(key, UNIFIED) for key in record if key != "info"]
    elif isinstance(record, dict):
        _walk(record, "", pairs, 0)
    elif isinstance(record, list | tuple) and len(record) == len(CANDLE_POSITIONS):
        pairs = [(name, json_type(value)) for name, value in zip(CANDLE_POSITIONS, record, strict=True)]
    else:
        pairs = [("$", json_type(record))]
    return tuple(sorted(pairs))


def _walk(record: dict, prefix: str, pairs: list, depth: int) -> None:
    for key, value in record.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and depth < MAX_DEPTH:
            _walk(value, f"{path}.", pairs, depth + 1)
        else:
            pairs.append((path, json_type(value)))


def fingerprint_of(shape: Shape) -> str:
    """sha256 hex of a shape (stable across runs and machines)."""
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()


def sample_positions(n: int, size: int = SAMPLE_SIZE) -> np.ndarray:
    """Up to `size` evenly spaced positions of n records, always including the first and last."""
    if n <= size:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, size).round().astype(np.int64))


@dataclass(frozen=True)
class ShapeDiff:
    """Fields added, missing or retyped (path, old type, new type) between two shapes."""

    added: tuple[tuple[str, str], ...] = ()
    missing: tuple[tuple[str, str], ...] = ()
    retyped: tuple[tuple[str, str, str], ...] = ()

    @property
    def breaking(self) -> bool:
        """A field a parser may need is gone or changed type (an added field breaks nothing)."""
        return bool(self.missing or self.retyped)

    def __bool__(self) -> bool:
        return bool(self.added or self.missing or self.retyped)

    def rows(self) -> list[dict]:
        """One row per changed field: change, field, was, now (for tables and JSON)."""
        return (
            [{"change": "added", "field": p, "was": None, "now": t} for p, t in self.added]
            + [{"change": "missing", "field": p, "was": t, "now": None} for p, t in self.missing]
            + [{"change": "retyped", "field": p, "was": a, "now": b} for p, a, b in self.retyped]
        )

    def summary(self) -> str:
        """One line for a dead letter's error_detail."""
        return "; ".join(f"{r['change']} {r['field']} ({r['was']} -> {r['now']})" for r in self.rows())


def diff_shapes(old: Shape, new: Shape) -> ShapeDiff:
    """What changed from `old` to `new`."""
    before, after = dict(old), dict(new)
    return ShapeDiff(
        added=tuple((p, t) for p, t in sorted(after.items()) if p not in before),
        missing=tuple((p, t) for p, t in sorted(before.items()) if p not in after),
        retyped=tuple(
            (p, before[p], after[p]) for p in sorted(after) if p in before and before[p] != after[p]
        ),
    )


@dataclass(frozen=True)
class FingerprintObservation:
    """A shape seen on an endpoint, with its diff against the endpoint's previous known shape."""

    exchange: str
    endpoint: str
    shape: Shape
    previous: Shape | None
    seen_at: pd.Timestamp
    records: int

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.shape)

    @property
    def diff(self) -> ShapeDiff:
        return diff_shapes(self.previous, self.shape) if self.previous is not None else ShapeDiff()


@dataclass
class PayloadTracker:
    """The known shape per (exchange, endpoint) and the observations not yet stored.

    `known` is seeded from ops.payload_fingerprints (the last shape each endpoint had), so drift is
    measured against the last run too, not only within this process."""

    known: dict[tuple[str, str], Shape] = field(default_factory=dict)
    # The shape rejected records are judged against: the known one when this tracker started (else
    # the first sample's most common), held for the tracker's life so a drifted page does not
    # become the yardstick of the pages after it.
    baseline: dict[tuple[str, str], Shape] = field(default_factory=dict)
    pending: list[FingerprintObservation] = field(default_factory=list)
    # A sample per endpoint at most this often: the collector flushes every market several times a
    # second, and shaping 32 dicts each time would cost more than the rest of a small flush.
    # Rejected records are always shaped (and classified), sampled or not.
    sample_every_s: float = SAMPLE_EVERY_S
    _stored: set[tuple[str, str, Shape]] = field(default_factory=set)
    _sampled_at: dict[tuple[str, str], float] = field(default_factory=dict)

    def observe(
        self, exchange: str, endpoint: str, records: Sequence[object], now: pd.Timestamp
    ) -> Shape | None:
        """Fingerprint a sample of `records`; queue each shape new to this tracker.

        Returns the endpoint's baseline shape for classifying rejected records: the last known one,
        else (first sight of the endpoint) the sample's most common shape."""
        key = (exchange, endpoint)
        clock = time.monotonic()
        recent = clock - self._sampled_at.get(key, -math.inf) < self.sample_every_s
        if not len(records) or (recent and key in self.baseline):
            return self.baseline.get(key, self.known.get(key))
        self._sampled_at[key] = clock
        counts = Counter(record_shape(records[i]) for i in sample_positions(len(records)))
        baseline = self.baseline.setdefault(key, self.known.get(key) or counts.most_common(1)[0][0])
        # The last known shape first, so a new shape's diff is taken against it.
        latest = self.known.get(key, baseline)
        for shape, n in sorted(counts.items(), key=lambda item: item[0] != latest):
            self._queue(exchange, endpoint, shape, now, n)
        return baseline

    def _queue(self, exchange: str, endpoint: str, shape: Shape, now: pd.Timestamp, n: int) -> None:
        key = (exchange, endpoint, shape)  # the shape itself: no hashing on every batch
        if key in self._stored:
            return
        previous = self.known.get((exchange, endpoint))
        self._stored.add(key)
        self.pending.append(FingerprintObservation(exchange, endpoint, shape, previous, now, n))
        self.known[(exchange, endpoint)] = shape

    def record_shape(self, exchange: str, endpoint: str, shape: Shape, seen_at: pd.Timestamp) -> None:
        """Queue one shape seen elsewhere (a collector): new ones get their diff vs the known one."""
        self._queue(exchange, endpoint, shape, seen_at, 1)

    def take_pending(self) -> list[FingerprintObservation]:
        """The queued observations (emptying the queue)."""
        taken, self.pending = self.pending, []
        return taken


DriftClassifier = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def drift_classifier(
    tracker: PayloadTracker, exchange: str, endpoint: str, records: Sequence[object], now: pd.Timestamp
) -> DriftClassifier:
    """Observe a batch's sample; return what normalize asks about its rejected records.

    The classifier maps input positions to (drifted mask, error details). It runs only over
    rejected records (few), never over a whole batch; their shapes are observed too, so a shape
    only the bad records have is still recorded."""
    baseline = tracker.observe(exchange, endpoint, records, now)

    def classify(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shapes = [record_shape(records[i]) for i in positions]
        for shape in dict.fromkeys(shapes):
            tracker._queue(exchange, endpoint, shape, now, shapes.count(shape))  # noqa: SLF001 - same module
        diffs = [diff_shapes(baseline, shape) if baseline is not None else ShapeDiff() for shape in shapes]
        drifted = np.fromiter((d.breaking for d in diffs), dtype=bool, count=len(diffs))
        details = np.array(
            [f"payload shape changed vs the endpoint's known fingerprint: {d.summary()}" for d in diffs],
            dtype=object,
        )
        return drifted, details

    return classify


def reclassify_drift(
    classify: DriftClassifier | None,
    positions: np.ndarray,
    reasons: np.ndarray,
    checks: np.ndarray,
    details: np.ndarray,
) -> None:
    """In place: rejected records (at input `positions`) whose payload lost or retyped a known
    field get reason ``schema_drift`` instead of the value-level reason they were given."""
    if classify is None or not len(positions):
        return
    prone = np.flatnonzero(np.isin(reasons, list(DRIFT_PRONE_REASONS)))
    if not len(prone):
        return
    drifted, texts = classify(positions[prone])
    chosen = prone[drifted]
    reasons[chosen] = "schema_drift"
    checks[chosen] = "payload:known_fingerprint"
    details[chosen] = texts[drifted]
