"""Reader for plain tables (CSV, TSV, Parquet) mapped to fusionrec's roles by the ``dataset`` config section.

CSV/TSV use the csv module; Parquet needs pandas and pyarrow (``pip install fusionrec[tables]``), imported only
when a Parquet file is read. Errors name the file, the line (CSV: 1-based line in the file; Parquet: 1-based row)
and the column.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from fusionrec.config import DatasetConfig
from fusionrec.data.build import (RawInteractions, RawItems, RawLinks, RawSocial, RawTriples, build_dataset,
                                  parse_floats)
from fusionrec.data.dataset import Dataset
from fusionrec.errors import ConfigError, DataError

PARQUET_SUFFIXES = (".parquet", ".pq")
SEP_BY_SUFFIX = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": "\t"}


@dataclass(frozen=True, eq=False)
class Table:
    """The columns a reader asked for: ``cells`` column -> n values (str for CSV; str, float or list for Parquet),
    ``lines`` int64 (n,), ``header`` every column the file has; ``parquet`` says whether lines are rows."""

    file: str
    header: list[str]
    cells: dict[str, list]
    lines: np.ndarray
    parquet: bool = False

    def ids(self, column: str) -> list[str]:
        """Raw ids as strings ('' for a missing cell; 3.0 read from Parquet becomes '3')."""
        values = self.cells[column]
        if not self.parquet:
            return values
        return ["" if _is_missing(v) else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
                for v in values]

    def floats(self, column: str, what: str = "numeric") -> np.ndarray:
        """float64 (n,); a missing cell is NaN, a non-number raises naming the line/row."""
        values = self.cells[column]
        if not self.parquet:
            return parse_floats(values, self.lines, self.file, column, what)
        try:
            return np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            pass
        out = np.empty(len(values), dtype=np.float64)
        for k, v in enumerate(values):
            if _is_missing(v):
                out[k] = np.nan
                continue
            try:
                out[k] = float(v)
            except (TypeError, ValueError):
                raise self.error(f"{v!r} is not a number (the column holds {what} values)", k, column) from None
        return out

    def timestamps(self, column: str) -> np.ndarray:
        """Seconds since the epoch, float64 (n,): numbers as they are, ISO-8601 dates (``2021-03-04T05:06:07``,
        naive = UTC) and Parquet datetimes converted."""
        values = self.cells[column]
        try:
            return self.floats(column, "timestamp")
        except DataError:
            pass
        out = np.empty(len(values), dtype=np.float64)
        for k, v in enumerate(values):
            if _is_missing(v) or (isinstance(v, str) and not v.strip()):
                out[k] = np.nan
            elif hasattr(v, "timestamp"):  # datetime / pandas Timestamp
                out[k] = _epoch(v)
            else:
                try:
                    out[k] = float(v)
                except (TypeError, ValueError):
                    try:
                        out[k] = _epoch(datetime.fromisoformat(str(v).strip()))
                    except ValueError:
                        raise self.error(f"{v!r} is neither a number nor an ISO-8601 date", k, column) from None
        return out

    def texts(self, column: str) -> list[str]:
        return ["" if _is_missing(v) else str(v) for v in self.cells[column]]

    def tokens(self, column: str, sep: str) -> list[tuple[str, ...]]:
        """Multi-valued cells: split on ``sep`` (a Parquet list cell is taken as it is); blanks dropped."""
        out = []
        for v in self.cells[column]:
            if _is_missing(v):
                out.append(())
            elif isinstance(v, str):
                out.append(tuple(t.strip() for t in v.split(sep) if t.strip()))
            else:
                out.append(tuple(str(t) for t in v if not _is_missing(t)))
        return out

    def error(self, message: str, row: int, column: str) -> DataError:
        line = int(self.lines[row])
        if self.parquet:
            message += f" (row {line} of the Parquet table)"
        return DataError(message, file=self.file, line=line, field=column)


def read_tables(config: DatasetConfig, base_dir: str | Path) -> Dataset:
    """The dataset described by ``config.interactions`` (required), ``config.items``, ``config.kg``,
    ``config.links`` and ``config.social``; relative file names are taken from ``base_dir``."""
    if config.interactions is None:
        raise ConfigError("format: table needs an interactions table (file and column names)",
                          key="dataset.interactions")
    base = Path(base_dir)
    ic = config.interactions
    t = read_table(base / ic.file, [ic.user, ic.item], [ic.rating, ic.timestamp, ic.weight], sep=ic.sep)
    inter = RawInteractions(
        t.file, t.ids(ic.user), t.ids(ic.item), t.lines,
        ratings=t.floats(ic.rating, "rating") if ic.rating else None,
        timestamps=t.timestamps(ic.timestamp) if ic.timestamp else None,
        weights=t.floats(ic.weight, "weight") if ic.weight else None,
        user_field=ic.user, item_field=ic.item, rating_field=ic.rating or "rating")
    items = triples = links = None
    if config.items is not None:
        c = config.items
        t = read_table(base / c.file, [c.id, *c.text, *c.categorical, *c.numeric], sep=c.sep)
        items = RawItems(t.file, t.ids(c.id), t.lines, {f: t.texts(f) for f in c.text},
                         {f: t.tokens(f, c.token_sep) for f in c.categorical},
                         {f: t.floats(f) for f in c.numeric}, id_field=c.id)
    if config.kg is not None:
        c = config.kg
        t = read_table(base / c.file, [c.head, c.relation, c.tail], sep=c.sep)
        triples = RawTriples(t.file, t.ids(c.head), t.ids(c.relation), t.ids(c.tail), t.lines,
                             (c.head, c.relation, c.tail))
    if config.links is not None:
        c = config.links
        t = read_table(base / c.file, [c.item, c.entity], sep=c.sep)
        links = RawLinks(t.file, t.ids(c.item), t.ids(c.entity), t.lines, c.item, c.entity)
    social = None
    if config.social is not None:
        c = config.social
        t = read_table(base / c.file, [c.source, c.target], sep=c.sep)
        social = RawSocial(t.file, t.ids(c.source), t.ids(c.target), t.lines, (c.source, c.target))
    return build_dataset(config.name, inter, items=items, triples=triples, links=links, social=social,
                         duplicates=config.duplicates, rating_threshold=config.rating_threshold,
                         unknown_links=config.unknown_links, source=str(base))


def read_table(path: str | Path, columns: Sequence[str], optional: Sequence[str | None] = (), *,
               sep: str | None = None) -> Table:
    """The named columns of one CSV/TSV/Parquet file (``optional`` entries may be None: not wanted)."""
    path = Path(path)
    wanted = list(dict.fromkeys([*columns, *(c for c in optional if c)]))
    if not path.is_file():
        raise DataError("file not found", file=str(path))
    if sep is None and path.suffix.lower() in PARQUET_SUFFIXES:
        return _read_parquet(path, wanted)
    if sep is None:
        sep = SEP_BY_SUFFIX.get(path.suffix.lower())
        if sep is None:
            raise DataError(f"cannot tell the format from the suffix {path.suffix!r}: use .csv, .tsv, .parquet or "
                            "set sep", file=str(path))
    return _read_csv(path, wanted, sep)


def _read_csv(path: Path, wanted: list[str], sep: str) -> Table:
    file = str(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=sep)
            rows, lines, prev = [], [], 0
            for row in reader:
                if row:
                    rows.append(row)
                    lines.append(prev + 1)
                prev = reader.line_num
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text (byte {exc.start})", file=file) from None
    except csv.Error as exc:
        raise DataError(f"not valid CSV: {exc}", file=file, line=reader.line_num) from None
    if not rows:
        raise DataError("empty file: the first line must be the header", file=file, line=1)
    header = [h.strip() for h in rows[0]]
    _check_columns(header, wanted, file, header_line=lines[0])
    body, body_lines = rows[1:], np.asarray(lines[1:], dtype=np.int64)
    width = len(header)
    lens = np.fromiter(map(len, body), dtype=np.int64, count=len(body))
    bad = np.flatnonzero(lens != width)
    if len(bad):
        k = int(bad[0])
        got = int(lens[k])
        where = header[got] if got < width else header[-1]
        raise DataError(f"{got} columns but the header names {width}", file=file, line=int(body_lines[k]),
                        field=where)
    cols = list(zip(*body)) if body else [()] * width
    cells = {name: list(cols[header.index(name)]) for name in wanted}
    return Table(file, header, cells, body_lines)


def _read_parquet(path: Path, wanted: list[str]) -> Table:
    file = str(path)
    try:
        import pandas as pd
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading Parquet needs pandas and pyarrow: pip install 'fusionrec[tables]'",
                        file=file) from None
    try:
        header = list(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises its own error types for a file that is not Parquet
        raise DataError(f"not a readable Parquet file: {exc}", file=file) from None
    _check_columns(header, wanted, file, header_line=None)
    frame = pd.read_parquet(path, columns=wanted)
    if not len(frame):
        raise DataError("empty table: no rows", file=file, line=1)
    cells = {}
    for name in wanted:
        col = frame[name]
        if pd.api.types.is_datetime64_any_dtype(col):
            cells[name] = [None if pd.isna(v) else v.to_pydatetime() for v in col]
        else:
            cells[name] = col.tolist()
    return Table(file, header, cells, np.arange(1, len(frame) + 1, dtype=np.int64), parquet=True)


def _check_columns(header: list[str], wanted: list[str], file: str, header_line: int | None) -> None:
    for name in wanted:
        if name not in header:
            raise DataError(f"no column '{name}'; the file has columns: {', '.join(header)}", file=file,
                            line=header_line, field=name)


def _is_missing(v: object) -> bool:
    """None, NaN, NaT and pandas' NA."""
    if v is None:
        return True
    if isinstance(v, (str, list, tuple, np.ndarray)):
        return False
    try:
        return bool(v != v)
    except (TypeError, ValueError):
        return True


def _epoch(value) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()
