"""The gap ledger's state machine: backoff, repaired, confirmed exchange gap (pure, no I/O)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cryptopipe_dagster.lib.errors import ConfigError
from cryptopipe_dagster.lib.historical.gap_ledger import (
    CONFIRMED,
    OPEN,
    REPAIRED,
    Attempt,
    GapPolicy,
    after_attempt,
    evidence_summary,
    new_gaps,
)

T0 = pd.Timestamp("2026-12-01", tz="UTC")
H = pd.Timedelta(hours=1)
POLICY = GapPolicy(confirm_attempts=3, confirm_after=4 * H, first_backoff=H, max_backoff=3 * H)


def gap() -> dict:
    spans = [(T0 - 48 * H, T0 - 40 * H, 8)]
    return (
        new_gaps("bitstamp", "BTC/USD", "1h", spans, kind="candles", source="backfill", now=T0)
        .iloc[0]
        .to_dict()
    )


def no_data(at: pd.Timestamp) -> Attempt:
    return Attempt(at, returned=0, rejected=0, filled=0, missing=8)


def test_backoff_doubles_and_is_capped() -> None:
    assert [POLICY.backoff(n) for n in (1, 2, 3, 4)] == [H, 2 * H, 3 * H, 3 * H]


def test_a_complete_span_is_repaired_with_its_evidence() -> None:
    row = after_attempt(gap(), Attempt(T0, returned=8, rejected=0, filled=8, missing=0), POLICY)
    assert row["state"] == REPAIRED and row["attempts"] == 1 and row["next_attempt"] is None
    assert json.loads(row["evidence"])[0]["answer"] == "complete"


def test_no_data_is_confirmed_only_after_enough_attempts_over_enough_time() -> None:
    row = gap()
    for at in (T0, T0 + H, T0 + 2 * H):  # three "no data" answers, but only 2 h apart
        row = after_attempt(row, no_data(at), POLICY)
    assert row["state"] == OPEN and row["next_attempt"] == T0 + 2 * H + 3 * H
    row = after_attempt(row, no_data(T0 + 5 * H), POLICY)
    assert row["state"] == CONFIRMED and row["attempts"] == 4 and row["next_attempt"] is None
    assert evidence_summary(row["evidence"]) == "4x no data"


def test_errors_and_partial_answers_never_count_as_no_data() -> None:
    row = gap()
    for hours in range(0, 10, 3):
        row = after_attempt(
            row, Attempt(T0 + hours * H, 0, 0, 0, 8, error="ExchangeUnavailable: 503"), POLICY
        )
    assert row["state"] == OPEN
    row = after_attempt(row, Attempt(T0 + 12 * H, returned=3, rejected=0, filled=3, missing=5), POLICY)
    assert row["state"] == OPEN and evidence_summary(row["evidence"]) == "4x error, 1x partial"


def test_bad_policy_is_a_config_error(monkeypatch) -> None:
    with pytest.raises(ConfigError):
        GapPolicy(confirm_attempts=0)
    monkeypatch.setenv("CRYPTOPIPE_GAP_CONFIRM_ATTEMPTS", "many")
    with pytest.raises(ConfigError, match="CRYPTOPIPE_GAP_CONFIRM_ATTEMPTS"):
        GapPolicy.from_env()
    monkeypatch.setenv("CRYPTOPIPE_GAP_CONFIRM_ATTEMPTS", "2")
    monkeypatch.setenv("CRYPTOPIPE_GAP_CONFIRM_AFTER_S", "60")
    assert GapPolicy.from_env() == GapPolicy(confirm_attempts=2, confirm_after=pd.Timedelta(minutes=1))
