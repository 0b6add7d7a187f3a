"""Reader for RecBole's atomic files: ``NAME.inter`` (required), ``NAME.item``, ``NAME.user``, ``NAME.kg``,
``NAME.link``, ``NAME.net`` (the users' social graph).

Each file is tab-separated text whose first line types every column as ``field:type`` with type ``token``,
``token_seq`` (space-separated tokens), ``float`` or ``float_seq``. Needs only the standard library and numpy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from fusionrec.data.build import (RawInteractions, RawItems, RawLinks, RawSocial, RawTriples, RawUsers, build_dataset,
                                  check_ids, parse_floats)
from fusionrec.data.dataset import Dataset
from fusionrec.data.sequences import HISTORY_FIELD, SequenceRows, sequence_interactions, sequence_parts
from fusionrec.errors import ConfigError, DataError

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
                presplit: bool = False, unknown_links: str = "skip",
                fields: Mapping[str, str] | None = None) -> Dataset:
    """The dataset ``NAME`` in ``directory``: ``NAME.inter`` (or, with ``presplit``, ``NAME.train.inter``, the
    optional ``NAME.valid.inter`` and ``NAME.test.inter``) plus the optional ``NAME.item``, ``NAME.text``,
    ``NAME.user``, ``NAME.kg``, ``NAME.link``, ``NAME.user2index`` and ``NAME.item2index``.

    ``.inter`` files in RecBole's sequential format (an ``item_id_list`` column) are collapsed into one ordered
    history per user (:mod:`fusionrec.data.sequences`). ``fields``: item field -> ``text``, ``categorical``,
    ``numeric`` or ``ignore``, overriding the text/categorical guess. Raises :class:`DataError` naming file, line
    and field for anything malformed."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError("not a directory of atomic files", file=str(directory))
    notes: list[str] = []
    kinds = dict(fields or {})
    if presplit:
        tables = {part: read_atomic_table(directory / f"{name}.{part}.inter") for part in SPLIT_PARTS
                  if part != "valid" or (directory / f"{name}.valid.inter").exists()}
        if "valid" not in tables:
            notes.append(f"no {name}.valid.inter: the valid part is empty")
        sequential = _sequential(tables.values())
        if sequential:
            rows = {part: _sequence_rows(t) for part, t in tables.items()}
            inter = sequence_parts(rows["train"], rows.get("valid"), rows["test"])
        else:
            inter = {part: _interactions(t) for part, t in tables.items()}
    else:
        table = read_atomic_table(directory / f"{name}.inter")
        sequential = _sequential([table])
        inter = sequence_interactions(_sequence_rows(table)) if sequential else _interactions(table)
    inter, user_order = _apply_index(inter, directory / f"{name}.user2index", "user")
    inter, item_order = _apply_index(inter, directory / f"{name}.item2index", "item")
    optional = {ext: directory / f"{name}.{ext}" for ext in ("item", "text", "user", "kg", "link", "net")}
    items = [_items(read_atomic_table(optional[ext]), notes, kinds, ext) for ext in ("item", "text")
             if optional[ext].exists()]
    unknown = sorted(set(kinds) - {f for raw in items for f in (*raw.text, *raw.categorical, *raw.numeric)}
                     - {f for raw in items for f in raw.origin if raw.origin[f] == "ignored"})
    if unknown:
        have = sorted({f for raw in items for f in (*raw.text, *raw.categorical, *raw.numeric)})
        raise ConfigError(f"no item file of {name!r} has this field (item fields: {', '.join(have) or 'none'})",
                          key=f"dataset.fields.{unknown[0]}")
    users = _users(read_atomic_table(optional["user"]), notes) if optional["user"].exists() else None
    triples = _triples(read_atomic_table(optional["kg"])) if optional["kg"].exists() else None
    links = _links(read_atomic_table(optional["link"])) if optional["link"].exists() else None
    social = _social(read_atomic_table(optional["net"])) if optional["net"].exists() else None
    return build_dataset(name, inter, items=items, users=users, triples=triples, links=links, social=social,
                         duplicates=duplicates, rating_threshold=rating_threshold, unknown_links=unknown_links,
                         source=str(directory), notes=notes, user_order=user_order, item_order=item_order,
                         timestamps_are_positions=sequential)


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


def _sequential(tables) -> bool:
    """Whether these ``.inter`` files are in the sequential format (all of them, or none: a mix is an error)."""
    tables = list(tables)
    flags = [HISTORY_FIELD in t.fields for t in tables]
    if any(flags) and not all(flags):
        odd = tables[flags.index(False)]
        raise DataError(f"the other .inter files have an '{HISTORY_FIELD}' column (the sequential format) and this "
                        "one has none", file=odd.file, line=1, field=HISTORY_FIELD)
    return bool(flags) and flags[0]


def _sequence_rows(table: AtomicTable) -> SequenceRows:
    users = table.require("user_id", ("token",))
    histories = table.require(HISTORY_FIELD, ("token_seq",))
    targets = table.require("item_id", ("token",))
    check_ids(users, table.lines, table.file, "user_id")
    check_ids(targets, table.lines, table.file, "item_id")
    return SequenceRows(table.file, users, [h.split() for h in histories], targets, table.lines)


def _apply_index(inter, path: Path, kind: str):
    """With ``NAME.user2index`` / ``NAME.item2index`` (raw id TAB integer, no header), the integer ids of the
    interactions (one RawInteractions or a dict of parts) replaced by raw ids. Returns (the interactions, the raw
    ids in integer order, which the id map follows; [] without the file)."""
    if not path.exists():
        return inter, []
    raw_of = read_id_index(path)
    column = "users" if kind == "user" else "items"
    parts = dict(inter) if isinstance(inter, dict) else {"": inter}
    for key, part in parts.items():
        mapped = []
        for k, v in enumerate(part.users if kind == "user" else part.items):
            raw = raw_of.get(v)
            if raw is None and v.strip().isdigit():
                raw = raw_of.get(str(int(v)))
            if raw is None:
                raise DataError(f"{kind} id {v!r} is not in {path.name}", file=part.file, line=int(part.lines[k]),
                                field=f"{kind}_id")
            mapped.append(raw)
        parts[key] = replace(part, **{column: mapped})
    order = [raw_of[k] for k in sorted(raw_of, key=int)]
    return (parts if isinstance(inter, dict) else parts[""]), order


def read_id_index(path: str | Path) -> dict[str, str]:
    """``NAME.item2index`` / ``NAME.user2index``: integer id (as written) -> raw id. Lines are ``raw TAB integer``;
    a malformed line, a repeated raw id or a repeated integer raises :class:`DataError` naming the line."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the id map: {exc}", file=file) from None
    raw_of: dict[str, str] = {}
    line_of: dict[str, int] = {}
    for n, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != 2 or not cells[1].strip().lstrip("-").isdigit() or not cells[0].strip():
            raise DataError("each line must be 'raw id TAB integer id'", file=file, line=n, field="index")
        raw, index = cells[0].strip(), str(int(cells[1]))
        if index in raw_of:
            raise DataError(f"integer id {index} is given twice (first on line {line_of[index]})", file=file,
                            line=n, field="index")
        if raw in line_of:
            raise DataError(f"raw id {raw!r} is given twice (first on line {line_of[raw]})", file=file, line=n,
                            field="raw_id")
        raw_of[index] = raw
        line_of[index] = line_of[raw] = n
    return raw_of


def _interactions(table: AtomicTable) -> RawInteractions:
    users = table.require("user_id", ("token",))
    items = table.require("item_id", ("token",))
    return RawInteractions(table.file, users, items, table.lines, ratings=table.floats("rating"),
                           timestamps=table.floats("timestamp"), weights=table.floats("weight"))


def _users(table: AtomicTable, notes: list[str]) -> RawUsers:
    """User ids and fields: float fields numeric, token and token_seq fields categorical (tokens), float_seq
    fields skipped (noted)."""
    ids = table.require("user_id", ("token",))
    cat, num, origin = {}, {}, {}
    for name, kind in zip(table.fields, table.types):
        if name == "user_id":
            continue
        cells = table.columns[name]
        if kind == "float_seq":
            notes.append(f"{table.file}: float_seq field '{name}' skipped (vector user features are not read)")
            continue
        if kind == "float":
            num[name] = parse_floats(cells, table.lines, table.file, name)
        else:
            cat[name] = [tuple(c.split()) for c in cells] if kind == "token_seq" \
                else [(c.strip(),) if c.strip() else () for c in cells]
        origin[name] = "typed"
    return RawUsers(table.file, ids, table.lines, categorical=cat, numeric=num, origin=origin)


def _items(table: AtomicTable, notes: list[str], kinds: Mapping[str, str], ext: str) -> RawItems:
    """Item fields by kind. ``kinds`` (``dataset.fields``) decides first; otherwise every field of ``NAME.text``
    is text (the format says so), floats are numeric, token_seq/token fields that read as free text
    (:func:`is_text_field`) are text and the rest categorical. float_seq fields are skipped (noted)."""
    ids = table.require("item_id", ("token",))
    text, cat, num, origin = {}, {}, {}, {}
    for name, kind in zip(table.fields, table.types):
        if name == "item_id":
            continue
        cells = table.columns[name]
        declared = kinds.get(name)
        if declared is None and kind == "float_seq":
            notes.append(f"{table.file}: float_seq field '{name}' skipped (vector item features are not read)")
            continue
        if declared is not None:
            use, origin[name] = declared, "declared"
        elif ext == "text":
            use, origin[name] = "text", "format"
        elif kind == "float":
            use, origin[name] = "numeric", "typed"
        else:
            use, origin[name] = ("text" if is_text_field(name, cells) else "categorical"), "guessed"
        if use == "ignore":
            origin[name] = "ignored"
        elif use == "numeric":
            num[name] = parse_floats(cells, table.lines, table.file, name)
        elif use == "text":
            text[name] = [" ".join(c.split()) for c in cells]
        elif kind in ("token_seq", "float_seq"):
            cat[name] = [tuple(c.split()) for c in cells]
        else:
            cat[name] = [(c,) if c.strip() else () for c in cells]
    return RawItems(table.file, ids, table.lines, text, cat, num, origin=origin)


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


def _social(table: AtomicTable) -> RawSocial:
    return RawSocial(table.file, table.require("source_id", ("token",)), table.require("target_id", ("token",)),
                     table.lines)


def _links(table: AtomicTable) -> RawLinks:
    return RawLinks(table.file, table.require("item_id", ("token",)), table.require("entity_id", ("token",)),
                    table.lines)
