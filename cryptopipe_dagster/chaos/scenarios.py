"""The chaos scenarios: a fault plan for the simulator (its stream and HTTP fault grammar) and how
the collector starts. Each ends with every emitted trade loaded once, or it is a bug."""

from __future__ import annotations

from dataclasses import dataclass, field

_FILLS_NEEDED = "ws_disconnect:0.03"  # reconnects make the collector fill over REST, into the HTTP faults


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    faults: str  # the simulator's fault spec (stream kinds ws_*, HTTP kinds)
    fault_settings: dict = field(default_factory=dict)  # FaultSettings overrides
    checkpoint: bool = True  # start the collector at the replay's start (False: a first run)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "ws_disconnect_storm", "the venue drops the connection on ~5% of messages", "ws_disconnect:0.05"
    ),
    Scenario(
        "ws_silent_stall",
        "streams go silent for 3 s with the socket open",
        "ws_stall:0.01",
        {"stall_seconds": 3.0},
    ),
    Scenario(
        "ws_duplicates_out_of_order",
        "frames sent twice and frames swapped",
        "ws_duplicate:0.05,ws_out_of_order:0.05",
    ),
    Scenario("ws_malformed_frames", "invalid JSON and wrong shapes on 3% of frames", "ws_malformed:0.03"),
    Scenario(
        "burst_20x",
        "100 messages at 20x the replay rate, twice",
        "ws_burst@40,ws_burst@140",
        {"burst_messages": 100, "burst_factor": 20.0},
    ),
    Scenario(
        "first_start_stall",
        "no checkpoint, and every stream stalls before its first message",
        "ws_stall@1",
        {"stall_seconds": 3.0},
        checkpoint=False,
    ),
    Scenario(
        "rest_429_storm",
        "30% of REST answers are 429 with Retry-After while the collector fills after reconnects",
        f"{_FILLS_NEEDED},rate_limit:0.3",
        {"retry_after_s": 1.0},
    ),
    Scenario(
        "rest_418_ban",
        "10% of REST answers are a 418 IP ban",
        f"{_FILLS_NEEDED},ip_ban:0.1",
        {"retry_after_s": 1.0},
    ),
    Scenario("rest_5xx_storm", "30% of REST answers are 5xx", f"{_FILLS_NEEDED},server_error:0.3"),
    Scenario(
        "rest_slow_past_timeout",
        "10% of REST answers come after ccxt's 10 s timeout",
        f"{_FILLS_NEEDED},slow:0.1",
        {"slow_seconds": 11.0},
    ),
    Scenario(
        "rest_truncated_malformed_pages",
        "REST pages cut short or not JSON",
        f"{_FILLS_NEEDED},truncated:0.15,truncated_body:0.1,malformed:0.1",
    ),
)
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
