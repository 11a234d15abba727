"""bot.engine.offsets: keywords found, as offsets into the text as stored."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.engine.matcher import prepare
from bot.engine.normalize import keyword_key, match_form
from bot.engine.offsets import TextMap, _symbol_form, _word_form, find_keywords


@pytest.mark.parametrize(
    ("text", "keyword", "expected"),
    [
        ("Merci, au revoir 👋", "au revoir", "au revoir"),
        ("Merci, au revoir 👋", "👋", "👋"),
        ("AU   REVOIR !", "au revoir", "AU   REVOIR"),
        ("ok ﬁne, thanks", "fine", "ﬁne"),  # ligature: one stored character, two normalized
        ("ＢＹＥ！", "bye", "ＢＹＥ"),  # fullwidth forms
        ("Cafe\u0301 noir", "cafe", "Cafe\u0301"),  # combining accent kept with its letter
        ("Grüße, Straße", "strasse", "Straße"),  # ß folds to ss
        ("❤️ merci", "❤", "❤"),  # variation selector left out of the symbol match
        ("谢谢bye", "bye", "bye"),  # implicit boundary between scripts
        ("ｶﾞｲﾄﾞ ok", "ガイド", "ｶﾞｲﾄﾞ"),  # halfwidth kana + voicing marks compose across characters
        ("by\u00adstander bye", "bye", "bye"),
    ],
)
def test_offsets_point_at_the_stored_words(text: str, keyword: str, expected: str) -> None:
    (found,) = find_keywords(text, [keyword])
    assert text[found.start : found.end] == expected


def test_a_keyword_not_in_the_text_is_not_found() -> None:
    assert find_keywords("bystander", ["bye"]) == []
    assert find_keywords("x", ["  "]) == []


def test_first_occurrence_in_keyword_order() -> None:
    found = find_keywords("bye now, BYE", ["now", "bye"])
    assert [(f.keyword, f.start, f.end) for f in found] == [("now", 4, 7), ("bye", 0, 3)]


# The characters whose normalization changes length, mixed with plain words and separators.
_TRICKY = st.sampled_from(
    ["ﬁ", "ﬂ", "ß", "Ｂ", "ｙ", "é", "e\u0301", "A\u0308", "👋", "🏻", "İ", "Ǆ", "谢", "ｶﾞ", "\u00ad", "…"]
)
_PLAIN = st.sampled_from(["a", "b", "ye", "au", "revoir", " ", "  ", "!", ", ", "-"])
_texts = st.lists(st.one_of(_TRICKY, _PLAIN), max_size=20).map("".join)


@settings(max_examples=400)
@given(st.text(max_size=40))
def test_mapped_forms_are_the_matchers_forms(text: str) -> None:
    """The forms built character by character (to map offsets back) are the matcher's own."""
    prepared = prepare(text)
    assert _word_form(text)[0] == prepared.words
    assert _symbol_form(text)[0] == prepared.symbols
    assert _word_form(text + "é")[0] == prepare(text + "é").words  # never the ASCII shortcut


_ASCII = st.sampled_from(["a", "B", "ye", "Au", "REVOIR", "x9", "0", " ", "  ", "!", ", ", "-_", "\t", "\x1f"])


@settings(max_examples=300)
@given(st.lists(_ASCII, max_size=20).map("".join), st.data())
def test_ascii_text_is_mapped_as_any_other(text: str, data: st.DataObject) -> None:
    """ASCII text takes a shortcut: the offsets are those the general path gives (a non-ASCII
    character after the text sends it there, and changes nothing before it)."""
    words = [w for w in match_form(text).split(" ") if w]
    if not words:
        return
    i = data.draw(st.integers(0, len(words) - 1))
    keyword = " ".join(words[i : data.draw(st.integers(i + 1, len(words)))])
    assert find_keywords(text, [keyword]) == find_keywords(text + " é", [keyword])


@settings(max_examples=400)
@given(_texts, st.data())
def test_the_stored_slice_normalizes_to_the_keyword(text: str, data: st.DataObject) -> None:
    words = match_form(text).split(" ")
    if words == [""]:
        return
    i = data.draw(st.integers(0, len(words) - 1))
    j = data.draw(st.integers(i + 1, len(words)))
    keyword = " ".join(words[i:j])
    (found,) = find_keywords(text, [keyword])
    assert match_form(text[found.start : found.end]) == keyword_key(keyword)


@settings(max_examples=400)
@given(st.text(max_size=30), st.data())
def test_the_stored_slice_still_holds_the_keyword(text: str, data: st.DataObject) -> None:
    """For any text: the span holds the keyword (a keyword inside one stored character, like a
    part of "½" or of "㍿", gets that whole character)."""
    words = [w for w in match_form(text).split(" ") if w]
    if not words:
        return
    keyword = data.draw(st.sampled_from(words))
    (found,) = find_keywords(text, [keyword])
    assert 0 <= found.start < found.end <= len(text)
    assert TextMap(text[found.start : found.end]).locate(keyword) is not None
