"""Folding interactions recorded while serving into the next training run.

The service keeps the interactions it is sent in one SQLite table, ``interactions(seq, user_id, item_id, timestamp,
weight)`` (``fusionrec.serving.event_store``). This module reads that table with plain ``sqlite3`` (data never
imports serving) and appends its rows to a :class:`Dataset` before the split, so ``fusionrec train
--resume-from-store DB`` retrains with what was added.

Rules, chosen to match how the dataset itself was read:

* rows whose item is not in the dataset's item catalogue are **skipped**, counted and named in a note (a model
  cannot learn an item the catalogue does not describe; add it to the item file first);
* user ids the dataset does not know are added to the user map after the existing users (indices never change);
* ``duplicates`` is the dataset's policy (``dataset.duplicates``): ``keep`` appends every row, ``drop`` skips a row
  whose (user, item) pair is already in the dataset or earlier in the table, ``error`` raises naming the database,
  the row (``seq``) and the field;
* a pre-split dataset gets the rows in its ``train`` part;
* a missing timestamp is NaN; with ``need_timestamps`` (a temporal split) it is an error naming the row.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from fusionrec.data.build import RawInteractions, check_ids
from fusionrec.data.dataset import Dataset
from fusionrec.data.interactions import Interactions
from fusionrec.errors import DataError

TABLE = "interactions"


@dataclass(frozen=True)
class FoldReport:
    """What was folded in: ``db`` path, ``rows`` read, ``folded`` appended, ``skipped_unknown_items``,
    ``dropped_duplicates``, ``new_users`` added to the user map, and ``sha256`` of the rows read (user, item,
    timestamp, weight in ``seq`` order), so a run records exactly which events it trained on."""

    db: str
    rows: int
    folded: int
    skipped_unknown_items: int
    dropped_duplicates: int
    new_users: int
    sha256: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def read_event_table(path: str | Path) -> RawInteractions:
    """The rows of the event store at ``path`` as raw interactions; ``lines`` holds each row's ``seq``.
    Opened read-only, so a running service may keep writing."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such event store (SQLite file written by 'fusionrec serve --db')", file=str(path))
    try:
        conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        try:
            rows = conn.execute(f"SELECT seq, user_id, item_id, timestamp, weight FROM {TABLE} ORDER BY seq").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise DataError(f"cannot read the {TABLE!r} table: {exc}", file=str(path)) from None
    seq = np.array([r[0] for r in rows], dtype=np.int64)
    users = [str(r[1]) if r[1] is not None else "" for r in rows]
    items = [str(r[2]) if r[2] is not None else "" for r in rows]
    ts = np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=np.float64)
    weights = np.array([r[4] for r in rows], dtype=np.float64)
    file = str(path)
    check_ids(users, seq, file, "user_id")
    check_ids(items, seq, file, "item_id")
    bad = np.flatnonzero(~(weights > 0))
    if len(bad):
        raise DataError(f"weight must be > 0, got {weights[bad[0]]}", file=file, line=int(seq[bad[0]]), field="weight")
    return RawInteractions(file, users, items, seq, timestamps=ts, weights=weights)


def events_sha256(raw: RawInteractions) -> str:
    """sha256 over the rows in order: one JSON line ``[user, item, timestamp or null, weight]`` per row."""
    h = hashlib.sha256()
    ts = raw.timestamps if raw.timestamps is not None else np.full(len(raw.users), np.nan)
    w = raw.weights if raw.weights is not None else np.ones(len(raw.users))
    for u, i, t, x in zip(raw.users, raw.items, ts.tolist(), w.tolist()):
        h.update(json.dumps([u, i, None if t != t else t, x]).encode() + b"\n")
    return h.hexdigest()


def fold_events(dataset: Dataset, raw: RawInteractions, duplicates: str = "keep",
                need_timestamps: bool = False) -> tuple[Dataset, FoldReport]:
    """``dataset`` with the rows of ``raw`` appended (rules in the module docstring), and what was done."""
    if duplicates not in ("keep", "drop", "error"):
        raise ValueError(f"duplicates must be keep, drop or error, not {duplicates!r}")
    notes = list(dataset.notes)
    item_idx = dataset.items.indices(raw.items, missing="minus_one")
    unknown = np.flatnonzero(item_idx < 0)
    if len(unknown):
        k = int(unknown[0])
        notes.append(f"{raw.file}: skipped {len(unknown)} event(s) whose item is not in the catalogue "
                     f"(first: {raw.items[k]!r}, seq {int(raw.lines[k])})")
    known = np.flatnonzero(item_idx >= 0)
    ts = raw.timestamps[known] if raw.timestamps is not None else np.full(len(known), np.nan)
    if need_timestamps and len(known) and not np.isfinite(ts).all():
        k = int(known[np.flatnonzero(~np.isfinite(ts))[0]])
        raise DataError("the split orders rows by time, but this event has no timestamp", file=raw.file,
                        line=int(raw.lines[k]), field="timestamp")
    users = dataset.users.extended(raw.users[k] for k in known.tolist())
    n_users, n_items = len(users), dataset.n_items
    u = users.indices([raw.users[k] for k in known.tolist()])
    i = item_idx[known]
    w = raw.weights[known] if raw.weights is not None else np.ones(len(known))

    keep = np.ones(len(known), dtype=bool)
    if duplicates != "keep" and len(known):
        old = dataset.interactions
        key_old = old.users * n_items + old.items
        key_new = u * n_items + i
        _, first = np.unique(key_new, return_index=True)
        keep[:] = False
        keep[first] = True  # first row of each pair within the events ...
        keep &= ~np.isin(key_new, key_old)  # ... unless the dataset already has the pair
        if duplicates == "error" and not keep.all():
            k = int(known[np.flatnonzero(~keep)[0]])
            raise DataError(f"duplicate (user, item) pair ({raw.users[k]!r}, {raw.items[k]!r}) is already in the "
                            "dataset or earlier in the event store; set dataset.duplicates: drop to skip such events",
                            file=raw.file, line=int(raw.lines[k]), field="item_id")
    n_dup = int((~keep).sum())
    if n_dup:
        notes.append(f"{raw.file}: dropped {n_dup} event(s) repeating a known (user, item) pair")
    no_times = dataset.interactions.timestamps is None and not np.isfinite(ts).any()
    added = Interactions(u[keep], i[keep], n_users, n_items, None, None if no_times else ts[keep].astype(np.float64),
                         w[keep].astype(np.float32))

    def grow(part: Interactions) -> Interactions:
        return part.resized(n_users, n_items)

    if dataset.presplit:
        presplit = {name: grow(p) for name, p in dataset.presplit.items()}
        presplit["train"] = Interactions.concat([presplit["train"], added]) if "train" in presplit else added
        inter = Interactions.concat(list(presplit.values()))
    else:
        presplit = None
        inter = Interactions.concat([grow(dataset.interactions), added])
    report = FoldReport(db=raw.file, rows=len(raw.users), folded=int(keep.sum()), skipped_unknown_items=len(unknown),
                        dropped_duplicates=n_dup, new_users=n_users - dataset.n_users, sha256=events_sha256(raw))
    social = None if dataset.social is None else replace(dataset.social, n_users=n_users)  # new users: no friends
    user_info = None if dataset.user_info is None else dataset.user_info.resized(n_users)  # ... and no fields
    return replace(dataset, users=users, interactions=inter, presplit=presplit, notes=notes, social=social,
                   user_info=user_info), report
