"""ccxt clients: creation (optionally at an API base URL override) and calls with retries.

Rate limiting is ccxt's own (`enableRateLimit`); retries use tenacity with exponential backoff and
full jitter, except that a 429/418 answer with Retry-After waits exactly as long as the exchange asks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import ccxt
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from cryptopipe_dagster.lib.errors import ExchangeUnavailable, RateLimited
from cryptopipe_dagster.lib.exchanges.url_override import point_exchange_at
from cryptopipe_dagster.lib.markets_config import validate_exchange_id

log = logging.getLogger(__name__)
T = TypeVar("T")

# OperationFailed covers NetworkError (timeouts, 5xx, 429, 418) and BadResponse (truncated JSON):
# both are worth another try; anything else (bad symbol, auth) is not.
RETRYABLE = (ccxt.OperationFailed,)
THROTTLED = (ccxt.RateLimitExceeded, ccxt.DDoSProtection)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one exchange call before giving up with a typed error."""

    max_attempts: int = 8
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0


DEFAULT_RETRY = RetryPolicy()


def create_exchange(
    exchange_id: str,
    *,
    exchange_api_url: str | None = None,
    timeout_ms: int = 10_000,
    rate_limit: bool = True,
) -> ccxt.Exchange:
    """A sync ccxt client; with `exchange_api_url` every API URL points at that host."""
    exchange_class = getattr(ccxt, validate_exchange_id(exchange_id))
    exchange = exchange_class({"enableRateLimit": rate_limit, "timeout": timeout_ms})
    if exchange_api_url:
        point_exchange_at(exchange, exchange_api_url)
    return exchange


def retry_after_seconds(exchange: ccxt.Exchange) -> float | None:
    """The Retry-After of the last response, in seconds, if the exchange sent one."""
    headers = exchange.last_response_headers or {}
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


class _ExchangeWait:
    """tenacity wait: Retry-After when throttled, else exponential backoff with full jitter."""

    def __init__(self, exchange: ccxt.Exchange, base_s: float, max_s: float) -> None:
        self.exchange = exchange
        self.max_s = max_s
        self.backoff = wait_random_exponential(multiplier=base_s, max=max_s)

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, THROTTLED):
            asked = retry_after_seconds(self.exchange)
            if asked is not None:
                return min(asked, self.max_s)
        return self.backoff(state)


def call_with_retries(
    exchange: ccxt.Exchange,
    call: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy = DEFAULT_RETRY,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `call`, retrying transient ccxt failures; after the last attempt raise a typed error."""
    max_attempts = policy.max_attempts

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "exchange_retry exchange=%s call=%s attempt=%d error=%s wait_s=%.2f",
            exchange.id,
            what,
            state.attempt_number,
            type(error).__name__,
            state.next_action.sleep if state.next_action else 0,
        )

    retrying = Retrying(
        retry=retry_if_exception_type(RETRYABLE),
        stop=stop_after_attempt(max_attempts),
        wait=_ExchangeWait(exchange, policy.base_delay_s, policy.max_delay_s),
        before_sleep=log_retry,
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(call)
    except THROTTLED as error:
        raise RateLimited(
            f"{exchange.id} {what}: still throttled after {max_attempts} attempts: {error}",
            retry_after_s=retry_after_seconds(exchange),
        ) from error
    except RETRYABLE as error:
        raise ExchangeUnavailable(
            f"{exchange.id} {what}: failed after {max_attempts} attempts: {type(error).__name__}: {error}"
        ) from error
