"""Deterministic fault injection: a spec string -> a plan -> one decision per data request.

Spec grammar (comma-separated, mixable): `kind:probability` (e.g. `rate_limit:0.05`) fires with that
probability on every data request; `kind@n` (e.g. `rate_limit@3`) fires on exactly the n-th data
request (1-based) after the plan was installed. Exact rules win over probabilistic ones; at most one
fault per request. Decisions come from `random.Random(f"{seed}:{n}")`, so the same seed and the same
request sequence give the same faults, and the handler of the fault gets that same generator.

Kinds live in a registry (`register_fault`); the built-in ones are in `fault_kinds.py`. WebSocket
kinds (`ws_*`, `register_stream_fault`, built-ins in `stream_faults.py`) share the grammar and the
spec string but never touch HTTP requests: they are decided per stream message by the feeds.
"""

from __future__ import annotations

import importlib
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

Produce = Callable[[], Awaitable[web.Response]]

# Set by the `duplicate_rows` fault; candle endpoints that know their previous page consume it and
# mark it applied, otherwise the fault duplicates rows of the answer generically.
DUPLICATE_ROWS = web.RequestKey("sim_duplicate_rows", random.Random)
DUPLICATES_APPLIED = web.RequestKey("sim_duplicates_applied", bool)


class VenueErrors(Protocol):
    """How one exchange shapes the error answers that faults produce."""

    def throttle_error(self, status: int, retry_after_s: float) -> web.Response: ...

    def server_error(self, status: int) -> web.Response: ...


@dataclass(frozen=True)
class FaultSettings:
    """Knobs of the built-in kinds."""

    retry_after_s: float = 1.0  # Retry-After of rate_limit / ip_ban
    slow_seconds: float = 3.0  # delay of `slow`
    include_markets: bool = False  # also fault markets endpoints (load_markets) — off so it works
    stall_seconds: float = 2.0  # how long `ws_stall` sends nothing
    burst_messages: int = 50  # how many messages `ws_burst` speeds up
    burst_factor: float = 100.0  # how many times faster they are sent
    # `payload_drift` / `ws_drift` (drift.py): what changes, in which field, in which share of rows.
    drift_change: str = "rename"  # rename | retype | add
    drift_fields: tuple[str, ...] = ("close", "price")  # the first one a record has is changed
    drift_share: float = 1.0
    # `hidden_span`: rows with a time in [hide_from_ms, hide_to_ms) are left out of the first
    # `hide_requests` answers that hold any of them (a venue's transient hole), then served again.
    hide_from_ms: int = 0
    hide_to_ms: int = 0
    hide_requests: int = 1


@dataclass
class FaultContext:
    """What a fault handler may use: the request, its generator, the settings and the venue."""

    request: web.Request
    rng: random.Random
    settings: FaultSettings
    venue: VenueErrors


FaultHandler = Callable[[FaultContext, Produce], Awaitable[web.Response]]
FAULT_HANDLERS: dict[str, FaultHandler] = {}
# Stream kinds are applied by the feed's send loop (their effect is on the socket, not on an answer),
# so the registry only holds their description.
STREAM_FAULT_KINDS: dict[str, str] = {}


def register_fault(kind: str) -> Callable[[FaultHandler], FaultHandler]:
    """Decorator adding a fault kind: `async def handler(ctx, produce) -> web.Response`."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", kind):
        raise ValueError(f"fault kind {kind!r} must be lower_snake_case")

    def add(handler: FaultHandler) -> FaultHandler:
        FAULT_HANDLERS[kind] = handler
        return handler

    return add


def register_stream_fault(kind: str, description: str) -> None:
    """Add a WebSocket fault kind (the feed's send loop implements it)."""
    if not re.fullmatch(r"ws_[a-z0-9_]+", kind):
        raise ValueError(f"stream fault kind {kind!r} must be lower_snake_case starting with ws_")
    STREAM_FAULT_KINDS[kind] = description


def fault_kinds() -> list[str]:
    """Every registered fault kind (HTTP and stream)."""
    _load_builtin_kinds()
    return sorted({*FAULT_HANDLERS, *STREAM_FAULT_KINDS})


@dataclass(frozen=True)
class FaultRule:
    """One token of a spec: a probability per data request, or an exact 1-based request number."""

    kind: str
    probability: float | None = None
    at_request: int | None = None


@dataclass(frozen=True)
class FaultPlan:
    """Parsed spec; `decide` is a pure function of (seed, request number)."""

    rules: tuple[FaultRule, ...] = ()
    spec: str = ""

    @property
    def http_rules(self) -> tuple[FaultRule, ...]:
        """The rules for HTTP requests (stream rules are left to the feeds)."""
        return tuple(rule for rule in self.rules if rule.kind not in STREAM_FAULT_KINDS)

    @property
    def stream_rules(self) -> tuple[FaultRule, ...]:
        """The `ws_*` rules, decided per stream message."""
        return tuple(rule for rule in self.rules if rule.kind in STREAM_FAULT_KINDS)

    def decide(self, seed: int, request_number: int) -> tuple[str | None, random.Random]:
        """The fault kind for this data request (or None) and the generator its handler uses."""
        rng = random.Random(f"{seed}:{request_number}")
        rules = self.http_rules
        for rule in rules:
            if rule.at_request == request_number:
                return rule.kind, rng
        chosen = None
        for rule in rules:
            if rule.probability is not None:
                # Draw for every rule, so adding a rule later does not shift the others' draws.
                draw = rng.random()
                if chosen is None and draw < rule.probability:
                    chosen = rule.kind
        return chosen, rng


_TOKEN = re.compile(r"^(?P<kind>[a-z][a-z0-9_]*)(?:(?P<prob>:[^@:]+)|(?P<at>@[^@:]+))$")


def parse_fault_spec(spec: str) -> FaultPlan:
    """Parse `rate_limit:0.05,slow@2,...`; ValueError naming the bad token."""
    _load_builtin_kinds()
    rules = []
    for raw in (spec or "").split(","):
        token = raw.strip()
        if not token:
            continue
        match = _TOKEN.match(token)
        if match is None:
            raise ValueError(f"bad fault token {token!r}: expected kind:probability or kind@request")
        kind = match["kind"]
        if kind not in FAULT_HANDLERS and kind not in STREAM_FAULT_KINDS:
            raise ValueError(
                f"bad fault token {token!r}: unknown kind {kind!r} (known: {', '.join(fault_kinds())})"
            )
        rules.append(_rule(token, kind, match["prob"], match["at"]))
    return FaultPlan(tuple(rules), spec or "")


def _rule(token: str, kind: str, prob: str | None, at: str | None) -> FaultRule:
    if prob is not None:
        try:
            probability = float(prob[1:])
        except ValueError:
            probability = -1.0
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"bad fault token {token!r}: probability must be a number in [0, 1]")
        return FaultRule(kind, probability=probability)
    number = at[1:] if at else ""
    if not number.isdigit() or int(number) < 1:
        raise ValueError(f"bad fault token {token!r}: request number must be an integer >= 1")
    return FaultRule(kind, at_request=int(number))


@dataclass
class FaultInjector:
    """The active plan plus the data-request counter; replacing the plan restarts the count (and,
    through `generation`, the message counts of the streams)."""

    seed: int = 0
    plan: FaultPlan = field(default_factory=FaultPlan)
    settings: FaultSettings = field(default_factory=FaultSettings)
    data_requests: int = 0
    generation: int = 0
    # Counts a stateful fault keeps across requests (e.g. `hidden_span`'s hits); a new plan resets them.
    counters: dict[str, int] = field(default_factory=dict)

    def replace(self, spec: str, settings: FaultSettings | None = None) -> None:
        """Install a new spec (validated first, so a bad one leaves the old plan active)."""
        plan = parse_fault_spec(spec)
        self.plan, self.data_requests = plan, 0
        self.counters = {}
        self.generation += 1
        if settings is not None:
            self.settings = settings

    def next_decision(self) -> tuple[str | None, random.Random]:
        """Count one more data request and decide its fault."""
        self.data_requests += 1
        return self.plan.decide(self.seed, self.data_requests)


def _load_builtin_kinds() -> None:
    # Imported lazily: these modules import this one to register themselves.
    importlib.import_module("cryptopipe_dagster.simulator.fault_kinds")
    importlib.import_module("cryptopipe_dagster.simulator.stream_faults")
