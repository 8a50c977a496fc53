"""The gap ledger (ops.gaps): every missing span found, and what each repair attempt learned.

A gap is keyed by (exchange, symbol, timeframe, span_start) ('trades' as timeframe for trades), so
re-finding it changes nothing. Its state moves:

- ``open``: missing; due for a repair attempt at ``next_attempt`` (exponential backoff).
- ``repaired``: an attempt found the span complete (rows the exchange served on a later ask).
- ``confirmed_exchange_gap``: the exchange answered "no data" for the span on at least
  ``confirm_attempts`` attempts spread over at least ``confirm_after``: a real outage. Nothing is
  ever invented to fill it; it stays listed (and passes the completeness check).

Evidence is a JSON list with one entry per attempt: its time, how many candles the exchange
returned inside the span, how many rows it sent that failed validation, how many candles the
attempt filled, how many are still missing, and the answer ("complete", "no data", "partial",
"rejected"; "error" when the exchange could not be asked, which never counts as "no data").
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from cryptopipe_dagster.lib.errors import ConfigError

OPEN, REPAIRED, CONFIRMED = "open", "repaired", "confirmed_exchange_gap"
STATES = (OPEN, REPAIRED, CONFIRMED)
NO_DATA = "no data"
CANDLES_KIND, TRADES_KIND = "candles", "trades"


@dataclass(frozen=True)
class GapPolicy:
    """When to retry an open gap and when to call it a real exchange outage."""

    confirm_attempts: int = 5
    confirm_after: pd.Timedelta = pd.Timedelta(hours=24)
    first_backoff: pd.Timedelta = pd.Timedelta(minutes=15)
    max_backoff: pd.Timedelta = pd.Timedelta(hours=6)

    def __post_init__(self) -> None:
        if self.confirm_attempts < 1:
            raise ConfigError(f"invalid confirm_attempts {self.confirm_attempts!r}: expected >= 1")
        for name in ("confirm_after", "first_backoff", "max_backoff"):
            if pd.Timedelta(getattr(self, name)) < pd.Timedelta(0):
                raise ConfigError(f"invalid {name} {getattr(self, name)!r}: expected >= 0")

    @classmethod
    def from_env(cls) -> GapPolicy:
        """Defaults, overridden by CRYPTOPIPE_GAP_CONFIRM_ATTEMPTS, _GAP_CONFIRM_AFTER_S,
        _GAP_FIRST_BACKOFF_S and _GAP_MAX_BACKOFF_S (the CLI and the Dagster job's defaults)."""
        return cls(
            confirm_attempts=int(_env("CONFIRM_ATTEMPTS", cls.confirm_attempts)),
            confirm_after=pd.Timedelta(seconds=_env("CONFIRM_AFTER_S", cls.confirm_after.total_seconds())),
            first_backoff=pd.Timedelta(seconds=_env("FIRST_BACKOFF_S", cls.first_backoff.total_seconds())),
            max_backoff=pd.Timedelta(seconds=_env("MAX_BACKOFF_S", cls.max_backoff.total_seconds())),
        )

    def backoff(self, attempts: int) -> pd.Timedelta:
        """Wait after the `attempts`-th attempt: first_backoff doubled per attempt, capped."""
        return min(self.max_backoff, self.first_backoff * 2 ** max(0, attempts - 1))


def _env(name: str, default: float) -> float:
    text = os.environ.get(f"CRYPTOPIPE_GAP_{name}")
    if text is None or not text.strip():
        return default
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"invalid CRYPTOPIPE_GAP_{name} {text!r}: expected a number") from None


def new_gaps(
    exchange: str,
    symbol: str,
    timeframe: str,
    spans: Iterable[tuple[pd.Timestamp, pd.Timestamp, int | None]],
    *,
    kind: str,
    source: str,
    now: pd.Timestamp,
) -> pd.DataFrame:
    """Ledger rows for spans [start, end) just found: open, no attempt yet, due now."""
    rows = [
        {
            "exchange": exchange,
            "symbol": symbol,
            "timeframe": timeframe,
            "span_start": start,
            "span_end": end,
            "kind": kind,
            "source": source,
            "missing": missing,
            "first_seen": now,
            "attempts": 0,
            "last_attempt": None,
            "next_attempt": now,
            "state": OPEN,
            "evidence": "[]",
            "updated_at": now,
        }
        for start, end, missing in spans
    ]
    return pd.DataFrame(rows, columns=list(rows[0]) if rows else None)


@dataclass(frozen=True)
class Attempt:
    """What one repair attempt of a span saw."""

    at: pd.Timestamp
    returned: int  # valid candles the exchange answered inside the span
    rejected: int  # rows it answered that failed validation (dead letters)
    filled: int  # candles of the span present now that were missing before
    missing: int  # candles of the span still missing
    error: str | None = None  # the exchange could not be asked (unavailable): not an answer

    @property
    def answer(self) -> str:
        if self.error:
            return "error"
        if self.missing == 0:
            return "complete"
        if self.filled > 0:
            return "partial"
        return "rejected" if self.rejected else NO_DATA

    def as_json(self) -> dict:
        return {
            "at": self.at.isoformat(),
            "returned": self.returned,
            "rejected": self.rejected,
            "filled": self.filled,
            "missing": self.missing,
            "answer": self.answer,
            **({"error": self.error} if self.error else {}),
        }


def confirmed_outage(evidence: list[dict], policy: GapPolicy) -> bool:
    """Enough "no data" answers, spread over enough time, to call the span a real outage."""
    times = [pd.Timestamp(entry["at"]) for entry in evidence if entry.get("answer") == NO_DATA]
    return len(times) >= policy.confirm_attempts and max(times) - min(times) >= policy.confirm_after


def after_attempt(gap: dict, attempt: Attempt, policy: GapPolicy) -> dict:
    """The gap's row after `attempt`: evidence appended, then repaired, confirmed or backed off."""
    evidence = [*json.loads(gap.get("evidence") or "[]"), attempt.as_json()]
    attempts = int(gap.get("attempts") or 0) + 1
    updated = {
        **gap,
        "attempts": attempts,
        "last_attempt": attempt.at,
        "evidence": json.dumps(evidence),
        "updated_at": attempt.at,
    }
    if attempt.missing == 0:
        return {**updated, "state": REPAIRED, "next_attempt": None}
    if confirmed_outage(evidence, policy):
        return {**updated, "state": CONFIRMED, "next_attempt": None}
    return {**updated, "state": OPEN, "next_attempt": attempt.at + policy.backoff(attempts)}


def evidence_summary(evidence: object) -> str:
    """A short text of a gap's evidence for tables: attempts by answer, e.g. '3x no data, 1x partial'."""
    entries = json.loads(evidence) if isinstance(evidence, str) and evidence.strip() else []
    counts = pd.Series([entry.get("answer", "?") for entry in entries], dtype=object).value_counts()
    return ", ".join(f"{n}x {answer}" for answer, n in counts.items()) or "-"
