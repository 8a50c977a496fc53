"""Typed exceptions: one class per failure class, each raised with the offending value."""

from __future__ import annotations

from typing import Any


class CryptopipeError(Exception):
    """Base class of every error cryptopipe raises on purpose."""


class ConfigError(CryptopipeError):
    """A configuration file or CLI argument is malformed; the message names the bad value."""


class UnknownExchange(ConfigError):
    """An exchange id is not known to ccxt or to the exchange simulator."""

    def __init__(self, exchange: str, known: list[str] | None = None) -> None:
        hint = f" (known: {', '.join(sorted(known))})" if known else ""
        super().__init__(f"unknown exchange {exchange!r}{hint}")
        self.exchange = exchange


class InvalidSymbol(ConfigError):
    """A trading pair cannot be read as BASE/QUOTE."""

    def __init__(self, symbol: object, reason: str = "expected BASE/QUOTE, e.g. BTC/USD") -> None:
        super().__init__(f"invalid symbol {symbol!r}: {reason}")
        self.symbol = symbol


class InvalidTimeframe(ConfigError):
    """A timeframe string such as '1m' or '1h' is not understood."""

    def __init__(self, timeframe: object) -> None:
        super().__init__(f"invalid timeframe {timeframe!r}: expected e.g. 1m, 5m, 1h, 1d")
        self.timeframe = timeframe


class SchemaDrift(CryptopipeError):
    """An exchange payload no longer has the shape we parse (a whole batch, not one bad row)."""


class ExchangeUnavailable(CryptopipeError):
    """The exchange kept failing after every retry (outage, 5xx, timeouts)."""


class RateLimited(ExchangeUnavailable):
    """The exchange kept answering 429/418 after every retry."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UnsafeIdentifier(CryptopipeError):
    """A SQL identifier (table, schema, column) failed the allow-list check."""

    def __init__(self, identifier: object) -> None:
        super().__init__(f"unsafe SQL identifier {identifier!r}: only [A-Za-z_][A-Za-z0-9_]* is allowed")
        self.identifier = identifier


class PubSubError(CryptopipeError):
    """Base class of the Pub/Sub layer's errors (lib/pubsub)."""


class EmulatorUnavailable(PubSubError):
    """The Pub/Sub emulator (or the Java runtime it needs) is missing, or it did not start."""


class TopologyError(PubSubError, ConfigError):
    """A Pub/Sub topology declaration is inconsistent (unknown topic, forbidden combination)."""


class InvalidBatch(PubSubError):
    """A micro-batch cannot be published as given (empty, mixed markets, missing columns, too large)."""

    def __init__(self, reason: str, value: object = None) -> None:
        detail = f": {value!r}" if value is not None else ""
        super().__init__(f"invalid batch, {reason}{detail}")
        self.reason = reason
        self.value = value


class UndecodableMessage(PubSubError):
    """A pulled message cannot be read as a batch; `reason_code` is stable (dead-letter reason)."""

    def __init__(self, reason_code: str, detail: str) -> None:
        super().__init__(f"{reason_code}: {detail}")
        self.reason_code = reason_code
        self.detail = detail


class PublisherClosed(PubSubError):
    """publish() was called on a MarketDataPublisher after close()."""


class PublishFailed(PubSubError):
    """Some published batches could not be delivered; `failures` lists each with its payload."""

    def __init__(self, failures: list[Any]) -> None:  # lib.pubsub.publisher.PublishFailure items
        shown = ", ".join(f"{f.batch_id[:12]}({f.reason})" for f in failures[:5])
        more = f" and {len(failures) - 5} more" if len(failures) > 5 else ""
        super().__init__(f"{len(failures)} batch(es) not published: {shown}{more}")
        self.failures = failures


class PullFailed(PubSubError):
    """A synchronous pull kept failing (service unavailable, permission, unknown subscription)."""


class AckFailed(PubSubError):
    """Acknowledge / ModifyAckDeadline kept failing; the messages will be redelivered."""


class WarehouseBusy(CryptopipeError):
    """Another process holds the warehouse (a DuckDB file has one writer process at a time)."""
