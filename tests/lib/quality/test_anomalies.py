"""Anomaly detectors on the real recordings (counts pinned) and on series built to sit on either side
of each threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryptopipe_dagster.lib.errors import ConfigError
from cryptopipe_dagster.lib.quality.anomalies import detect_anomalies
from cryptopipe_dagster.lib.quality.anomaly_config import DEFAULT_ANOMALIES_FILE, load_anomaly_config
from cryptopipe_dagster.simulator.recordings import load_recordings

CONFIG = load_anomaly_config(DEFAULT_ANOMALIES_FILE)
AFTER_RECORDINGS = pd.Timestamp("2019-10-18", tz="UTC")  # the day after the Coinbase recording ends
CANDLE_COLUMNS = ["exchange", "symbol", "timeframe", "ts", "open", "high", "low", "close", "volume"]


def series(closes: np.ndarray, timeframe: str = "1h", volume: np.ndarray | None = None) -> pd.DataFrame:
    """One market's bars from closes: open = previous close, a small wick either side."""
    closes = np.asarray(closes, dtype=float)
    opens = np.concatenate([[closes[0]], closes[:-1]])
    step = pd.Timedelta(timeframe)
    return pd.DataFrame(
        {
            "exchange": "bitstamp",
            "symbol": "BTC/USD",
            "timeframe": timeframe,
            "ts": pd.Timestamp("2020-01-01", tz="UTC") + step * np.arange(len(closes)),
            "open": opens,
            "high": np.maximum(opens, closes) * 1.001,
            "low": np.minimum(opens, closes) * 0.999,
            "close": closes,
            "volume": np.full(len(closes), 10.0) if volume is None else volume,
        }
    )


def random_walk(n: int, sigma: float, seed: int = 1) -> np.ndarray:
    return 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, sigma, n)))


def test_defaults_on_the_recordings_flag_the_pinned_real_events(data_dir):
    candles = load_recordings(data_dir)[CANDLE_COLUMNS]
    found = detect_anomalies(candles, CONFIG, AFTER_RECORDINGS)
    counts = found.groupby(["kind", "exchange", "symbol", "timeframe"]).size().to_dict()
    assert counts == {
        ("divergence", "coinbaseexchange", "BTC/USD", "1d"): 15,
        ("price_jump", "bitstamp", "BTC/USD", "1d"): 11,
        ("price_jump", "bitstamp", "LTC/USD", "1d"): 1,
        ("price_jump", "coinbaseexchange", "BTC/USD", "1h"): 13,
        ("stale_feed", "coinbaseexchange", "BTC/USD", "1h"): 1,
        ("stuck_feed", "bitstamp", "BTC/USD", "1d"): 1,
        ("stuck_feed", "coinbaseexchange", "BTC/USD", "1h"): 1,
        ("volume_spike", "coinbaseexchange", "BTC/USD", "1h"): 8,
    }
    jumps = set(found.loc[found.kind == "price_jump", "ts"].dt.strftime("%Y-%m-%d %H"))
    # Known moves: the BCH hash-war sell-off, the 2019 April Fools pump, the 2019-09-24 drop.
    assert {"2018-11-14 16", "2019-04-02 04", "2019-09-24 18"} <= jumps
    stuck = found[found.kind == "stuck_feed"].set_index("exchange")["ts"].dt.strftime("%Y-%m-%d")
    assert stuck["bitstamp"] == "2015-01-06"  # Bitstamp halted after its January 2015 hack
    divergence = found[found.kind == "divergence"]
    # Coinbase's premium/discount around the SegWit2x cancellation and the December 2017 peak.
    assert divergence["ts"].between("2017-11-05", "2017-11-11").sum() == 6
    assert divergence["ts"].between("2017-12-06", "2017-12-14").sum() == 9
    assert (divergence["value"] > CONFIG.divergence.bps).all()


def test_a_jump_is_relative_to_the_markets_own_volatility_not_a_fixed_percentage():
    calm = random_walk(400, 0.001)
    calm[300:] *= 1.05  # +5% in one bar of a market that moves 0.1% an hour
    wild = random_walk(400, 0.03)
    wild[300:] *= 1.05  # the same +5% where bars move 3%
    found_calm = detect_anomalies(series(calm), CONFIG, AFTER_RECORDINGS)
    found_wild = detect_anomalies(series(wild), CONFIG, AFTER_RECORDINGS)
    assert list(found_calm.loc[found_calm.kind == "price_jump", "ts"]) == [series(calm)["ts"][300]]
    assert (found_wild.kind == "price_jump").sum() == 0


def test_a_crash_that_rebounds_inside_the_bar_is_flagged_by_its_wick():
    bars = series(random_walk(400, 0.001))
    bars.loc[300, "low"] = bars.loc[300, "open"] * 0.7  # -30% and back before the bar closed
    found = detect_anomalies(bars, CONFIG, AFTER_RECORDINGS)
    jumps = found[found.kind == "price_jump"]
    assert list(jumps["ts"]) == [bars["ts"][300]]
    assert jumps["threshold"].iloc[0] == CONFIG.price_jump.threshold("1h", wick=True)


def test_volume_spike_and_a_return_across_a_hole_is_not_scored():
    volume = np.exp(np.random.default_rng(3).normal(2, 0.3, 400))
    volume[250] *= 100
    bars = series(random_walk(400, 0.001), volume=volume)
    bars = bars.drop(index=range(320, 340))  # an outage: the next bar may be far away
    bars.loc[340:, ["open", "high", "low", "close"]] *= 1.3
    found = detect_anomalies(bars, CONFIG, AFTER_RECORDINGS)
    assert list(found.loc[found.kind == "volume_spike", "ts"]) == [bars["ts"][250]]
    assert (found.kind == "price_jump").sum() == 0


def test_stuck_feed_is_judged_against_the_markets_own_runs():
    closes = random_walk(600, 0.002)
    for start in range(50, 550, 50):  # this market is often flat for 4 hours
        closes[start : start + 4] = closes[start - 1]
    closes[400:412] = closes[399]  # 12 flat hours: 3x its normal
    bars = series(closes)
    flat = np.r_[bars["close"].diff().fillna(1).to_numpy() == 0]
    for column in ("open", "high", "low"):
        bars.loc[flat, column] = bars.loc[flat, "close"]
    found = detect_anomalies(bars, CONFIG, AFTER_RECORDINGS)
    stuck = found[found.kind == "stuck_feed"]
    assert list(stuck["ts"]) == [bars["ts"][400]]
    assert stuck["value"].iloc[0] == 12 and stuck["threshold"].iloc[0] == 8  # 2 x its 4-bar runs


def test_stale_feed_against_the_timeframes_target():
    bars = series(random_walk(10, 0.001))
    closed = bars["ts"].iloc[-1] + pd.Timedelta(hours=1)
    fresh = detect_anomalies(bars, CONFIG, closed + pd.Timedelta(hours=2))
    stale = detect_anomalies(bars, CONFIG, closed + pd.Timedelta(hours=4))
    assert (fresh.kind == "stale_feed").sum() == 0
    assert stale.loc[stale.kind == "stale_feed", "value"].tolist() == [4.0]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("z: {default: 25.0, 1d: 10.0}", "z: {1d: 10.0}"), "price_jump.z"),
        (("window: 168         #", "window: -3 #"), "price_jump.window"),
        (("1m: 10m", "1m: ten minutes"), "stale_feed.freshness.1m"),
        (("exchanges: [coinbaseexchange, bitstamp]", "exchanges: [coinbaseexchange]"), "pairs[0].exchanges"),
        (("quantile: 0.99", "quantile: 1.5"), "stuck_feed.quantile"),
    ],
)
def test_bad_thresholds_fail_with_the_key_named(tmp_path, edit, message):
    text = DEFAULT_ANOMALIES_FILE.read_text()
    assert edit[0] in text
    bad = tmp_path / "anomalies.yaml"
    bad.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_anomaly_config(bad)
