"""NIP-01 filters: strict parsing and in-memory matching.

The same :class:`Filter` drives two matchers: :meth:`Filter.matches` here (live
subscriptions) and the SQL built by the store (stored events). A property test
checks that both agree on random events and filters.

Semantics chosen where NIP-01 is silent (documented in docs/architecture.md):
an empty list matches nothing; an unknown filter field is an error (silently
ignoring it would return far more than the client asked for).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from .event import HEX64, MAX_KIND, MAX_TIMESTAMP, Event


class InvalidFilter(ValueError):
    """The filter is malformed; the message is a NIP-01 ``invalid:`` reason."""


@dataclass(slots=True)
class Filter:
    ids: frozenset[str] | None = None
    authors: frozenset[str] | None = None
    kinds: frozenset[int] | None = None
    tags: dict[str, frozenset[str]] = field(default_factory=dict)
    since: int | None = None
    until: int | None = None
    limit: int | None = None
    search: tuple[str, ...] | None = None  # NIP-50, as normalised tokens

    def matches(self, ev: Event) -> bool:
        """Does ``ev`` pass every condition of this filter? (``limit`` is ignored.)"""
        if self.ids is not None and ev.id not in self.ids:
            return False
        if self.authors is not None and ev.pubkey not in self.authors:
            return False
        if self.kinds is not None and ev.kind not in self.kinds:
            return False
        if self.since is not None and ev.created_at < self.since:
            return False
        if self.until is not None and ev.created_at > self.until:
            return False
        for name, values in self.tags.items():
            for t in ev.tags:
                if len(t) >= 2 and t[0] == name and t[1] in values:
                    break
            else:
                return False
        if self.search is not None:
            if not self.search:
                return False
            words = set(search_tokens(ev.content))
            if not all(tok in words for tok in self.search):
                return False
        return True

    def is_empty(self) -> bool:
        """True when the filter can match nothing (an empty list somewhere, since > until)."""
        if any(v is not None and not v for v in (self.ids, self.authors, self.kinds)):
            return True
        if any(not v for v in self.tags.values()):
            return True
        if self.search is not None and not self.search:
            return True
        return self.since is not None and self.until is not None and self.since > self.until


def _str_list(value: Any, name: str, max_values: int) -> list[str]:
    if type(value) is not list:
        raise InvalidFilter(f"invalid: filter field {name!r} must be an array")
    if len(value) > max_values:
        raise InvalidFilter(f"invalid: filter field {name!r} has more than {max_values} values")
    for v in value:
        if type(v) is not str:
            raise InvalidFilter(f"invalid: filter field {name!r} must hold strings")
    return value


def _hex_list(value: Any, name: str, max_values: int) -> frozenset[str]:
    values = _str_list(value, name, max_values)
    for v in values:
        if not HEX64.fullmatch(v):
            raise InvalidFilter(f"invalid: {name!r} values must be 64 lowercase hex characters")
    return frozenset(values)


def _timestamp(value: Any, name: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_TIMESTAMP:
        raise InvalidFilter(f"invalid: filter field {name!r} must be a non-negative integer")
    return value


def parse_filter(obj: Any, *, max_values: int = 1000, max_limit: int = 5000,
                 default_limit: int | None = None) -> Filter:
    """Validate one REQ/COUNT filter object. ``limit`` is clamped to ``max_limit``."""
    if type(obj) is not dict:
        raise InvalidFilter("invalid: a filter must be a JSON object")
    f = Filter()
    for key, value in obj.items():
        if key == "ids":
            f.ids = _hex_list(value, key, max_values)
        elif key == "authors":
            f.authors = _hex_list(value, key, max_values)
        elif key == "kinds":
            if type(value) is not list or len(value) > max_values:
                raise InvalidFilter("invalid: 'kinds' must be an array of at most "
                                    f"{max_values} integers")
            for k in value:
                if type(k) is not int or not 0 <= k <= MAX_KIND:
                    raise InvalidFilter("invalid: 'kinds' values must be integers 0..65535")
            f.kinds = frozenset(value)
        elif key == "since":
            f.since = _timestamp(value, key)
        elif key == "until":
            f.until = _timestamp(value, key)
        elif key == "limit":
            if type(value) is not int or value < 0:
                raise InvalidFilter("invalid: 'limit' must be a non-negative integer")
            f.limit = min(value, max_limit)
        elif key == "search":
            if type(value) is not str or len(value) > 1000:
                raise InvalidFilter("invalid: 'search' must be a string of at most 1000 characters")
            f.search = tuple(dict.fromkeys(search_query_tokens(value)))
        elif len(key) == 2 and key[0] == "#" and key[1].isascii() and key[1].isalpha():
            f.tags[key[1]] = frozenset(_str_list(value, key, max_values))
        else:
            raise InvalidFilter(f"invalid: unsupported filter field {key!r}")
    if f.limit is None and default_limit is not None:
        f.limit = default_limit
    return f


# --- NIP-50 search ---------------------------------------------------------------------------
# Words are normalised here, once, for both matchers: the FTS5 index stores these tokens
# (with FTS5's "ascii" tokenizer, which leaves them as they are) and queries look them up
# verbatim, so the SQL and in-memory matchers agree by construction, in every script.
# Normalisation: case-folded (ς→σ, ß→ss), compatibility-decomposed, combining marks
# dropped (é→e, ё→е, and an accent typed as a separate mark joins its word).
# Letters, digits and private-use characters form words; everything else separates them.

_ASCII_WORD = re.compile(r"[a-z0-9]+")
_WORD_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Nd", "Nl", "No", "Co"})


class _WordTable(dict):
    """A ``str.translate`` table, filled as characters are met: word characters map to
    themselves, combining marks to nothing (dropped without ending the word), everything
    else to a space. After the first sighting of a character the lookup runs in C,
    which makes non-Latin text about five times faster to tokenise than a Python loop
    over ``unicodedata.category``; the table stays as small as the alphabets seen.
    """

    def __missing__(self, code: int) -> int | str | None:
        cat = unicodedata.category(chr(code))
        out: int | str | None
        if cat in _WORD_CATEGORIES:
            out = code
        elif cat[0] == "M":
            out = None
        else:
            out = " "
        if len(self) < 200_000:
            self[code] = out
        return out


_TABLE = _WordTable()


def search_tokens(text: str) -> list[str]:
    """The normalised words of ``text`` (see the comment above)."""
    if text.isascii():
        return _ASCII_WORD.findall(text.lower())
    # Most whitespace-separated pieces are whole words: str.isalnum() is exactly "every
    # character is a letter or a number" (the word categories but private use; a test
    # holds this over all of Unicode), checked in C. Only the rest (punctuation attached,
    # combining marks, private use) goes through the table. Case folding is per
    # character, so folding the joined words equals folding each.
    words: list[str] = []
    for piece in unicodedata.normalize("NFKD", text.casefold()).split():
        if piece.isalnum():
            words.append(piece)
        else:
            words += piece.translate(_TABLE).split()
    return " ".join(words).casefold().split(" ") if words else []


def index_words(content: str) -> str:
    """What the full-text index holds for ``content``: its normalised words.

    Deleting from the contentless FTS5 table needs exactly the text that was indexed, so
    this must stay deterministic; changing the normalisation needs a schema version bump
    and an index rebuild.
    """
    return " ".join(search_tokens(content))


def search_query_tokens(query: str) -> list[str]:
    """Tokens of a NIP-50 query; ``key:value`` extensions (e.g. ``language:en``) are ignored."""
    words = [w for w in query.split() if ":" not in w]
    return [tok for w in words for tok in search_tokens(w)]
