"""Parse the real recorded candle files (CryptoDataDownload exports) into one canonical frame.

Two layouts exist in the data directory (../shared/data; see its README.md):

- long: `coinbase_btcusd_1h.csv` — a banner line, then `date,symbol,open,high,low,close,volume_btc,volume`,
  12-hour timestamps such as `2019-10-17 09-AM`, newest row first, base volume in `volume_<base>`;
- wide: `bitstamp_btc_eth_ltc_usd_1d.csv` — `,BTC:open,...,ETH:open,...` with empty cells before a
  market was listed.

The frame keeps the exact decimal text of every value next to its float, because other tests use it
as ground truth ("the warehouse holds exactly the recorded candles") and floats cannot prove that.
"""

from __future__ import annotations

import csv
import functools
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cryptopipe_dagster.lib.errors import InvalidTimeframe
from cryptopipe_dagster.lib.timeframes import timeframe_seconds

FIELDS = ("open", "high", "low", "close", "volume")
COLUMNS = ["exchange", "symbol", "timeframe", "ts", *FIELDS, *(f"{f}_str" for f in FIELDS)]

# CryptoDataDownload names files after the venue's brand; the pipeline speaks ccxt ids.
EXCHANGE_IDS = {"coinbase": "coinbaseexchange", "bitstamp": "bitstamp"}

_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")
# Tried in order; the first one that parses the first row is used for the whole file.
_TIMESTAMP_FORMATS = ("%Y-%m-%d %I-%p", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


def load_recording(path: Path | str) -> pd.DataFrame:
    """Parse one recorded candle file into the canonical frame (see COLUMNS), sorted by (symbol, ts).

    Raises ValueError naming the file and line for malformed content.
    """
    file = Path(path)
    stat = file.stat()
    return _load_cached(str(file.resolve()), stat.st_mtime_ns, stat.st_size).copy()


def load_recordings(data_dir: Path | str) -> pd.DataFrame:
    """Concatenate every `*.csv` recording in `data_dir`, sorted by (exchange, symbol, ts)."""
    directory = Path(data_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"recordings directory {directory} does not exist")
    frames = [load_recording(p) for p in sorted(directory.glob("*.csv"))]
    if not frames:
        return _empty_frame()
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["exchange", "symbol", "ts"], kind="stable").reset_index(drop=True)


@functools.lru_cache(maxsize=32)
def _load_cached(path: str, _mtime_ns: int, _size: int) -> pd.DataFrame:
    file = Path(path)
    exchange, timeframe, name_tokens = _parse_file_name(file)
    lines = _read_rows(file)
    if not lines:
        raise ValueError(f"{file}: empty recording")
    first = [cell.strip() for cell in lines[0][1]]
    if first and first[0] == "" and any(":" in cell for cell in first[1:]):
        parts = _parse_wide(file, lines, quote=name_tokens[-1].upper())
    else:
        parts = _parse_long(file, lines)
    frame = _assemble(file, parts, exchange, timeframe)
    return frame


def _parse_file_name(file: Path) -> tuple[str, str, list[str]]:
    tokens = file.stem.lower().split("_")
    if len(tokens) < 3 or tokens[0] not in EXCHANGE_IDS:
        raise ValueError(
            f"{file}: file name must look like <exchange>_<markets>_<timeframe>.csv "
            f"with exchange in {sorted(EXCHANGE_IDS)}"
        )
    try:
        timeframe_seconds(tokens[-1])
    except InvalidTimeframe as exc:
        raise ValueError(f"{file}: {exc}") from exc
    return EXCHANGE_IDS[tokens[0]], tokens[-1], tokens[1:-1]


def _read_rows(file: Path) -> list[tuple[int, list[str]]]:
    """(line number, cells) for every non-blank CSV row; line numbers are 1-based file lines."""
    rows: list[tuple[int, list[str]]] = []
    with file.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        try:
            for cells in reader:
                if cells and any(cell.strip() for cell in cells):
                    rows.append((reader.line_num, cells))
        except csv.Error as exc:
            raise ValueError(f"{file}, line {reader.line_num}: unreadable CSV ({exc})") from exc
    return rows


def _parse_long(file: Path, lines: list[tuple[int, list[str]]]) -> list[dict]:
    """The CryptoDataDownload one-market layout; the first line may be a banner instead of the header."""
    header_at = 0 if _is_long_header(lines[0][1]) else 1
    if header_at >= len(lines) or not _is_long_header(lines[header_at][1]):
        raise ValueError(
            f"{file}, line {lines[min(header_at, len(lines) - 1)][0]}: expected a header "
            "with date,symbol,open,high,low,close,volume_<base>"
        )
    header = [cell.strip().lower().replace(" ", "_") for cell in lines[header_at][1]]
    body = lines[header_at + 1 :]
    _check_widths(file, body, len(header))
    column = {name: i for i, name in enumerate(header)}
    symbols = {cells[column["symbol"]].strip() for _, cells in body}
    if len(symbols) != 1:
        raise ValueError(f"{file}: expected exactly one symbol, found {sorted(symbols)}")
    raw_symbol = symbols.pop()
    base, quote = _split_symbol(file, raw_symbol, header)
    volume_column = column[f"volume_{base.lower()}"]
    indices = [column["open"], column["high"], column["low"], column["close"], volume_column]
    return [
        {
            "symbol": f"{base}/{quote}",
            "line": np.array([n for n, _ in body], dtype=np.int64),
            "date": [cells[column["date"]].strip() for _, cells in body],
            "values": [[cells[i].strip() for _, cells in body] for i in indices],
        }
    ]


def _is_long_header(cells: list[str]) -> bool:
    names = {cell.strip().lower() for cell in cells}
    return {"date", "symbol", "open", "high", "low", "close"} <= names


def _split_symbol(file: Path, raw_symbol: str, header: list[str]) -> tuple[str, str]:
    """BTCUSD -> (BTC, USD), using the `volume_<base>` column to know where the base ends."""
    if "/" in raw_symbol:
        base, quote = raw_symbol.upper().split("/", 1)
        return base, quote
    for name in header:
        if name.startswith("volume_"):
            base = name.removeprefix("volume_").upper()
            if raw_symbol.upper().startswith(base) and len(raw_symbol) > len(base):
                return base, raw_symbol.upper()[len(base) :]
    raise ValueError(
        f"{file}: cannot tell base from quote in symbol {raw_symbol!r} (no volume_<base> column matches it)"
    )


def _parse_wide(file: Path, lines: list[tuple[int, list[str]]], quote: str) -> list[dict]:
    """The one-column-group-per-asset layout: `,BTC:open,BTC:high,...`."""
    header = [cell.strip() for cell in lines[0][1]]
    body = lines[1:]
    _check_widths(file, body, len(header))
    groups: dict[str, dict[str, int]] = {}
    for i, name in enumerate(header[1:], start=1):
        asset, _, field = name.partition(":")
        if field.lower() not in FIELDS:
            raise ValueError(f"{file}, line {lines[0][0]}: unexpected column {name!r}")
        groups.setdefault(asset.upper(), {})[field.lower()] = i
    parts = []
    for asset, fields in groups.items():
        missing = [f for f in FIELDS if f not in fields]
        if missing:
            raise ValueError(f"{file}, line {lines[0][0]}: asset {asset} lacks columns {missing}")
        parts.append(
            {
                "symbol": f"{asset}/{quote}",
                "line": np.array([n for n, _ in body], dtype=np.int64),
                "date": [cells[0].strip() for _, cells in body],
                "values": [[cells[fields[f]].strip() for _, cells in body] for f in FIELDS],
            }
        )
    return parts


def _check_widths(file: Path, body: list[tuple[int, list[str]]], width: int) -> None:
    for line, cells in body:
        if len(cells) != width:
            raise ValueError(f"{file}, line {line}: expected {width} fields, found {len(cells)}")


def _assemble(file: Path, parts: list[dict], exchange: str, timeframe: str) -> pd.DataFrame:
    frames = [_part_frame(file, part, exchange, timeframe) for part in parts]
    frame = pd.concat(frames, ignore_index=True) if frames else _empty_frame()
    frame = frame.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)
    return frame[COLUMNS]


def _part_frame(file: Path, part: dict, exchange: str, timeframe: str) -> pd.DataFrame:
    text = np.array(part["values"], dtype=object).reshape(len(FIELDS), -1)
    present = np.all(text != "", axis=0)  # rows with empty cells (market not listed yet) are dropped
    lines = part["line"][present]
    text = text[:, present]
    dates = np.array(part["date"], dtype=object)[present]
    ts = _parse_dates(file, dates, lines)
    _check_decimals(file, text, lines)
    values = np.array([[float(s) for s in row] for row in text], dtype=np.float64).reshape(text.shape)
    _check_bars(file, values, lines, part["symbol"])
    _check_unique(file, ts, lines, part["symbol"])
    data = {"exchange": exchange, "symbol": part["symbol"], "timeframe": timeframe, "ts": ts}
    for i, field in enumerate(FIELDS):
        data[field] = values[i]
    for i, field in enumerate(FIELDS):
        data[f"{field}_str"] = text[i]
    return pd.DataFrame(data)


def _parse_dates(file: Path, dates: np.ndarray, lines: np.ndarray) -> pd.DatetimeIndex:
    if len(dates) == 0:
        return pd.DatetimeIndex([], tz="UTC")
    series = pd.Series(dates, dtype=object)
    for fmt in _TIMESTAMP_FORMATS:
        parsed = pd.to_datetime(series, format=fmt, errors="coerce", utc=True)
        if not pd.isna(parsed.iloc[0]):
            bad = np.flatnonzero(parsed.isna().to_numpy())
            if len(bad):
                raise ValueError(
                    f"{file}, line {lines[bad[0]]}: bad timestamp {dates[bad[0]]!r} "
                    f"(expected format {fmt!r} like the rest of the file)"
                )
            return pd.DatetimeIndex(parsed).as_unit("ns")
    raise ValueError(f"{file}, line {lines[0]}: bad timestamp {dates[0]!r}")


def _check_decimals(file: Path, text: np.ndarray, lines: np.ndarray) -> None:
    for i, field in enumerate(FIELDS):
        ok = np.fromiter((bool(_DECIMAL.match(s)) for s in text[i]), dtype=bool, count=text.shape[1])
        if not ok.all():
            j = int(np.flatnonzero(~ok)[0])
            raise ValueError(f"{file}, line {lines[j]}: {field} {text[i, j]!r} is not a plain decimal")


def _check_bars(file: Path, values: np.ndarray, lines: np.ndarray, symbol: str) -> None:
    """A bar must contain its open and close; the simulator derives finer data from it."""
    o, h, lo, c, _ = values
    bad = (lo > np.minimum(o, c)) | (h < np.maximum(o, c))
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{file}, line {lines[j]}: {symbol} bar is inconsistent "
            f"(open={o[j]}, high={h[j]}, low={lo[j]}, close={c[j]})"
        )


def _check_unique(file: Path, ts: pd.DatetimeIndex, lines: np.ndarray, symbol: str) -> None:
    duplicated = ts.duplicated()
    if duplicated.any():
        j = int(np.flatnonzero(duplicated)[0])
        raise ValueError(f"{file}, line {lines[j]}: duplicate {symbol} candle at {ts[j].isoformat()}")


def _empty_frame() -> pd.DataFrame:
    frame = pd.DataFrame({name: pd.Series(dtype=object) for name in COLUMNS})
    frame["ts"] = pd.Series(dtype="datetime64[ns, UTC]")
    for field in FIELDS:
        frame[field] = pd.Series(dtype=np.float64)
    return frame
