"""Turns raw-id columns, as the readers found them, into a :class:`Dataset`.

Both readers (RecBole atomic files and plain tables) parse their files into the ``Raw*`` records below, which keep
the file name and the line of every row, and hand them to :func:`build_dataset`. All checks that do not depend on
the file format live here, so that both readers report them the same way: empty or NaN ids, duplicate
(user, item) rows, duplicate item rows, the rating threshold and links to items that are not in the catalogue.

Id order: users in order of first appearance in the interactions (then users known only from a user file); items in
order of first appearance in the interactions, then items known only from the item file. Ids come from every row
read, before duplicates are dropped or the rating threshold is applied, so the maps do not depend on those options.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from fusionrec.data.dataset import Dataset
from fusionrec.data.ids import IdMap
from fusionrec.data.interactions import Interactions
from fusionrec.data.knowledge_graph import KnowledgeGraph
from fusionrec.data.side_info import ItemSideInfo
from fusionrec.data.social_graph import build_social_graph
from fusionrec.data.user_side_info import UserSideInfo
from fusionrec.errors import DataError

DUPLICATE_POLICIES = ("keep", "drop", "error")
NAN_TOKENS = frozenset({"nan", "NaN", "NAN", "NULL", "null", "None"})
MAX_ID_CHARS = 512  # longer raw ids are refused (a URL fits; a whole document pasted into an id column does not)
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, eq=False)
class RawInteractions:
    """Interaction rows with raw ids. ``users``, ``items``: n raw ids; ``lines``: int64 (n,), the 1-based line (or
    row) of each row in ``file``; ``ratings``, ``timestamps``, ``weights``: float64 (n,) or None. The ``*_field``
    names are the column names used in error messages."""

    file: str
    users: Sequence[str]
    items: Sequence[str]
    lines: np.ndarray
    ratings: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    weights: np.ndarray | None = None
    user_field: str = "user_id"
    item_field: str = "item_id"
    rating_field: str = "rating"


@dataclass(frozen=True, eq=False)
class RawItems:
    """Item rows: ``ids`` (n raw item ids), ``lines`` int64 (n,), and per field n values: ``text`` str,
    ``categorical`` token tuples, ``numeric`` float64 (n,) arrays. ``origin``: field -> how its kind was decided
    (``declared``, ``guessed``, ``typed``, ``format``); a field not in it was declared."""

    file: str
    ids: Sequence[str]
    lines: np.ndarray
    text: dict[str, list[str]] = field(default_factory=dict)
    categorical: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    id_field: str = "item_id"
    origin: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class RawUsers:
    """User ids from a user file (RecBole's ``.user``); users seen only here are added after the interaction users.
    ``categorical``, ``numeric``: the file's other fields by kind (n values each), as :class:`RawItems`'."""

    file: str
    ids: Sequence[str]
    lines: np.ndarray
    id_field: str = "user_id"
    categorical: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class RawTriples:
    """Knowledge-graph triples with raw ids, n of each, and their lines; ``fields`` names head, relation, tail."""

    file: str
    heads: Sequence[str]
    relations: Sequence[str]
    tails: Sequence[str]
    lines: np.ndarray
    fields: tuple[str, str, str] = ("head_id", "relation_id", "tail_id")


@dataclass(frozen=True, eq=False)
class RawLinks:
    """Item -> entity links with raw ids, n of each, and their lines."""

    file: str
    items: Sequence[str]
    entities: Sequence[str]
    lines: np.ndarray
    item_field: str = "item_id"
    entity_field: str = "entity_id"


@dataclass(frozen=True, eq=False)
class RawSocial:
    """User -> user edges with raw ids, n of each, and their lines."""

    file: str
    sources: Sequence[str]
    targets: Sequence[str]
    lines: np.ndarray
    fields: tuple[str, str] = ("source_id", "target_id")


def build_dataset(
    name: str,
    interactions: RawInteractions | Mapping[str, RawInteractions],
    *,
    items: RawItems | Sequence[RawItems] | None = None,
    users: RawUsers | None = None,
    triples: RawTriples | None = None,
    links: RawLinks | None = None,
    duplicates: str = "keep",
    rating_threshold: float | None = None,
    unknown_links: str = "skip",
    source: str | None = None,
    notes: Sequence[str] = (),
    user_order: Sequence[str] = (),
    item_order: Sequence[str] = (),
    timestamps_are_positions: bool = False,
    social: RawSocial | None = None,
) -> Dataset:
    """The dataset made of these parts. A mapping ``{"train": ..., "valid": ..., "test": ...}`` of interaction
    parts makes a pre-split dataset whose ``interactions`` are the parts concatenated in that order.

    ``items``: one item file or several (e.g. ``NAME.item`` and ``NAME.text``), each aligned to the item map and
    merged (a field in two files is an error). ``user_order`` / ``item_order``: raw ids numbered first, in this
    order (an id map file such as ``NAME.item2index``); they belong to the catalogue even without interactions.
    ``timestamps_are_positions``: the timestamps are positions in each user's sequence (sequential files).
    ``social``: user -> user edges (``NAME.net``), kept over the users the interactions know (others skipped, noted).

    ``duplicates``: what to do with a repeated (user, item) pair: 'keep' every row, 'drop' all but the first, or
    'error'. ``rating_threshold``: keep only rows whose rating is >= it. ``unknown_links``: links to items outside the catalogue
    are 'skip'ped and counted in ``Dataset.notes`` (as RecBole does), or raise an 'error' naming file and line."""
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates must be one of {', '.join(DUPLICATE_POLICIES)}, not {duplicates!r}")
    parts = dict(interactions) if isinstance(interactions, Mapping) else {"": interactions}
    notes = list(notes)
    for part in parts.values():
        check_ids(part.users, part.lines, part.file, part.user_field)
        check_ids(part.items, part.lines, part.file, part.item_field)
        check_finite(part.ratings, part.lines, part.file, part.rating_field, allow_missing=False)
        check_finite(part.timestamps, part.lines, part.file, "timestamp", allow_missing=True)
        check_finite(part.weights, part.lines, part.file, "weight", allow_missing=False)
    if sum(len(p.users) for p in parts.values()) == 0:
        first = next(iter(parts.values()))
        raise DataError("no interaction rows (only a header)", file=first.file, line=2, field=first.user_field)

    user_lookup: dict[str, int] = {}
    item_lookup: dict[str, int] = {}
    encode(user_order, user_lookup)
    encode(item_order, item_lookup)
    coded = [(encode(p.users, user_lookup), encode(p.items, item_lookup)) for p in parts.values()]
    if len(item_order):
        idle = len(set(item_order) - {i for p in parts.values() for i in p.items})
        if idle:
            notes.append(f"{idle} item(s) of the item id map have no interaction (kept in the catalogue)")
    if users is not None:
        check_ids(users.ids, users.lines, users.file, users.id_field)
        encode(users.ids, user_lookup)
    item_files = [] if items is None else [items] if isinstance(items, RawItems) else list(items)
    for raw in item_files:
        check_ids(raw.ids, raw.lines, raw.file, raw.id_field)
        n_before = len(item_lookup)
        encode(raw.ids, item_lookup)
        if len(item_lookup) > n_before:
            notes.append(f"{len(item_lookup) - n_before} item(s) of {raw.file} have no interaction "
                         "(kept in the catalogue)")
    n_users, n_items = len(user_lookup), len(item_lookup)

    keep = _duplicate_mask(parts, coded, n_items, duplicates, notes)
    if rating_threshold is not None:
        keep = _threshold_mask(parts, keep, rating_threshold, notes)

    built = {}
    for (key, part), (u, i), mask in zip(parts.items(), coded, keep):
        pick = (lambda a, dtype: None if a is None else np.asarray(a, dtype=dtype)[mask])
        built[key] = Interactions(u[mask], i[mask], n_users, n_items, pick(part.ratings, np.float32),
                                  pick(part.timestamps, np.float64), pick(part.weights, np.float32))
    presplit = None if "" in built else built
    inter = built[""] if presplit is None else Interactions.concat(list(built.values()))

    item_map = IdMap.from_list("item", list(item_lookup))
    item_info = _merge_side_info([_side_info(raw, item_lookup, notes) for raw in item_files], item_files)
    user_info = None if users is None else _user_side_info(users, user_lookup, notes)
    if unknown_links not in ("skip", "error"):
        raise ValueError(f"unknown_links must be 'skip' or 'error', not {unknown_links!r}")
    kg = _knowledge_graph(triples, links, item_lookup, notes, unknown_links) if (triples is not None or links is not None) else None
    graph = None if social is None else build_social_graph(social.file, social.sources, social.targets, social.lines,
                                                           user_lookup, notes, social.fields)
    return Dataset(name=name, users=IdMap.from_list("user", list(user_lookup)), items=item_map, interactions=inter,
                   item_info=item_info, kg=kg, presplit=presplit, source=source, notes=notes,
                   timestamps_are_positions=timestamps_are_positions, social=graph, user_info=user_info)


def encode(values: Sequence[str], lookup: dict[str, int]) -> np.ndarray:
    """Indices of raw ids, int64 of shape (n,); ids not yet in ``lookup`` are added in first-seen order."""
    for raw in dict.fromkeys(values):
        if raw not in lookup:
            lookup[raw] = len(lookup)
    return np.fromiter(map(lookup.__getitem__, values), dtype=np.int64, count=len(values))


def check_ids(values: Sequence[str], lines: np.ndarray, file: str, field_name: str) -> None:
    """Raises :class:`DataError` at the first id that is empty, NaN, longer than :data:`MAX_ID_CHARS` or holds a
    control character (NUL included)."""
    bad = {v for v in set(values) if _id_problem(v) is not None}
    if bad:
        row = next(k for k, v in enumerate(values) if v in bad)
        raise DataError(f"id {_id_problem(values[row])}", file=file, line=int(lines[row]), field=field_name)


def _id_problem(value: str) -> str | None:
    if not value.strip():
        return "is empty; every row needs an id"
    if value in NAN_TOKENS:
        return f"is NaN ({value!r}); every row needs an id"
    if len(value) > MAX_ID_CHARS:
        return f"is {len(value):,} characters long (at most {MAX_ID_CHARS}): {value[:40]!r}..."
    if (m := CONTROL_CHARS.search(value)) is not None:
        return f"holds the control character {m.group()!r} at position {m.start()}: {value[:40]!r}"
    return None


def check_finite(values: np.ndarray | None, lines: np.ndarray, file: str, field_name: str, *,
                 allow_missing: bool) -> None:
    """Raises :class:`DataError` at the first infinite value (inf, -inf, or a number too large for a float), and,
    unless ``allow_missing``, at the first NaN (an empty cell or 'nan')."""
    if values is None:
        return
    bad = np.isinf(values) if allow_missing else ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        what = "missing (an empty cell or 'nan')" if np.isnan(values[row]) else f"{values[row]}, not a finite number"
        raise DataError(f"the value is {what}", file=file, line=int(lines[row]), field=field_name)


def parse_floats(values: Sequence[str], lines: np.ndarray, file: str, field_name: str,
                 what: str = "float") -> np.ndarray:
    """float64 array of shape (n,) from text cells; an empty cell is NaN, anything else that is not a number raises
    :class:`DataError` naming the line."""
    try:
        return np.array(values, dtype=np.float64)
    except ValueError:
        pass
    out = np.empty(len(values), dtype=np.float64)
    for k, cell in enumerate(values):
        cell = cell.strip()
        if not cell:
            out[k] = np.nan
            continue
        try:
            out[k] = float(cell)
        except ValueError:
            raise DataError(f"{cell!r} is not a number (the column holds {what} values)", file=file,
                            line=int(lines[k]), field=field_name) from None
    return out


def _duplicate_mask(parts: dict[str, RawInteractions], coded: list[tuple[np.ndarray, np.ndarray]], n_items: int,
                    policy: str, notes: list[str]) -> list[np.ndarray]:
    """One bool mask (n_rows,) per part: the rows to keep under the duplicates policy (first occurrence wins)."""
    sizes = [len(u) for u, _ in coded]
    if policy == "keep":
        return [np.ones(n, dtype=bool) for n in sizes]
    key = np.concatenate([u * n_items + i for u, i in coded])
    uniq, first = np.unique(key, return_index=True)
    keep = np.zeros(len(key), dtype=bool)
    keep[first] = True
    n_dup = int((~keep).sum())
    if n_dup and policy == "error":
        row = int(np.flatnonzero(~keep)[0])
        orig = int(first[np.searchsorted(uniq, key[row])])
        part, local = _locate(parts, row)
        part0, local0 = _locate(parts, orig)
        line0 = int(part0.lines[local0])
        where = f"line {line0}" if part0 is part else f"{part0.file}:{line0}"
        raise DataError(f"duplicate (user, item) pair ({part.users[local]!r}, {part.items[local]!r}), first seen on "
                        f"{where}; set duplicates: drop to keep the first row, or keep to keep all",
                        file=part.file, line=int(part.lines[local]), field=part.item_field)
    if n_dup:
        notes.append(f"dropped {n_dup} duplicate (user, item) row(s), kept the first of each")
    return list(np.split(keep, np.cumsum(sizes)[:-1]))


def _locate(parts: dict[str, RawInteractions], row: int) -> tuple[RawInteractions, int]:
    """(part, row within the part) of a row index into the concatenated parts."""
    for part in parts.values():
        if row < len(part.lines):
            return part, row
        row -= len(part.lines)
    raise IndexError(row)


def _threshold_mask(parts: dict[str, RawInteractions], keep: list[np.ndarray], threshold: float,
                    notes: list[str]) -> list[np.ndarray]:
    out, dropped = [], 0
    for part, mask in zip(parts.values(), keep):
        if part.ratings is None:
            raise DataError(f"rating_threshold is {threshold} but the file has no rating column", file=part.file,
                            line=1, field=part.rating_field)
        with np.errstate(invalid="ignore"):
            passed = np.asarray(part.ratings, dtype=np.float64) >= threshold
        dropped += int((mask & ~passed).sum())
        out.append(mask & passed)
    notes.append(f"rating_threshold {threshold}: dropped {dropped} row(s) rated below it")
    return out


def _rows_of(raw: RawItems | RawUsers, lookup: dict[str, int], notes: list[str],
             kind: str) -> tuple[np.ndarray, list[int]]:
    """(the file's rows' indices in the id map (n,), per id-map entry its row in the file or -1); a second row for
    one id is a :class:`DataError` naming both lines."""
    idx = encode(raw.ids, lookup)
    if len(set(idx.tolist())) != len(idx):
        seen: dict[int, int] = {}
        for k, i in enumerate(idx.tolist()):
            if i in seen:
                raise DataError(f"{kind} {raw.ids[k]!r} has a second row (the first is on line "
                                f"{int(raw.lines[seen[i]])})", file=raw.file, line=int(raw.lines[k]),
                                field=raw.id_field)
            seen[i] = k
    row_of = np.full(len(lookup), -1, dtype=np.int64)
    row_of[idx] = np.arange(len(idx))
    rows = row_of.tolist()
    missing = rows.count(-1)
    if missing:
        notes.append(f"{missing} {kind}(s) have no row in {raw.file} (empty side information)")
    return idx, rows


def _numeric_columns(raw: RawItems | RawUsers, idx: np.ndarray, n: int) -> dict[str, np.ndarray]:
    out = {}
    for k, v in raw.numeric.items():
        col = np.full(n, np.nan, dtype=np.float64)
        col[idx] = v
        out[k] = col
    return out


def _side_info(items: RawItems, lookup: dict[str, int], notes: list[str]) -> ItemSideInfo:
    """Item fields aligned to the item map; items without a row get '' / () / NaN."""
    idx, rows = _rows_of(items, lookup, notes, "item")
    text = {k: [v[r] if r >= 0 else "" for r in rows] for k, v in items.text.items()}
    cat = {k: [v[r] if r >= 0 else () for r in rows] for k, v in items.categorical.items()}
    num = _numeric_columns(items, idx, len(lookup))
    origin = {name: items.origin.get(name, "declared") for name in [*text, *cat, *num]}
    return ItemSideInfo(len(lookup), text, cat, num, origin=origin)


def _user_side_info(users: RawUsers, lookup: dict[str, int], notes: list[str]) -> UserSideInfo | None:
    """User fields aligned to the user map (users without a row: () / NaN); None when the file has none."""
    if not users.categorical and not users.numeric:
        return None
    idx, rows = _rows_of(users, lookup, notes, "user")
    cat = {k: [v[r] if r >= 0 else () for r in rows] for k, v in users.categorical.items()}
    num = _numeric_columns(users, idx, len(lookup))
    return UserSideInfo(len(lookup), cat, num, origin={n: users.origin.get(n, "declared") for n in [*cat, *num]})


def _merge_side_info(infos: list[ItemSideInfo], files: list[RawItems]) -> ItemSideInfo | None:
    """One side-information object from several item files (all aligned to the item map); a field that two files
    hold is a :class:`DataError` naming the second file."""
    if not infos:
        return None
    if len(infos) == 1:
        return infos[0]
    text, cat, num, origin = {}, {}, {}, {}
    for info, raw in zip(infos, files):
        for name in info.fields:
            if name in origin:
                raise DataError("a field of this name is already read from another item file; rename one",
                                file=raw.file, line=1, field=name)
        text.update(info.text)
        cat.update(info.categorical)
        num.update(info.numeric)
        origin.update(info.origin)
    return ItemSideInfo(infos[0].n_items, text, cat, num, origin=origin)


def _knowledge_graph(triples: RawTriples | None, links: RawLinks | None, item_lookup: dict[str, int],
                     notes: list[str], unknown_links: str = "skip") -> KnowledgeGraph:
    """Entities in first-seen order over (head, tail) of each triple, then linked entities seen in no triple."""
    entities: dict[str, int] = {}
    relations: dict[str, int] = {}
    if triples is not None and len(triples.heads):
        for values, name in zip((triples.heads, triples.relations, triples.tails), triples.fields):
            check_ids(values, triples.lines, triples.file, name)
        both: list[str] = [""] * (2 * len(triples.heads))
        both[0::2], both[1::2] = triples.heads, triples.tails
        ends = encode(both, entities)
        rel = encode(triples.relations, relations)
        idx = np.stack([ends[0::2], rel, ends[1::2]], axis=1)
    else:
        idx = np.zeros((0, 3), dtype=np.int64)
    item_entity = np.full(len(item_lookup), -1, dtype=np.int64)
    if links is not None and len(links.items):
        check_ids(links.items, links.lines, links.file, links.item_field)
        check_ids(links.entities, links.lines, links.file, links.entity_field)
        item_idx = np.fromiter((item_lookup.get(r, -1) for r in links.items), dtype=np.int64, count=len(links.items))
        unknown = np.flatnonzero(item_idx < 0)
        if len(unknown) and unknown_links == "error":
            k = int(unknown[0])
            raise DataError(f"links item {links.items[k]!r}, which is not in the catalogue ({len(unknown)} such "
                            "link(s); set dataset.unknown_links: skip to drop them)", file=links.file,
                            line=int(links.lines[k]), field=links.item_field)
        if len(unknown):
            k = int(unknown[0])
            notes.append(f"{links.file}: skipped {len(unknown)} link(s) to items not in the catalogue "
                         f"(first: {links.items[k]!r} on line {int(links.lines[k])})")
        known = np.flatnonzero(item_idx >= 0)
        ent_idx = encode([links.entities[k] for k in known.tolist()], entities)
        item_idx = item_idx[known]
        _, first = np.unique(item_idx, return_index=True)
        if len(first) < len(item_idx):
            notes.append(f"{links.file}: {len(item_idx) - len(first)} item(s) linked more than once; "
                         "the first link of each is used")
        item_entity[item_idx[first]] = ent_idx[first]
    return KnowledgeGraph(torch.from_numpy(idx.astype(np.int64)), IdMap.from_list("entity", list(entities)),
                          IdMap.from_list("relation", list(relations)), torch.from_numpy(item_entity))
