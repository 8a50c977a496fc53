"""Structured logs: one JSON object per line (`event` plus fields), for log pipelines to index."""

from __future__ import annotations

import json
import logging
import sys
import time


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: object) -> None:
    """Log ``{"event": ..., **fields}`` as one JSON line (values that are not JSON become text)."""
    if logger.isEnabledFor(level):
        logger.log(level, json.dumps({"event": event, **fields}, default=str, sort_keys=False))


class JsonLineFormatter(logging.Formatter):
    """Wraps each record as JSON with time, level and logger; a message that is JSON is merged in."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        try:
            body = json.loads(message)
        except ValueError:
            body = None
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        entry.update(body if isinstance(body, dict) else {"message": message})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_json_logging(level: int = logging.INFO) -> None:
    """Send cryptopipe's logs to stderr as JSON lines (the collector's format)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger("cryptopipe")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
