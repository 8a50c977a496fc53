"""Exchange APIs the simulator speaks, by ccxt id."""

from __future__ import annotations

from cryptopipe_dagster.lib.simulator.venues.bitstamp import Bitstamp
from cryptopipe_dagster.lib.simulator.venues.coinbaseexchange import CoinbaseExchange
from cryptopipe_dagster.lib.simulator.venues.common import Venue

VENUES: dict[str, type[Venue]] = {venue.exchange_id: venue for venue in (CoinbaseExchange, Bitstamp)}
