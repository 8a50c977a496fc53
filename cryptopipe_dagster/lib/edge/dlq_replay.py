"""Replay dead letters through the normal normalize path, loading the ones that are now valid.

A dead letter keeps the original record verbatim (``raw_payload``, JSON text). Replaying parses it
back, runs it through ``normalize_ohlcv`` / ``normalize_trades`` with ``source="replay"``, MERGEs the
records that pass now (the payload was corrected, or a rule was re-classified) and marks only those
dead letters replayed. A record that still fails is written again as a dead letter: its id is
deterministic (dataset|exchange|reason_code|payload), so the same failure is not duplicated, and
the original stays unreplayed. Replaying twice does nothing the second time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from cryptopipe_dagster.lib.edge.dead_letters import REASON_CODES
from cryptopipe_dagster.lib.edge.normalize import normalize_ohlcv
from cryptopipe_dagster.lib.edge.normalize_trades import normalize_trades
from cryptopipe_dagster.lib.errors import ConfigError, CryptopipeError
from cryptopipe_dagster.lib.warehouse.base import Warehouse

DATASETS = ("candles", "trades")


@dataclass
class ReplayStats:
    """What one replay did (or, with dry_run, would do)."""

    considered: int = 0
    loaded: int = 0
    still_invalid: int = 0
    dry_run: bool = False
    loaded_ids: list[str] = field(default_factory=list)
    still_invalid_reasons: dict[str, int] = field(default_factory=dict)


def check_dataset(dataset: str | None) -> str | None:
    """Raise ConfigError naming `dataset` unless it is None or one of DATASETS."""
    if dataset is not None and dataset not in DATASETS:
        raise ConfigError(f"invalid dataset {dataset!r}: expected one of {', '.join(DATASETS)}")
    return dataset


def check_reason_code(reason_code: str | None) -> str | None:
    """Raise ConfigError naming `reason_code` unless it is None or a known reason code."""
    if reason_code is not None and reason_code not in REASON_CODES:
        raise ConfigError(f"invalid reason code {reason_code!r}: expected one of {', '.join(REASON_CODES)}")
    return reason_code


def _replay_one(letter: pd.Series, now: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(valid rows, new dead letters, why-not-loaded reason) for one stored dead letter."""
    empty = pd.DataFrame()
    try:
        record = json.loads(letter["raw_payload"])
    except (TypeError, ValueError):
        return empty, empty, "unparseable_payload"
    try:
        if letter["dataset"] == "candles":
            if pd.isna(letter["symbol"]) or pd.isna(letter["timeframe"]):
                return empty, empty, "missing_market"
            batch = normalize_ohlcv(
                [record],
                exchange=letter["exchange"],
                symbol=letter["symbol"],
                timeframe=letter["timeframe"],
                source="replay",
                now=now,
            )
        elif letter["dataset"] == "trades":
            batch = normalize_trades([record], exchange=letter["exchange"], source="replay", now=now)
        else:
            return empty, empty, "unknown_dataset"
    except CryptopipeError as error:  # config-level problem (bad exchange id, symbol, ...)
        return empty, empty, type(error).__name__
    if len(batch.valid):
        return batch.valid, batch.dead_letters, ""
    if len(batch.dead_letters):
        return empty, batch.dead_letters, str(batch.dead_letters["reason_code"].iloc[0])
    return empty, empty, "incomplete"  # e.g. a candle whose period has not ended at `now`


def replay_dead_letters(
    warehouse: Warehouse,
    *,
    dataset: str | None = None,
    reason_code: str | None = None,
    exchange: str | None = None,
    dry_run: bool = False,
    now: pd.Timestamp | None = None,
) -> ReplayStats:
    """Replay not-yet-replayed dead letters matching the filters; see the module docstring."""
    check_dataset(dataset)
    check_reason_code(reason_code)
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if now.tzinfo is None:
        now = now.tz_localize("UTC")
    letters = warehouse.dead_letters(
        dataset=dataset, exchange=exchange, reason_code=reason_code, replayed=False, limit=None
    )
    stats = ReplayStats(considered=len(letters), dry_run=dry_run)
    valid: dict[str, list[pd.DataFrame]] = {name: [] for name in DATASETS}
    new_dead: list[pd.DataFrame] = []
    for _, letter in letters.iterrows():
        rows, dead, why = _replay_one(letter, now)
        if len(dead):
            new_dead.append(dead)
        if len(rows):
            valid[letter["dataset"]].append(rows)
            stats.loaded_ids.append(str(letter["dead_letter_id"]))
        else:
            stats.still_invalid_reasons[why] = stats.still_invalid_reasons.get(why, 0) + 1
    stats.loaded = len(stats.loaded_ids)
    stats.still_invalid = stats.considered - stats.loaded
    if dry_run:
        return stats
    if valid["candles"]:
        warehouse.merge_candles(pd.concat(valid["candles"], ignore_index=True))
    if valid["trades"]:
        warehouse.merge_trades(pd.concat(valid["trades"], ignore_index=True))
    if new_dead:
        warehouse.write_dead_letters(pd.concat(new_dead, ignore_index=True))
    warehouse.mark_replayed(stats.loaded_ids, at=now)
    return stats
