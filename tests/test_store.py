"""SQLiteStore behaviour that the protocol tests cannot reach."""

from __future__ import annotations

from samizdat.store.sqlite import ACCEPTED, FAILED, SQLiteStore

from .helpers import Keys


def test_one_failing_event_fails_alone(tmp_path):
    store = SQLiteStore(tmp_path / "e.sqlite3")
    # make SQLite itself refuse one particular event, as a full disk or a bug would
    store._w.execute("CREATE TRIGGER boom BEFORE INSERT ON events "
                     "WHEN NEW.json LIKE '%BOOM%' BEGIN SELECT RAISE(ABORT, 'boom'); END")
    k = Keys()
    good1, bad, good2 = k.sign(1, "one"), k.sign(1, "BOOM"), k.sign(1, "two")
    assert store.save_many([good1, bad, good2]) == [ACCEPTED, FAILED, ACCEPTED]
    assert store.event_count == 2
    assert store._w.execute("SELECT count(*) FROM events").fetchone()[0] == 2
    assert store._w.execute("SELECT count(*) FROM tags").fetchone()[0] == 0
    store.close()


def test_event_count_follows_replacements_and_deletions(tmp_path):
    store = SQLiteStore(tmp_path / "e.sqlite3")
    k = Keys()
    note = k.sign(1, "note", created_at=1000)
    old_meta = k.sign(0, "{}", created_at=1000)
    new_meta = k.sign(0, '{"name":"x"}', created_at=1001)
    deletion = k.sign(5, "", [["e", note.id]], created_at=1002)
    store.save_many([note, old_meta, new_meta, deletion, note], now=2000)
    real = store._w.execute("SELECT count(*) FROM events").fetchone()[0]
    assert real == 2  # new_meta and the deletion request
    assert store.event_count == real
    store.close()
    assert SQLiteStore(tmp_path / "e.sqlite3").event_count == real


def _indexes(store: SQLiteStore) -> set[str]:
    return {r[0] for r in store._w.execute(
        "SELECT name FROM sqlite_master WHERE type='index' AND name NOT LIKE 'sqlite_%'")}


def _plan(store: SQLiteStore, sql: str, *args: object) -> str:
    return " ".join(r[3] for r in store._w.execute("EXPLAIN QUERY PLAN " + sql, args))


def test_bulk_import_rebuilds_its_indexes_and_keeps_the_rules(tmp_path):
    """The bulk path drops and rebuilds secondary indexes inside the transaction: the
    result must be the same store, indexes and all, as the row-by-row path gives."""
    a, b = Keys(), Keys()
    events = [a.sign(1, f"note {i} #almaty", [["t", "almaty"]], created_at=1000 + i)
              for i in range(300)]
    events += [a.sign(0, '{"name":"old"}', created_at=900), a.sign(0, '{"name":"new"}',
                                                                   created_at=950)]
    events.append(b.sign(5, "", [["e", events[0].id]], created_at=2000))  # not b's: no effect
    events.append(a.sign(5, "", [["e", events[1].id]], created_at=2000))
    results = {}
    for bulk in (False, True):
        store = SQLiteStore(tmp_path / f"{bulk}.sqlite3")
        before = _indexes(store)
        counts = store.import_events(iter(events), now=3000, bulk=bulk)
        assert _indexes(store) == before
        assert store._w.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = store._w.execute("SELECT id FROM events ORDER BY id").fetchall()
        tags = store._w.execute("SELECT name, value, created_at FROM tags ORDER BY 1, 2, 3"
                                ).fetchall()
        assert "tags_lookup" in _plan(store, "SELECT eid FROM tags WHERE name='t' AND value=?",
                                      "almaty")
        results[bulk] = (dict(counts), rows, tags)
        store.close()
    assert results[False] == results[True]
    assert len(results[True][1]) == 300 - 1 + 1 + 2  # one note deleted, newest kind 0, 2 deletions


def test_failed_bulk_import_leaves_store_and_indexes_as_before(tmp_path):
    store = SQLiteStore(tmp_path / "e.sqlite3")
    k = Keys()
    kept = k.sign(1, "already here", [["t", "x"]])
    store.save_many([kept])
    before = _indexes(store)

    def stream():
        for i in range(5000):
            yield k.sign(1, f"new {i}", [["t", "x"]], created_at=1000 + i)
        raise RuntimeError("the file changed")

    try:
        store.import_events(stream(), bulk=True)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the import should have failed")
    assert _indexes(store) == before
    assert store._w.execute("SELECT count(*) FROM events").fetchone()[0] == 1
    assert store.event_count == 1
    assert store._w.execute("PRAGMA cache_size").fetchone()[0] == -32000
    store.close()


def test_duplicates_in_and_across_batches_are_found_without_a_lookup(tmp_path):
    """The bulk path inserts with OR IGNORE and sorts out duplicates afterwards: each must
    still get DUPLICATE, and leave no second tag row, search row or count."""
    from samizdat.store.sqlite import DELETED, DUPLICATE

    store = SQLiteStore(tmp_path / "e.sqlite3")
    k = Keys()
    a, b, c = (k.sign(1, f"word{i} shared", [["t", "x"]], created_at=1000 + i) for i in range(3))
    assert store.save_many([a, a, b], now=2000) == [ACCEPTED, DUPLICATE, ACCEPTED]
    assert store.save_many([b, c, a, c], now=2000) == [DUPLICATE, ACCEPTED, DUPLICATE, DUPLICATE]
    w = store._w
    assert store.event_count == 3 == w.execute("SELECT count(*) FROM events").fetchone()[0]
    assert w.execute("SELECT count(*) FROM tags").fetchone()[0] == 3
    assert w.execute("SELECT count(*) FROM events_fts WHERE events_fts MATCH 'shared'"
                     ).fetchone()[0] == 3
    # a deletion request stored first, then its target arrives in a batch: DELETED
    d = k.sign(1, "to be deleted", created_at=1100)
    assert store.save_many([k.sign(5, "", [["e", d.id]], created_at=1200)], now=2000) == [ACCEPTED]
    assert store.save_many([d, k.sign(1, "kept", created_at=1101)], now=2000) == [DELETED, ACCEPTED]
    store.close()
    reopened = SQLiteStore(tmp_path / "e.sqlite3")  # the deletion is remembered after a restart
    assert reopened.save_many([d], now=2000) == [DELETED]
    reopened.close()
