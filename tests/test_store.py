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
