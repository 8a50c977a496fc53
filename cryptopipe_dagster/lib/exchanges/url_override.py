"""API base URL override: point an unmodified ccxt exchange (sync, async or ccxt.pro) at another host.

Set by CRYPTOPIPE_EXCHANGE_API_URL: locally the exchange simulator, in tests any server that speaks
the exchanges' APIs, in prod normally unset (the exchanges' own URLs).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit


def point_exchange_at(exchange: Any, base_url: str) -> None:
    """Rewrite every URL in `exchange.urls['api']` to `{base_url}/{exchange.id}{original path}`.

    Nested dicts and lists are walked, `{hostname}` is resolved first, and WebSocket URLs become
    `ws://` on the override's host. Nothing else about the exchange changes, so requests, parsing,
    error mapping and rate limiting are ccxt's own.
    """
    base = base_url.rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"exchange API base URL must be http(s)://host:port, got {base_url!r}")
    ws_base = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}{parts.path}"
    hostname = getattr(exchange, "hostname", None)
    exchange.urls["api"] = _rewrite(exchange.urls["api"], base, ws_base, exchange.id, hostname)


def _rewrite(value: Any, base: str, ws_base: str, exchange_id: str, hostname: str | None) -> Any:
    if isinstance(value, dict):
        return {key: _rewrite(item, base, ws_base, exchange_id, hostname) for key, item in value.items()}
    if isinstance(value, list):
        return [_rewrite(item, base, ws_base, exchange_id, hostname) for item in value]
    if not isinstance(value, str):
        return value
    url = value.replace("{hostname}", hostname) if hostname else value
    parts = urlsplit(url)
    if parts.scheme in ("ws", "wss"):
        prefix = ws_base
    elif parts.scheme in ("http", "https"):
        prefix = base
    else:
        return value
    query = f"?{parts.query}" if parts.query else ""
    return f"{prefix}/{exchange_id}{parts.path}{query}"
