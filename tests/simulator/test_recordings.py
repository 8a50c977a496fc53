"""The recorded candle files parse into exactly what their README says they hold."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from cryptopipe_dagster.lib.settings import load_settings
from cryptopipe_dagster.simulator.recordings import COLUMNS, load_recording, load_recordings

DATA_DIR = load_settings().data_dir  # CRYPTOPIPE_DATA_DIR, else ../shared/data beside the repo
COINBASE = DATA_DIR / "coinbase_btcusd_1h.csv"
BITSTAMP = DATA_DIR / "bitstamp_btc_eth_ltc_usd_1d.csv"
FIELDS = ("open", "high", "low", "close", "volume")


@pytest.fixture(scope="module")
def coinbase() -> pd.DataFrame:
    return load_recording(COINBASE)


@pytest.fixture(scope="module")
def bitstamp() -> pd.DataFrame:
    return load_recording(BITSTAMP)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_columns_and_types(coinbase: pd.DataFrame) -> None:
    assert list(coinbase.columns) == COLUMNS
    assert str(coinbase["ts"].dtype) == "datetime64[ns, UTC]"
    for field in FIELDS:
        assert coinbase[field].dtype == "float64"
        assert coinbase[f"{field}_str"].map(type).eq(str).all()


def test_coinbase_facts_from_readme(coinbase: pd.DataFrame) -> None:
    assert len(coinbase) == 20_111
    assert set(coinbase["exchange"]) == {"coinbaseexchange"}
    assert set(coinbase["symbol"]) == {"BTC/USD"}  # as recorded, never turned into USDT
    assert set(coinbase["timeframe"]) == {"1h"}
    assert coinbase["ts"].iloc[0] == ts("2017-07-01 11:00")
    assert coinbase["ts"].iloc[-1] == ts("2019-10-17 09:00")
    assert coinbase["ts"].is_monotonic_increasing  # the file is newest first
    assert (coinbase["ts"].diff().dropna() == pd.Timedelta("1h")).all()  # no gaps
    assert (coinbase["volume_str"].map(Decimal) == 0).sum() == 28


def test_coinbase_twelve_hour_clock_and_base_volume(coinbase: pd.DataFrame) -> None:
    by_ts = coinbase.set_index("ts")
    newest = by_ts.loc[ts("2019-10-17 09:00")]  # `2019-10-17 09-AM`
    assert (newest["open_str"], newest["close_str"], newest["volume_str"]) == ("8051", "8035.88", "61.25")
    assert by_ts.loc[ts("2017-07-01 12:00"), "open_str"] == "2509.17"  # `12-PM` is noon
    assert by_ts.loc[ts("2017-07-02 00:00"), "open_str"] == "2423.63"  # `12-AM` is midnight
    assert by_ts.loc[ts("2017-07-01 13:00"), "volume_str"] == "280.28"  # volume_btc, not the USD column


def test_bitstamp_facts_from_readme(bitstamp: pd.DataFrame) -> None:
    assert set(bitstamp["exchange"]) == {"bitstamp"} and set(bitstamp["timeframe"]) == {"1d"}
    per_symbol = bitstamp.groupby("symbol")["ts"].agg(["size", "min", "max"])
    assert per_symbol.loc["BTC/USD", "size"] == 1_865
    assert per_symbol.loc["BTC/USD", "min"] == ts("2014-11-28")
    assert (per_symbol["max"] == ts("2020-01-17")).all()
    assert per_symbol.loc["ETH/USD", "min"] == ts("2017-11-09")  # empty cells before listing dropped
    assert per_symbol.loc["LTC/USD", "min"] == ts("2017-06-25")
    listed_days = (ts("2020-01-17") - per_symbol["min"]).dt.days + 1
    assert (per_symbol["size"] == listed_days - 12).all()  # every day but the outage


def test_bitstamp_outage_stays_a_gap(bitstamp: pd.DataFrame) -> None:
    outage = pd.date_range("2019-03-20", "2019-03-31", freq="D", tz="UTC")
    assert not bitstamp["ts"].isin(outage).any()
    for _, rows in bitstamp.groupby("symbol"):
        gaps = rows["ts"].diff().dropna()
        assert gaps.max() == pd.Timedelta(days=13)  # 03-19 -> 04-01
        assert (gaps != pd.Timedelta(days=1)).sum() == 1


def test_sorted_by_symbol_then_time(bitstamp: pd.DataFrame) -> None:
    assert list(bitstamp["symbol"].unique()) == ["BTC/USD", "ETH/USD", "LTC/USD"]
    assert bitstamp.groupby("symbol")["ts"].apply(lambda s: s.is_monotonic_increasing).all()


def test_floats_are_exactly_the_recorded_text() -> None:
    frame = load_recordings(DATA_DIR)
    for field in FIELDS:
        floats = frame[field].map(lambda x: Decimal(repr(x)))
        assert (floats == frame[f"{field}_str"].map(Decimal)).all(), field


def test_load_recordings_concatenates_every_file() -> None:
    frame = load_recordings(DATA_DIR)
    assert len(frame) == 20_111 + 1_865 + 788 + 925
    assert frame.groupby(["exchange", "symbol"]).size().to_dict() == {
        ("bitstamp", "BTC/USD"): 1_865,
        ("bitstamp", "ETH/USD"): 788,
        ("bitstamp", "LTC/USD"): 925,
        ("coinbaseexchange", "BTC/USD"): 20_111,
    }


def test_returned_frames_are_copies() -> None:
    first = load_recording(COINBASE)
    first.loc[0, "open"] = -1.0
    assert load_recording(COINBASE).loc[0, "open"] != -1.0


LONG_HEADER = "date,symbol,open,high,low,close,volume_btc,volume\n"
BANNER = "Timestamps are UTC timezone,https://www.CryptoDataDownload.com\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_long_format_without_banner_and_empty_cells_dropped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "coinbase_ethusd_1h.csv",
        "date,symbol,open,high,low,close,volume_eth,volume\n"
        "2019-10-17 01-PM,ETHUSD,2,3,1,2.5,10,20\n"
        "2019-10-17 12-PM,ETHUSD,1,2,1,2,,20\n",
    )
    frame = load_recording(path)
    assert frame["symbol"].tolist() == ["ETH/USD"]
    assert frame["ts"].tolist() == [ts("2019-10-17 13:00")]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("coinbase_btcusd_1h.csv", BANNER + LONG_HEADER + "2019-10-17 09-XM,BTCUSD,1,2,1,1,1,1\n", "line 3"),
        ("coinbase_btcusd_1h.csv", BANNER + LONG_HEADER + "2019-10-17 09-AM,BTCUSD,1,2,x,1,1,1\n", "line 3"),
        ("coinbase_btcusd_1h.csv", BANNER + LONG_HEADER + "2019-10-17 09-AM,BTCUSD,1,2,1\n", "line 3"),
        ("coinbase_btcusd_1h.csv", BANNER + LONG_HEADER + "2019-10-17 09-AM,BTCUSD,1,2,3,1,1,1\n", "line 3"),
        (
            "coinbase_btcusd_1h.csv",
            BANNER
            + LONG_HEADER
            + "2019-10-17 09-AM,BTCUSD,1,2,1,1,1,1\n2019-10-17 09-AM,BTCUSD,1,2,1,1,1,1\n",
            "line 4",
        ),
        ("coinbase_btcusd_1h.csv", BANNER + "nonsense,header\n1,2\n", "line 2"),
        (
            "bitstamp_btc_usd_1d.csv",
            ",BTC:open,BTC:high,BTC:low,BTC:close,BTC:volume\n2019-01-01,1,2,1,1,-5\n",
            "line 2",
        ),
        ("bitstamp_btc_usd_1d.csv", ",BTC:open,BTC:high,BTC:bogus,BTC:close,BTC:volume\n", "line 1"),
        ("kraken_btcusd_1h.csv", LONG_HEADER, "file name"),
        ("coinbase_btcusd_7x.csv", LONG_HEADER, "invalid timeframe"),
    ],
)
def test_malformed_content_names_file_and_line(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(ValueError) as error:
        load_recording(path)
    assert name in str(error.value) and expected in str(error.value)
