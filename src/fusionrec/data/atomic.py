"""Reader for RecBole's atomic files: ``NAME.inter`` (required), ``NAME.item``, ``NAME.user``, ``NAME.kg``,
``NAME.link``.

Each file is tab-separated text whose first line types every column as ``field:type`` with type ``token``,
``token_seq`` (space-separated tokens), ``float`` or ``float_seq``. Needs only the standard library and numpy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fusionrec.data.build import (RawInteractions, RawItems, RawLinks, RawTriples, RawUsers, build_dataset,
                                  parse_floats)
from fusionrec.data.dataset import Dataset
from fusionrec.errors import DataError

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
SPLIT_PARTS = ("train", "valid", "test")
# a token_seq item field is free text (not a list of categories) when its name has one of these words ...
TEXT_NAME_WORDS = frozenset({"title", "name", "description", "desc", "text", "summary", "overview", "plot",
                             "abstract", "review", "synopsis", "content", "comment", "caption", "body"})
# ... or when its values average more than this many words
TEXT_MIN_MEAN_WORDS = 3.0


@dataclass(frozen=True, eq=False)
class AtomicTable:
    """One atomic file: ``fields`` and ``types`` from the header, ``columns`` field -> n raw cells (str), ``lines``
    int64 (n,) the 1-based line of each row (blank lines are skipped)."""

    file: str
    fields: list[str]
    types: list[str]
    columns: dict[str, list[str]]
    lines: np.ndarray

    def type_of(self, name: str) -> str | None:
        return self.types[self.fields.index(name)] if name in self.fields else None

    def require(self, name: str, types: tuple[str, ...]) -> list[str]:
        """The cells of a required column, checked to be of one of ``types``."""
        if name not in self.fields:
            raise DataError(f"the header has no '{name}' column; it names: {', '.join(self.fields)}",
                            file=self.file, line=1, field=name)
        return self.optional(name, types)

    def optional(self, name: str, types: tuple[str, ...]) -> list[str] | None:
        kind = self.type_of(name)
        if kind is None:
            return None
        if kind not in types:
            raise DataError(f"'{name}' is typed {kind} but must be {' or '.join(types)}", file=self.file, line=1,
                            field=name)
        return self.columns[name]

    def floats(self, name: str) -> np.ndarray | None:
        """float64 (n,) of a float column, or None when the file has no such column."""
        cells = self.optional(name, ("float",))
        return None if cells is None else parse_floats(cells, self.lines, self.file, name)


def read_atomic(directory: str | Path, name: str, *, duplicates: str = "keep", rating_threshold: float | None = None,
                presplit: bool = False, unknown_links: str = "skip") -> Dataset:
    """The dataset ``NAME`` in ``directory``: ``NAME.inter`` (or, with ``presplit``, ``NAME.train.inter``,
    ``NAME.valid.inter`` and ``NAME.test.inter``) plus the optional ``NAME.item``, ``NAME.user``, ``NAME.kg`` and
    ``NAME.link``. Raises :class:`DataError` naming file, line and field for anything malformed."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError("not a directory of atomic files", file=str(directory))
    notes: list[str] = []
    if presplit:
        inter = {part: _interactions(read_atomic_table(directory / f"{name}.{part}.inter")) for part in SPLIT_PARTS}
    else:
        inter = _interactions(read_atomic_table(directory / f"{name}.inter"))
    optional = {ext: directory / f"{name}.{ext}" for ext in ("item", "user", "kg", "link")}
    items = _items(read_atomic_table(optional["item"]), notes) if optional["item"].exists() else None
    users = _users(read_atomic_table(optional["user"])) if optional["user"].exists() else None
    triples = _triples(read_atomic_table(optional["kg"])) if optional["kg"].exists() else None
    links = _links(read_atomic_table(optional["link"])) if optional["link"].exists() else None
    return build_dataset(name, inter, items=items, users=users, triples=triples, links=links,
                         duplicates=duplicates, rating_threshold=rating_threshold, unknown_links=unknown_links,
                         source=str(directory), notes=notes)


def read_atomic_table(path: str | Path) -> AtomicTable:
    """Parses one atomic file (header and rows); every cell stays a string."""
    file = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", file=file) from None
    except OSError as exc:
        raise DataError(f"cannot read the file: {exc.strerror}", file=file) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text (byte {exc.start})", file=file,
                        line=data[: exc.start].count(b"\n") + 1) from None
    text = text.replace("\r\n", "\n")
    header, _, body = text.partition("\n")
    if not header.strip():
        raise DataError("empty file: the first line must be the header (field:type, tab-separated)", file=file,
                        line=1)
    fields, types = _parse_header(header.split("\t"), file)
    body = body.rstrip("\n")
    columns, lines = _split_body(body, len(fields), file, fields)
    return AtomicTable(file, fields, types, dict(zip(fields, columns)), lines)


def _split_body(body: str, width: int, file: str, fields: list[str]) -> tuple[list[list[str]], np.ndarray]:
    """Columns (``width`` lists of n cells) and the lines (n,) of the rows below the header (line 1).

    Counts the tabs of every line at once on the bytes, then splits the whole body in one call: the per-row
    Python loop this avoids is most of the cost on large files (ml-100k's 91,631-line .kg)."""
    if not body:
        return [[] for _ in range(width)], np.zeros(0, dtype=np.int64)
    raw = np.frombuffer(body.encode("utf-8"), dtype=np.uint8)
    newlines = np.flatnonzero(raw == 10)
    starts = np.concatenate([[0], newlines + 1])
    ends = np.concatenate([newlines, [len(raw)]])
    tabs_before = np.searchsorted(np.flatnonzero(raw == 9), np.concatenate([starts, [len(raw)]]))
    tab_count = np.diff(tabs_before)[: len(starts)]
    blank = ends == starts
    lines = np.flatnonzero(~blank).astype(np.int64) + 2
    tab_count = tab_count[~blank]
    bad = np.flatnonzero(tab_count != width - 1)
    if len(bad):
        k = int(bad[0])
        got = int(tab_count[k]) + 1
        where = fields[got] if got < width else fields[-1]
        detail = (f"the value of '{where}' and those after it are missing" if got < width
                  else "values follow the last field (a tab inside a value?)")
        raise DataError(f"{got} tab-separated columns but the header names {width}: {detail}", file=file,
                        line=int(lines[k]), field=where)
    if blank.any():
        body = "\n".join(line for line in body.split("\n") if line)
    cells = body.replace("\n", "\t").split("\t")
    return [cells[j::width] for j in range(width)], lines


def _parse_header(cells: list[str], file: str) -> tuple[list[str], list[str]]:
    fields, types = [], []
    for cell in cells:
        cell = cell.strip()
        name, sep, kind = cell.rpartition(":")
        if not sep or not name:
            raise DataError(f"header cell {cell!r} must look like field:type with type one of "
                            f"{', '.join(ATOMIC_TYPES)}", file=file, line=1, field=cell or None)
        if kind not in ATOMIC_TYPES:
            raise DataError(f"unknown type {kind!r}; the types are {', '.join(ATOMIC_TYPES)}", file=file, line=1,
                            field=name)
        if name in fields:
            raise DataError("the header names this field twice", file=file, line=1, field=name)
        fields.append(name)
        types.append(kind)
    return fields, types


def _interactions(table: AtomicTable) -> RawInteractions:
    users = table.require("user_id", ("token",))
    items = table.require("item_id", ("token",))
    return RawInteractions(table.file, users, items, table.lines, ratings=table.floats("rating"),
                           timestamps=table.floats("timestamp"), weights=table.floats("weight"))


def _users(table: AtomicTable) -> RawUsers:
    return RawUsers(table.file, table.require("user_id", ("token",)), table.lines)


def _items(table: AtomicTable, notes: list[str]) -> RawItems:
    """token_seq fields that read as free text become text; other token/token_seq fields categorical; floats
    numeric. float_seq fields are skipped (noted)."""
    ids = table.require("item_id", ("token",))
    text, cat, num = {}, {}, {}
    for name, kind in zip(table.fields, table.types):
        if name == "item_id":
            continue
        cells = table.columns[name]
        if kind == "float":
            num[name] = parse_floats(cells, table.lines, table.file, name)
        elif kind == "float_seq":
            notes.append(f"{table.file}: float_seq field '{name}' skipped (vector item features are not read)")
        elif is_text_field(name, cells):
            text[name] = [" ".join(c.split()) for c in cells]
        elif kind == "token_seq":
            cat[name] = [tuple(c.split()) for c in cells]
        else:
            cat[name] = [(c,) if c.strip() else () for c in cells]
    return RawItems(table.file, ids, table.lines, text, cat, num)


def is_text_field(name: str, cells: list[str]) -> bool:
    """Whether a token/token_seq item field is free text: its name has a text word (``movie_title``,
    ``description``) or its values average more than three words. RecBole types titles both ways (ml-100k
    ``movie_title:token_seq``, Amazon ``title:token``), so the same rule applies to both."""
    if TEXT_NAME_WORDS & set(re.split(r"[^a-z]+", name.lower())):
        return True
    if not cells:
        return False
    words = sum(c.count(" ") + 1 for c in cells if c.strip())
    return words / len(cells) > TEXT_MIN_MEAN_WORDS


def _triples(table: AtomicTable) -> RawTriples:
    heads = table.require("head_id", ("token",))
    relations = table.require("relation_id", ("token",))
    tails = table.require("tail_id", ("token",))
    return RawTriples(table.file, heads, relations, tails, table.lines)


def _links(table: AtomicTable) -> RawLinks:
    return RawLinks(table.file, table.require("item_id", ("token",)), table.require("entity_id", ("token",)),
                    table.lines)
