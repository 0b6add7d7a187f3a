"""Durable store of what is added while serving, in SQLite (WAL mode), replayed at startup: interactions, and
knowledge-graph edits (table ``triples``: one row per added or removed triple, in order) and items added while
serving (table ``items``: fields, entities and content vector).

Every write is committed with ``synchronous=FULL`` before it returns, so an acknowledged write survives a crash of
the process (and, with FULL, of the machine)."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_SCHEMA = """CREATE TABLE IF NOT EXISTS interactions (
    seq INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    timestamp REAL,
    weight REAL NOT NULL
)"""
_TRIPLES_SCHEMA = """CREATE TABLE IF NOT EXISTS triples (
    seq INTEGER PRIMARY KEY,
    op TEXT NOT NULL CHECK (op IN ('add', 'remove')),
    head TEXT NOT NULL,
    relation TEXT NOT NULL,
    tail TEXT NOT NULL
)"""


_ITEMS_SCHEMA = """CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY,
    item_id TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    vector BLOB,
    model_version TEXT
)"""


@dataclass(frozen=True)
class StoredItem:
    """An item added while serving: ``payload`` the request's ``{"fields": ..., "entities": ...}``; ``vector`` its
    float32 content vector under the model ``model_version`` (recomputed from the payload under another model)."""

    item_id: str
    payload: dict
    vector: np.ndarray | None = None
    model_version: str | None = None


MIN_WEIGHT, MAX_WEIGHT = 1e-6, 1e3  # the accepted range of an interaction's weight, ends included


@dataclass(frozen=True)
class Event:
    """One interaction as stored: raw ids, an optional timestamp (seconds) and a weight in
    [:data:`MIN_WEIGHT`, :data:`MAX_WEIGHT`]."""

    user_id: str
    item_id: str
    timestamp: float | None = None
    weight: float = 1.0


def weight_problem(weight: object) -> str | None:
    """Why ``weight`` cannot be an interaction's weight, or None. Bounded so that no number of rows can overflow a
    user's summed weights to inf (then NaN scores and an empty list) or underflow them to zero."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        return f"weight must be a number, got {weight!r}"
    try:
        finite = math.isfinite(weight)
    except OverflowError:  # an int beyond any float
        finite = False
    if not finite:
        return f"weight must be a finite number, got {str(weight)[:40]}"
    if not MIN_WEIGHT <= weight <= MAX_WEIGHT:
        return f"weight must be between {MIN_WEIGHT:g} and {MAX_WEIGHT:g}, got {str(weight)[:40]}"
    return None


class EventStore:
    """``EventStore(path)``: opens (creating if needed) the SQLite database at ``path``. Thread-safe: one
    connection guarded by a lock (the service calls it from a thread pool)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten with zeros, not left in free space
        self._conn.execute(_SCHEMA)
        self._conn.execute("CREATE INDEX IF NOT EXISTS interactions_user ON interactions(user_id)")
        self._conn.execute(_ITEMS_SCHEMA)
        self._conn.execute(_TRIPLES_SCHEMA)

    def add(self, events: list[Event]) -> None:
        """Appends these events in one transaction; returns once they are durable."""
        self._insert("INSERT INTO interactions (user_id, item_id, timestamp, weight) VALUES (?, ?, ?, ?)",
                     [(e.user_id, e.item_id, e.timestamp, e.weight) for e in events])

    def events(self, user_id: str | None = None) -> list[Event]:
        """All stored events (of one user when given), in the order they were added."""
        query = "SELECT user_id, item_id, timestamp, weight FROM interactions"
        args: tuple = ()
        if user_id is not None:
            query, args = query + " WHERE user_id = ?", (user_id,)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY seq", args).fetchall()
        return [Event(*row) for row in rows]

    def delete_user(self, user_id: str) -> int:
        """Removes every event of this user; returns how many were removed. On return the user's id and events are
        on no page of the database or its write-ahead log: the deleted cells are zeroed (``secure_delete``) and the
        log, which still holds the pages as they were, is checkpointed into the database and truncated."""
        with self._lock:
            cur = self._conn.execute("DELETE FROM interactions WHERE user_id = ?", (user_id,))
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return cur.rowcount

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM interactions").fetchone()[0])

    def add_triples(self, op: str, triples: list[tuple[str, str, str]]) -> None:
        """Appends one knowledge-graph edit (``op``: "add" or "remove"; raw (head, relation, tail) ids) in one
        transaction; returns once it is durable."""
        if op not in ("add", "remove"):
            raise ValueError(f"op must be 'add' or 'remove', not {op!r}")
        self._insert("INSERT INTO triples (op, head, relation, tail) VALUES (?, ?, ?, ?)",
                     [(op, h, r, t) for h, r, t in triples])

    def triple_ops(self) -> list[tuple[str, str, str, str]]:
        """Every stored knowledge-graph edit as ``(op, head, relation, tail)``, in the order it was made."""
        with self._lock:
            return [tuple(row) for row in
                    self._conn.execute("SELECT op, head, relation, tail FROM triples ORDER BY seq").fetchall()]

    def add_items(self, items: list[StoredItem]) -> None:
        """Appends these items in one transaction; returns once they are durable. An item id already stored
        raises ``sqlite3.IntegrityError`` and nothing of the call is stored."""
        rows = [(i.item_id, json.dumps(i.payload, sort_keys=True),
                 None if i.vector is None else np.asarray(i.vector, dtype="<f4").tobytes(), i.model_version)
                for i in items]
        self._insert("INSERT INTO items (item_id, payload, vector, model_version) VALUES (?, ?, ?, ?)", rows)

    def items(self) -> list[StoredItem]:
        """Every stored item, in the order added."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT item_id, payload, vector, model_version FROM items ORDER BY seq").fetchall()
        return [StoredItem(item_id, json.loads(payload),
                           None if vector is None else np.frombuffer(vector, dtype="<f4").astype(np.float32),
                           version) for item_id, payload, vector, version in rows]

    def _insert(self, sql: str, rows: list[tuple]) -> None:
        """``sql`` for every row in one transaction (all or nothing); returns once it is durable."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(sql, rows)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
