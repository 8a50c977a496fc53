"""WebSocket fault kinds and their per-message decisions.

The spec grammar is the HTTP one (`faults.py`): `ws_duplicate:0.01` fires with that probability on
every message of a stream, `ws_disconnect@500` on exactly the 500th message (1-based, counted per
stream, i.e. per exchange + symbol + channel, since the plan was installed). Exact rules win over
probabilistic ones; at most one fault per message. Decisions are a pure function of (seed, stream,
message number), computed for whole batches with counter-based hashing, so deciding costs nothing
measurable at 20k+ messages/s; the generator a fault's parameters come from is
`random.Random(f"{seed}:{stream}:{n}")`.

What each kind does is implemented by the feed's send loop (`feed.py`); a faulted message's trade
is always in the emitted-trades ledger, whatever happened to the message.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import numpy as np

from cryptopipe_dagster.simulator.derive import mix64, uniforms
from cryptopipe_dagster.simulator.drift import drift_record
from cryptopipe_dagster.simulator.faults import FaultRule, register_stream_fault
from cryptopipe_dagster.simulator.market_data import market_key

WS_DISCONNECT = "ws_disconnect"
WS_STALL = "ws_stall"
WS_DUPLICATE = "ws_duplicate"
WS_OUT_OF_ORDER = "ws_out_of_order"
WS_MALFORMED = "ws_malformed"
WS_BURST = "ws_burst"
WS_DRIFT = "ws_drift"

register_stream_fault(
    WS_DISCONNECT,
    "the server drops every subscriber of the stream instead of sending the message: a close frame "
    "(1001 or 1011) or, half of the time, the TCP connection just ends",
)
register_stream_fault(WS_STALL, "nothing more is sent on the feed for `stall_seconds`, the socket stays open")
register_stream_fault(WS_DUPLICATE, "the message is sent twice in a row")
register_stream_fault(WS_OUT_OF_ORDER, "the message is held back and sent right after the next one")
register_stream_fault(WS_MALFORMED, "the message is replaced by invalid JSON or by JSON of the wrong shape")
register_stream_fault(WS_BURST, "the next `burst_messages` messages go out `burst_factor` times faster")
register_stream_fault(
    WS_DRIFT,
    "the venue changed its format: the message's trade has a field renamed, retyped or added "
    "(drift_change, drift_fields; see drift.py)",
)

# Codes the decision arrays use; 0 = no fault.
KIND_CODES = {
    kind: code
    for code, kind in enumerate(
        (WS_DISCONNECT, WS_STALL, WS_DUPLICATE, WS_OUT_OF_ORDER, WS_MALFORMED, WS_BURST, WS_DRIFT),
        start=1,
    )
}
KIND_NAMES = {code: kind for kind, code in KIND_CODES.items()}
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class StreamFaultPlan:
    """The `ws_*` rules of a fault plan, bound to one stream."""

    rules: tuple[FaultRule, ...]
    seed: int
    stream: str  # "exchange|symbol|channel"

    @property
    def key(self) -> int:
        """64-bit key of (seed, stream)."""
        exchange, symbol, channel = self.stream.split("|")
        return market_key(self.seed, exchange, f"{symbol}|{channel}")

    def decide(self, first: int, count: int) -> np.ndarray:
        """Kind codes (0 = none) for messages first .. first+count-1 (1-based numbers)."""
        codes = np.zeros(count, dtype=np.int8)
        if count <= 0 or not self.rules:
            return codes
        numbers = np.arange(first, first + count, dtype=np.int64)
        chances = [rule for rule in self.rules if rule.probability is not None]
        if chances:
            keys = mix64(numbers.view(np.uint64) * _GOLDEN + np.uint64(self.key))
            draws = uniforms(keys, len(chances), 11)
            # Later rules first, so the earliest rule that fires wins, as in the HTTP plan.
            for column in range(len(chances) - 1, -1, -1):
                hit = draws[:, column] < chances[column].probability
                codes[hit] = KIND_CODES[chances[column].kind]
        for rule in self.rules:
            if rule.at_request is not None and first <= rule.at_request < first + count:
                codes[rule.at_request - first] = KIND_CODES[rule.kind]
        return codes

    def rng(self, number: int) -> random.Random:
        """The generator a fault on message `number` draws its parameters from."""
        return random.Random(f"{self.seed}:{self.stream}:{number}")


def malformed_text(text: str, rng: random.Random) -> str:
    """A broken copy of a JSON message: cut short (invalid JSON) or valid JSON of the wrong shape."""
    choice = rng.randrange(3)
    if choice == 0:
        return text[: max(1, len(text) // 2)]
    data = json.loads(text)
    if choice == 1:
        return json.dumps([data])  # right content, wrong container
    return json.dumps(_strip_fields(data, rng))


def drifted_text(text: str, change: str, fields: tuple[str, ...]) -> str:
    """The message with its trade payload (`data`, a dict or the dicts of a list) drifted."""
    data = json.loads(text)
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        data = {**data, "data": drift_record(data["data"], change, fields)}
    elif isinstance(data, dict) and isinstance(data.get("data"), list):
        data = {**data, "data": [drift_record(row, change, fields) for row in data["data"]]}
    elif isinstance(data, dict):  # the trade is the message itself (Coinbase's `match`)
        data = drift_record(data, change, fields)
    return json.dumps(data)


def _strip_fields(data: object, rng: random.Random) -> object:
    """Drop the payload's fields a parser needs (ids, prices), keeping the envelope routable."""
    if isinstance(data, dict):
        payload = data.get("data")
        if isinstance(payload, list) and payload and isinstance(payload[0], dict):
            return {**data, "data": [_drop_some(payload[0], rng)]}
        if isinstance(payload, dict):
            return {**data, "data": _drop_some(payload, rng)}
        return _drop_some(data, rng, keep=("type", "product_id"))
    return {"unexpected": data}


def _drop_some(row: dict, rng: random.Random, keep: tuple[str, ...] = ("symbol",)) -> dict:
    out = dict(row)
    candidates = sorted(key for key in row if key not in keep)
    for key in rng.sample(candidates, k=min(len(candidates), rng.randint(1, 3))):
        if rng.random() < 0.5:
            del out[key]
        else:
            out[key] = "garbage"
    return out
