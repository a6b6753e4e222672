"""The fast tokenizer against a plain character-by-character statement of the rule.

The full-text index holds what :func:`index_words` returns, and deleting from a
contentless FTS5 table needs exactly that text again, so the fast path must agree with
the rule in every script, not just on Latin text.
"""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from samizdat.nostr.filters import index_words, search_tokens

WORD = {"Lu", "Ll", "Lt", "Lm", "Lo", "Nd", "Nl", "No", "Co"}


def reference_tokens(text: str) -> list[str]:
    tokens, cur = [], []
    for ch in unicodedata.normalize("NFKD", text.casefold()):
        cat = unicodedata.category(ch)
        if cat in WORD:
            cur.append(ch)
        elif cat[0] == "M":
            continue
        elif cur:
            tokens.append("".join(cur).casefold())
            cur = []
    if cur:
        tokens.append("".join(cur).casefold())
    return tokens


@settings(max_examples=3000)
@given(st.text())
def test_agrees_with_the_rule_on_any_text(text: str) -> None:
    assert search_tokens(text) == reference_tokens(text)


@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1).map(
    lambda t: t + " Алматы Қазақстан ÉCOLE İstanbul ﬁne ß ς"))
def test_agrees_on_mixed_scripts(text: str) -> None:
    assert search_tokens(text) == reference_tokens(text)


def test_examples() -> None:
    assert search_tokens("Алматы: ТЫСЯЧИ людей, Қазақстан!") == [
        "алматы", "тысячи", "людеи", "қазақстан"]
    assert search_tokens("Café ÉCOLE") == ["cafe", "ecole"]
    assert search_tokens("Straße") == ["strasse"]
    assert search_tokens("e\u0301t\u00e9") == ["ete"]  # a separate accent joins its word
    assert index_words("  ") == ""


def test_isalnum_is_exactly_the_word_categories_but_private_use() -> None:
    """The tokenizer's fast path relies on this for every character this Python knows."""
    import sys

    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        cat = unicodedata.category(ch)
        assert ch.isalnum() == (cat in WORD and cat != "Co"), hex(code)
