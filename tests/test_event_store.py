"""The SQLite event store: durable appends, replay after reopening, per-user deletion, WAL mode."""

import sqlite3

from fusionrec.serving.event_store import Event, EventStore


def test_events_survive_reopening_in_order(tmp_path):
    db = tmp_path / "events.sqlite"
    store = EventStore(db)
    store.add([Event("u1", "i1", 10.0, 1.0), Event("u2", "i2", None, 2.5)])
    store.add([Event("u1", "i3")])
    store.close()
    again = EventStore(db)
    assert again.events() == [Event("u1", "i1", 10.0, 1.0), Event("u2", "i2", None, 2.5), Event("u1", "i3", None, 1.0)]
    assert again.events("u1") == [Event("u1", "i1", 10.0, 1.0), Event("u1", "i3", None, 1.0)]
    assert again.count() == 3


def test_delete_user_removes_only_that_user(tmp_path):
    store = EventStore(tmp_path / "e.sqlite")
    store.add([Event("u1", "i1"), Event("u2", "i1"), Event("u1", "i2")])
    assert store.delete_user("u1") == 2
    assert store.delete_user("u1") == 0
    assert store.events() == [Event("u2", "i1")]


def test_a_deleted_user_is_on_no_page_of_the_database_or_its_log_while_the_store_is_open(tmp_path):
    db = tmp_path / "e.sqlite"
    store = EventStore(db)
    secret = "user-to-forget-7f3a"
    store.add([Event(secret, f"i{n}") for n in range(50)])
    store.add([Event("u2", "i1")])
    files = [db, db.with_name(db.name + "-wal")]
    assert any(secret.encode() in f.read_bytes() for f in files if f.exists())  # the check can see it
    assert store.delete_user(secret) == 50
    for f in files:  # the store is still open: nothing waits for a checkpoint at close
        if f.exists():
            assert secret.encode() not in f.read_bytes(), f.name
    assert store.events() == [Event("u2", "i1")]
    store.add([Event("u3", "i2")])  # the store keeps working after the checkpoint
    assert store.count() == 2


def test_database_is_in_wal_mode(tmp_path):
    db = tmp_path / "e.sqlite"
    EventStore(db).add([Event("u", "i")])
    mode = sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_failed_batch_stores_nothing(tmp_path):
    store = EventStore(tmp_path / "e.sqlite")
    try:
        store.add([Event("u", "i"), Event(None, "i")])  # NOT NULL user_id fails the second row
    except sqlite3.IntegrityError:
        pass
    else:  # pragma: no cover
        raise AssertionError("expected an IntegrityError")
    assert store.events() == []
