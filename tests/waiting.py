"""Polling helpers shared by the tests that start real processes and servers."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests


def wait_for(predicate: Callable[[], object], timeout_s: float, interval_s: float = 0.5) -> bool:
    """True as soon as `predicate()` is truthy, False once `timeout_s` passed without it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False


def http_ok(url: str) -> bool:
    """Whether a GET of `url` answers 2xx (False while nothing listens)."""
    try:
        return requests.get(url, timeout=2).ok
    except requests.ConnectionError:
        return False


def ui_is_up(port: int) -> bool:
    """Whether a Dagster webserver answers on the port."""
    return http_ok(f"http://127.0.0.1:{port}/server_info")
