"""Payload shapes at rest and in transit: rows of ops.payload_fingerprints, the known shapes read
back from them, and the Pub/Sub attribute the collector (which has no warehouse) sends them in.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Sequence

import pandas as pd

from cryptopipe_dagster.lib.edge.fingerprint import (
    FingerprintObservation,
    PayloadTracker,
    Shape,
    fingerprint_of,
)
from cryptopipe_dagster.lib.edge.schemas import Text


def observations_frame(observations: Sequence[FingerprintObservation]) -> pd.DataFrame:
    """Rows of ops.payload_fingerprints for `observations` (fields and diff as JSON text)."""
    rows = [
        {
            "exchange": o.exchange,
            "endpoint": o.endpoint,
            "fingerprint": o.fingerprint,
            "fields": json.dumps([list(pair) for pair in o.shape]),
            "previous_fingerprint": fingerprint_of(o.previous) if o.previous is not None else None,
            "diff": json.dumps(o.diff.rows()) if o.diff else None,
            "first_seen": o.seen_at,
            "last_seen": o.seen_at,
        }
        for o in observations
    ]
    frame = pd.DataFrame(rows, columns=list(FINGERPRINT_COLUMNS))
    text = [c for c in FINGERPRINT_COLUMNS if c not in ("first_seen", "last_seen")]
    frame = frame.astype({c: Text for c in text})
    for column in ("first_seen", "last_seen"):
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[ns, UTC]")
    return frame


def shape_from_fields(fields_json: str) -> Shape:
    """A stored `fields` JSON back to a shape."""
    return tuple(sorted((str(p), str(t)) for p, t in json.loads(fields_json)))


FINGERPRINT_COLUMNS = (
    "exchange",
    "endpoint",
    "fingerprint",
    "fields",
    "previous_fingerprint",
    "diff",
    "first_seen",
    "last_seen",
)


def known_shapes(stored: pd.DataFrame) -> dict[tuple[str, str], Shape]:
    """The latest stored shape per (exchange, endpoint) from ops.payload_fingerprints rows."""
    if stored.empty:
        return {}
    latest = stored.sort_values(["last_seen", "first_seen"]).groupby(["exchange", "endpoint"]).tail(1)
    return {
        (str(e), str(p)): shape_from_fields(str(f))
        for e, p, f in zip(latest["exchange"], latest["endpoint"], latest["fields"], strict=True)
    }


# The live path: the collector has no warehouse, so the shapes it saw first travel with its next
# Pub/Sub message as one attribute (zlib + base64 JSON; Pub/Sub caps an attribute value at 1024
# bytes, a shape of a few dozen fields compresses to a few hundred), and the stream loader stores them.
SHAPES_ATTRIBUTE = "payload_shapes"
MAX_ATTRIBUTE_BYTES = 1024


def shapes_attribute(observations: Sequence[FingerprintObservation]) -> str | None:
    """The observations' shapes as one attribute value; None when none fit the attribute limit."""
    entries = [
        {"endpoint": o.endpoint, "fields": [list(pair) for pair in o.shape], "seen_at": o.seen_at.isoformat()}
        for o in observations
    ]
    while entries:
        text = base64.b64encode(zlib.compress(json.dumps(entries).encode(), 9)).decode()
        if len(text) <= MAX_ATTRIBUTE_BYTES:
            return text
        entries.pop()  # the rest are seen again (and sent) with a later batch of a new collector run
    return None


def record_attribute_shapes(tracker: PayloadTracker, exchange: str, text: str) -> None:
    """Queue the shapes of a collector's attribute in `tracker` (seeded with the stored shapes),
    so each new one gets its diff against the endpoint's last known shape. Unreadable text is
    ignored: a shape is an observation, never a reason to hold back the data it came with."""
    try:
        entries = json.loads(zlib.decompress(base64.b64decode(text)))
    except (ValueError, zlib.error):
        return
    for entry in entries if isinstance(entries, list) else []:
        try:
            shape = tuple(sorted((str(p), str(t)) for p, t in entry["fields"]))
            tracker.record_shape(exchange, str(entry["endpoint"]), shape, pd.Timestamp(entry["seen_at"]))
        except (KeyError, TypeError, ValueError):
            continue


def store_carried_shapes(warehouse, attributes: Sequence[dict]) -> int:
    """Store the shapes that messages (their attributes) carried, each new one with its diff
    against the endpoint's last stored shape; returns how many shapes were new to the warehouse."""
    carried = [(str(a.get("exchange", "")), a[SHAPES_ATTRIBUTE]) for a in attributes if SHAPES_ATTRIBUTE in a]
    if not carried:
        return 0
    tracker = PayloadTracker(known=known_shapes(warehouse.payload_fingerprints()))
    for exchange, text in carried:
        record_attribute_shapes(tracker, exchange, text)
    return warehouse.record_payload_fingerprints(observations_frame(tracker.take_pending()))
