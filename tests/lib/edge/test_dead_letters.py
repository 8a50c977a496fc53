from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from cryptopipe_dagster.lib.edge.dead_letters import (
    build_dead_letters,
    dead_letter_ids,
    empty_dead_letters,
    payload_json,
)
from cryptopipe_dagster.lib.edge.schemas import DeadLetterSchema, schema_columns


def test_payload_json_keeps_every_digit_and_handles_numpy_and_timestamps() -> None:
    record = {
        "p": 0.30000000000000004,
        "n": np.int64(5),
        "f": np.float64(1.1),
        "t": pd.Timestamp("2024-01-01", tz="UTC"),
    }
    (text,) = payload_json([record])
    assert json.loads(text) == {"p": 0.30000000000000004, "n": 5, "f": 1.1, "t": "2024-01-01T00:00:00+00:00"}


def test_id_is_sha256_of_dataset_exchange_reason_payload() -> None:
    expected = hashlib.sha256(b"candles|kraken|null_value|[1, null]").hexdigest()
    assert dead_letter_ids("candles", ["kraken"], ["null_value"], ["[1, null]"]) == [expected]


def test_built_frames_fit_the_schema() -> None:
    letters = build_dead_letters(
        dataset="trades",
        exchange="kraken",
        source="ws",
        reason_code=["malformed_row"],
        check_name=["record"],
        error_detail=["x" * 1000],
        raw_payload=["[]"],
        first_seen_at=pd.Timestamp("2024-01-01", tz="UTC"),
        symbol=[None],
    )
    DeadLetterSchema.validate(letters)
    assert len(letters["error_detail"].iloc[0]) == 300
    assert list(empty_dead_letters().columns) == schema_columns(DeadLetterSchema)
    DeadLetterSchema.validate(empty_dead_letters())
