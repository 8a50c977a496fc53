"""Exchange APIs the simulator speaks, by ccxt id: REST venues and their WebSocket dialects."""

from __future__ import annotations

from cryptopipe_dagster.simulator.venues.bitstamp import Bitstamp
from cryptopipe_dagster.simulator.venues.bitstamp_ws import BitstampStream
from cryptopipe_dagster.simulator.venues.coinbaseexchange import CoinbaseExchange
from cryptopipe_dagster.simulator.venues.coinbaseexchange_ws import CoinbaseExchangeStream
from cryptopipe_dagster.simulator.venues.common import Venue
from cryptopipe_dagster.simulator.venues.kraken import Kraken
from cryptopipe_dagster.simulator.venues.kraken_ws import KrakenStream
from cryptopipe_dagster.simulator.venues.stream_common import VenueStream

VENUES: dict[str, type[Venue]] = {venue.exchange_id: venue for venue in (CoinbaseExchange, Bitstamp, Kraken)}
STREAMS: dict[str, type[VenueStream]] = {
    stream.exchange_id: stream for stream in (CoinbaseExchangeStream, BitstampStream, KrakenStream)
}


def venues_for(exchanges: list[str]) -> list[type[Venue]]:
    """The venue classes with recordings to serve among `exchanges` (the store's), in VENUES order."""
    return [venue for venue in VENUES.values() if venue.source_exchange() in exchanges]
