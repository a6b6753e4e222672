"""Filters: the SQL of the store and the in-memory matcher must give the same answers.

Live subscriptions use :meth:`Filter.matches`; stored events come from SQL built by
``SQLiteStore._where``. A client must not see a different set of events depending on
whether they arrived before or after its REQ, so both are checked against each other
on random events and filters, in a real SQLite file.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from samizdat.nostr.event import Event
from samizdat.nostr.filters import Filter, InvalidFilter, parse_filter
from samizdat.nostr.kinds import Storage, storage_of
from samizdat.store.sqlite import SQLiteStore

from .helpers import Keys

KEYS = [Keys(bytes([i + 1]) * 32) for i in range(3)]
UNKNOWN_PUBKEY = "ab" * 32
UNKNOWN_ID = "cd" * 32
# regular, replaceable (0, 10002) and addressable (30023) kinds; no deletions (kind 5)
KINDS = [1, 7, 1984, 0, 10002, 30023]
TAG_LETTERS = ["e", "t", "d", "T"]
TAG_VALUES = ["a", "b", "", "café"]
TIMES = range(100, 106)
WORDS = ["apple", "Apple", "APPLE", "banana", "news", "free", "radio", "42", "x1",
         "café", "CAFÉ", "cafe", "naïve", "naive", "Zürich", "zurich", "smörgåsbord",
         "Ñandú", "garçon", "Dvořák"]
SEPARATORS = [" ", ", ", ". ", "-", "\n", "!", "'", " — "]

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def order(events: list[Event]) -> list[str]:
    """Ids newest first, ties by lowest id (the order the store promises)."""
    return [e.id for e in sorted(events, key=lambda e: (-e.created_at, e.id))]


def survivors(events: list[Event]) -> list[Event]:
    """What a store should hold after saving ``events`` in this order, per NIP-01.

    Which events survive does not depend on the order; but BIP-340 signing is randomised,
    so one id may come with several signatures, and the first one saved is kept.
    """
    by_id: dict[str, Event] = {}
    for e in events:
        by_id.setdefault(e.id, e)
    slots: dict[tuple, Event] = {}
    kept: list[Event] = []
    for e in by_id.values():
        storage = storage_of(e.kind)
        if storage is Storage.REGULAR:
            kept.append(e)
            continue
        assert storage in (Storage.REPLACEABLE, Storage.ADDRESSABLE)
        slot = (e.pubkey, e.kind, e.d_tag if storage is Storage.ADDRESSABLE else None)
        cur = slots.get(slot)
        # newest wins; on equal created_at the lowest id wins
        if cur is None or (e.created_at, _neg(e.id)) > (cur.created_at, _neg(cur.id)):
            slots[slot] = e
    return kept + list(slots.values())


def _neg(hex_id: str) -> tuple[int, ...]:
    return tuple(-b for b in bytes.fromhex(hex_id))


# --- strategies -----------------------------------------------------------------------------------

ALL_TAGS = (
    [[n, v] for n in TAG_LETTERS for v in TAG_VALUES]
    + [[n] for n in TAG_LETTERS]  # a tag with a name only
    + [["e", "a", "b"], ["t", "b", "a"], ["d", "", "c"]]  # extra values are not indexed
    + [["tt", "a"], ["", "a"]]  # only one-letter names are indexed and can be queried
)
tags = st.lists(st.sampled_from(ALL_TAGS), max_size=4)
contents = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)),
                    max_size=5).map(lambda ws: "".join(w + s for w, s in ws))
event_specs = st.tuples(st.integers(0, len(KEYS) - 1), st.sampled_from(KINDS), tags,
                        st.sampled_from(TIMES), contents)


def sign(spec) -> Event:
    key, kind, tag_list, created_at, content = spec
    return KEYS[key].sign(kind, content, tag_list, created_at)


def rarely(common, rare):
    """``rare`` about one time in ten (hypothesis favours the ends of a range, not 4)."""
    return st.integers(0, 9).flatmap(lambda n: rare if n == 4 else common)


def sub(values):
    """A few of ``values``; now and then the empty list (which matches nothing)."""
    return rarely(st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True),
                  st.just([]))


def filter_dicts(ids: list[str], used_words: list[str]):
    """Filter objects as a client would send them, with one to three conditions mostly."""
    search = st.lists(st.sampled_from([*used_words, *WORDS, "language:en", "!", "zzz"]),
                      min_size=1, max_size=2).map(" ".join)
    fields = {
        "ids": sub([*ids, UNKNOWN_ID]),
        "authors": sub([k.pubkey for k in KEYS] + [UNKNOWN_PUBKEY]),
        "kinds": sub([*KINDS, 4]),
        "#e": sub(TAG_VALUES),
        "#t": sub(TAG_VALUES),
        "#d": sub(TAG_VALUES),
        "#T": sub(TAG_VALUES),
        "#z": sub(TAG_VALUES),  # no event has this tag
        "since": st.sampled_from([99, *TIMES, 106]),
        "until": st.sampled_from([99, *TIMES, 106]),
        "search": rarely(search, st.just("")),
    }
    return st.lists(st.sampled_from(list(fields)), max_size=3, unique=True).flatmap(
        lambda keys: st.fixed_dictionaries({k: fields[k] for k in keys}))


class TempStore:
    """A real SQLite store in a temporary directory (hypothesis runs many per test)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="samizdat-filters-"))
        self.store = SQLiteStore(self.dir / "events.sqlite3", synchronous="NORMAL")

    def __enter__(self) -> SQLiteStore:
        return self.store

    def __exit__(self, *exc: object) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def save(store: SQLiteStore, events: list[Event]) -> list[Event]:
    results = store.save_many(events)
    assert all(r.message != "error: could not store the event" for r in results), results
    kept = survivors(events)
    assert store.event_count == len(kept)
    return kept


def ids_of(rows: list[str]) -> list[str]:
    return [orjson.loads(js)["id"] for js in rows]


# --- the property -------------------------------------------------------------------------------

@SETTINGS
@given(st.lists(event_specs, min_size=8, max_size=30), st.data())
def test_sql_and_memory_agree(specs, data):
    events = [sign(s) for s in specs]
    with TempStore() as store:
        stored = save(store, events)
        by_id = {e.id: e for e in stored}
        all_ids = [e.id for e in events]
        used_words = sorted({w for s in specs for w in WORDS if w in s[4]})
        dicts = data.draw(st.lists(filter_dicts(all_ids, used_words), min_size=1, max_size=5),
                          label="filters")
        filters = [parse_filter(d) for d in dicts]

        for d, f in zip(dicts, filters, strict=True):
            expected = order([e for e in stored if f.matches(e)])
            rows = store.query([f])
            assert ids_of(rows) == expected, d
            # the store hands back each event exactly as it was published
            for js in rows:
                ev = orjson.loads(js)
                assert ev == by_id[ev["id"]].to_dict()
            assert store.count([f]) == len(expected), d
            for n in sorted({0, 1, 2, len(expected) - 1, len(expected), len(expected) + 3}):
                if n < 0:
                    continue
                limited = parse_filter({**d, "limit": n})
                assert ids_of(store.query([limited])) == expected[:n], (d, n)
                # limit does not change what counts
                assert store.count([limited]) == len(expected), (d, n)

        union = [e for e in stored if any(f.matches(e) for f in filters)]
        assert ids_of(store.query(filters)) == order(union), dicts
        assert store.count(filters) == len(union), dicts
        if len(filters) >= 2:
            pair = filters[:2]
            both = [e for e in stored if pair[0].matches(e) or pair[1].matches(e)]
            assert store.count(pair) == len(both), dicts[:2]
            assert ids_of(store.query(pair)) == order(both), dicts[:2]
        # several filters with limits: each limit applies to its own filter, then the union
        limits = data.draw(st.lists(st.integers(0, 4), min_size=len(dicts),
                                    max_size=len(dicts)), label="limits")
        limited = [parse_filter({**d, "limit": n}) for d, n in zip(dicts, limits, strict=True)]
        want: set[str] = set()
        for f, n in zip(filters, limits, strict=True):
            want.update(order([e for e in stored if f.matches(e)])[:n])
        assert ids_of(store.query(limited)) == order([by_id[i] for i in want]), (dicts, limits)


@SETTINGS
@given(st.lists(event_specs, min_size=1, max_size=25))
def test_replaceable_events_keep_only_the_newest(specs):
    """The model of replacement used above is itself checked on a fresh store."""
    events = [sign(s) for s in specs]
    with TempStore() as store:
        kept = save(store, events)
        assert ids_of(store.query([Filter()])) == order(kept)
        assert store.count([Filter()]) == len(kept)
        # saving everything again in reverse changes nothing
        again = store.save_many(list(reversed(events)))
        assert not any(r.stored for r in again)
        assert ids_of(store.query([Filter()])) == order(kept)


def test_empty_lists_match_nothing():
    ev = KEYS[0].sign(1, "apple", [["t", "a"]], 100)
    with TempStore() as store:
        save(store, [ev])
        assert store.query([parse_filter({})]) != []
        for d in ({"ids": []}, {"authors": []}, {"kinds": []}, {"#t": []}, {"search": ""},
                  {"search": "!!"}, {"since": 101, "until": 100}):
            f = parse_filter(d)
            assert not f.matches(ev), d
            assert store.query([f]) == [], d
            assert store.count([f]) == 0, d


# --- search beyond Latin script -------------------------------------------------------------
# Content and query words from languages a hub is likely to carry. Within each group, the
# words are spellings a reader may type for one another (case, accents, composed or not).

SEARCH_GROUPS = {
    "latin": ["café", "CAFÉ", "cafe"],
    "russian-short-i": ["новый", "НОВЫЙ", "новыи"],
    "russian-yo": ["ёлка", "Ёлка", "елка"],
    "ukrainian-yi": ["Україна", "україна"],
    "greek-tonos-sigma": ["λόγος", "ΛΌΓΟΣ", "λογος"],
    "greek-athens": ["Αθήνα", "αθηνα"],
    "persian-madda": ["آزادی", "ازادی"],
    "decomposed-accents": ["re\u0301sume\u0301", "résumé", "resume"],
}


@pytest.mark.parametrize("words", list(SEARCH_GROUPS.values()), ids=list(SEARCH_GROUPS))
def test_search_agrees_beyond_latin_script(words):
    key = KEYS[0]
    events = [key.sign(1, f"news: {w} today", [], 100 + i) for i, w in enumerate(words)]
    with TempStore() as store:
        save(store, events)
        problems = []
        for q in words:
            f = parse_filter({"search": q})
            memory = order([e for e in events if f.matches(e)])
            sql = ids_of(store.query([f]))
            if sql != memory:
                problems.append((q, f.search, [e.content for e in events if e.id in memory],
                                 [e.content for e in events if e.id in sql]))
        assert not problems, "search query, tokens, in-memory hits, SQL hits: " + repr(problems)
        # and at the very least, an event is found by searching for its own word
        for ev, w in zip(events, words, strict=True):
            f = parse_filter({"search": w})
            assert f.matches(ev), w
            assert ev.id in ids_of(store.query([f])), w


# --- parse_filter -----------------------------------------------------------------------------

HEX = "0123456789abcdef" * 4

BAD_FILTERS = {
    "not-object-list": [],
    "not-object-str": "kinds",
    "not-object-null": None,
    "unknown-field": {"foo": 1},
    "unknown-field-with-good-ones": {"kinds": [1], "authorz": [HEX]},
    "tag-two-letters": {"#ab": ["x"]},
    "tag-digit": {"#1": ["x"]},
    "tag-non-ascii": {"#é": ["x"]},
    "tag-bare-hash": {"#": ["x"]},
    "ids-not-list": {"ids": HEX},
    "authors-not-list": {"authors": HEX},
    "kinds-not-list": {"kinds": 1},
    "tag-not-list": {"#e": "x"},
    "ids-null": {"ids": None},
    "ids-uppercase": {"ids": [HEX.upper()]},
    "ids-63": {"ids": [HEX[:63]]},
    "ids-65": {"ids": [HEX + "0"]},
    "ids-prefix": {"ids": ["abcd"]},
    "ids-not-hex": {"ids": ["g" + HEX[1:]]},
    "ids-number": {"ids": [1]},
    "authors-uppercase": {"authors": [HEX.upper()]},
    "authors-short": {"authors": [HEX[:10]]},
    "tag-value-number": {"#e": [1]},
    "tag-value-null": {"#e": [None]},
    "kinds-string": {"kinds": ["1"]},
    "kinds-float": {"kinds": [1.0]},
    "kinds-bool": {"kinds": [True]},
    "kinds-negative": {"kinds": [-1]},
    "kinds-too-big": {"kinds": [65536]},
    "limit-negative": {"limit": -1},
    "limit-float": {"limit": 1.5},
    "limit-string": {"limit": "10"},
    "limit-bool": {"limit": True},
    "limit-null": {"limit": None},
    "since-negative": {"since": -1},
    "since-float": {"since": 1.0},
    "since-string": {"since": "1"},
    "until-bool": {"until": False},
    "until-too-big": {"until": 2**53 + 1},
    "search-number": {"search": 1},
    "search-list": {"search": ["apple"]},
    "search-too-long": {"search": "a" * 1001},
    "too-many-ids": {"ids": [f"{i:064x}" for i in range(4)]},
    "too-many-authors": {"authors": [f"{i:064x}" for i in range(4)]},
    "too-many-kinds": {"kinds": [1, 2, 3, 4]},
    "too-many-tag-values": {"#t": ["a", "b", "c", "d"]},
}


@pytest.mark.parametrize("obj", list(BAD_FILTERS.values()), ids=list(BAD_FILTERS))
def test_parse_filter_rejects(obj):
    with pytest.raises(InvalidFilter) as exc:
        parse_filter(obj, max_values=3)
    assert str(exc.value).startswith("invalid:"), str(exc.value)


def test_parse_filter_accepts():
    f = parse_filter({"ids": [HEX], "authors": [HEX], "kinds": [0, 65535], "#e": ["x"],
                      "#T": ["y"], "since": 0, "until": 2**53, "limit": 0, "search": "Café"},
                     max_values=3)
    assert f.ids == {HEX} and f.authors == {HEX} and f.kinds == {0, 65535}
    assert f.tags == {"e": {"x"}, "T": {"y"}}
    assert (f.since, f.until, f.limit, f.search) == (0, 2**53, 0, ("cafe",))
    # exactly max_values is fine
    parse_filter({"kinds": [1, 2, 3], "#t": ["a", "b", "c"]}, max_values=3)


def test_limit_is_clamped():
    assert parse_filter({"limit": 10**9}, max_limit=5000).limit == 5000
    assert parse_filter({"limit": 5000}, max_limit=5000).limit == 5000
    assert parse_filter({"limit": 4999}, max_limit=5000).limit == 4999
    assert parse_filter({"limit": 0}, max_limit=5000).limit == 0
    assert parse_filter({}, max_limit=5000, default_limit=500).limit == 500
    assert parse_filter({"limit": 7}, max_limit=5000, default_limit=500).limit == 7
    assert parse_filter({}).limit is None


def test_clamped_limit_is_what_the_store_uses():
    events = [KEYS[0].sign(1, "apple", [], 100 + i) for i in range(5)]
    with TempStore() as store:
        save(store, events)
        f = parse_filter({"limit": 1000}, max_limit=3)
        assert ids_of(store.query([f])) == order(events)[:3]
