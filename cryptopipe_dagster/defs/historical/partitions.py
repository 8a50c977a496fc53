"""Daily UTC windows x exchange.

The market dimension is the exchange, not the single pair: 5 years x 365 days x 300 pairs would be
~550k partitions, far past the ~100k per asset Dagster recommends; 5 years x 20 exchanges is ~36k.
A run of one (day range, exchange) loads every configured pair and timeframe of that exchange, and
per-pair numbers go to metadata and checks. Long backfills run as few runs (BackfillPolicy).
"""

from __future__ import annotations

import dagster as dg

from cryptopipe_dagster.lib.markets_config import load_markets_config
from cryptopipe_dagster.lib.settings import load_settings

DATE_DIMENSION = "date"
EXCHANGE_DIMENSION = "exchange"
# ~3 months per run: bounded memory and run time, yet a 5-year backfill is ~20 runs per exchange.
MAX_DAYS_PER_RUN = 92

_markets = load_markets_config(load_settings().markets_file)

daily_exchange_partitions = dg.MultiPartitionsDefinition(
    {
        DATE_DIMENSION: dg.DailyPartitionsDefinition(
            start_date=_markets.history_start.isoformat(), timezone="UTC"
        ),
        EXCHANGE_DIMENSION: dg.StaticPartitionsDefinition(sorted(_markets.exchanges)),
    }
)

backfill_policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_DAYS_PER_RUN)


def partition_range_tags(first_day: str, last_day: str, exchange: str) -> dict[str, str]:
    """Run tags that make one run cover [first_day, last_day] of one exchange."""
    return {
        "dagster/asset_partition_range_start": dg.MultiPartitionKey(
            {DATE_DIMENSION: first_day, EXCHANGE_DIMENSION: exchange}
        ),
        "dagster/asset_partition_range_end": dg.MultiPartitionKey(
            {DATE_DIMENSION: last_day, EXCHANGE_DIMENSION: exchange}
        ),
    }


def exchanges_in_run(partition_keys: list[str]) -> list[str]:
    """The exchanges a run's partition keys cover."""
    keys = (daily_exchange_partitions.get_partition_key_from_str(k) for k in partition_keys)
    return sorted({key.keys_by_dimension[EXCHANGE_DIMENSION] for key in keys})
