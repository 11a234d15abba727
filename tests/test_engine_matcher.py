"""bot.engine.matcher: whole-word keyword matching, compiled index vs reference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.engine import KeywordIndex, keyword_key, reference_find

# (keyword as written, message, matches?)
CASES: list[tuple[str, str, bool]] = [
    # the README's examples and their negatives
    ("bye", "Bye!", True),
    ("bye", "ok, bye.", True),
    ("bye", "byebye", False),
    ("bye", "bystander", False),
    ("bye", "goodbye", False),
    ("bye", "bye-bye", True),
    ("bye", "", False),
    ("au revoir", "Au revoir !", True),
    ("au revoir", "AU   REVOIR", True),
    ("au revoir", "au-revoir", True),
    ("au revoir", "merci, au revoir 👋", True),
    ("au revoir", "au", False),
    ("au revoir", "au revoirs", False),
    ("au revoir", "beau revoir", False),
    ("au revoir", "revoir au", False),
    ("Au Revoir", "ÀU REVOIR", True),
    # diacritics, NFKC, case folding
    ("Café", "un cafe svp", True),
    ("cafe", "UN CAFÉ SVP", True),
    ("cafe", "cafés", False),
    ("bye", "ｂｙｅ！", True),
    ("strasse", "Straße", True),
    ("see you", "See\u00a0you\u2003soon", True),
    ("bystander", "by\u00adstander", True),
    # no-space scripts: substrings
    ("再见", "好的，再见！", True),
    ("再见", "谢谢再见了", True),
    ("再见", "再", False),
    ("さようなら", "はい、さようなら。", True),
    ("さようなら", "さようならば", True),
    ("ガ", "ｶﾞ", True),
    ("が", "か", False),
    ("ลาก่อน", "ขอบคุณลาก่อนครับ", True),
    ("ลาก่อน", "ลาก่อ", False),
    # a Latin word next to a no-space script is a whole word
    ("bye", "谢谢bye", True),
    ("bye", "bye再见", True),
    ("bye", "byebye再见", False),
    # mixed keywords need a boundary only on their Latin side
    ("qq群", "加qq群了", True),
    ("qq群", "aqq群", False),
    ("qq群", "qq 群", True),
    ("微信pay", "用微信pay吧", True),
    ("微信pay", "用微信payment", False),
    # Hangul is written with spaces
    ("안녕", "안녕하세요", False),
    ("안녕", "네, 안녕!", True),
    # emoji / symbol-only keywords: exact sequence
    ("👋", "merci, au revoir 👋", True),
    ("👋", "bye", False),
    ("🙏🙏", "🙏", False),
    ("🙏🙏", "thanks 🙏🙏🙏", True),
    ("🙏🙏", "🙏 🙏", True),  # whitespace does not count in a symbol sequence
    ("🙏🙏", "🙏a🙏", False),
    ("❤️", "I ❤ it", True),
    ("❤", "I ❤️ it", True),
    ("👋", "👋🏽 hi", True),
    ("!!", "what!!", True),
    ("!!", "what!", False),
    ("+1", "+1", True),  # "+1" normalizes to "1": an ordinary keyword
    ("+1", "21", False),
]


@pytest.mark.parametrize(("keyword", "text", "expected"), CASES)
def test_find(keyword: str, text: str, expected: bool) -> None:
    key = keyword_key(keyword)
    index = KeywordIndex([key])
    assert (index.find(text) == {key}) is expected
    assert (reference_find([key], text) == {key}) is expected


def test_find_many_keys_at_once() -> None:
    keys = [keyword_key(k) for k in ["bye", "au revoir", "再见", "👋", "see you", "revoir", "au"]]
    index = KeywordIndex(keys)
    text = "Merci, au revoir 👋 — see you! 再见"
    expected = {"au revoir", "再见", "👋", "see you", "revoir", "au"}
    assert index.find(text) == expected
    assert reference_find(keys, text) == expected


def test_overlapping_and_repeated_occurrences() -> None:
    index = KeywordIndex(["bye", "bye bye", "ok bye"])
    assert index.find("ok bye bye bye") == {"bye", "bye bye", "ok bye"}


def test_empty_and_blank_keys() -> None:
    assert KeywordIndex([]).find("anything") == set()
    index = KeywordIndex(["", "   "])
    assert len(index) == 0
    assert index.find("   ") == set()


def test_keys_are_returned_as_given() -> None:
    # Unnormalized input still works and comes back as passed.
    index = KeywordIndex(["Bye", "bye"])
    assert index.find("BYE") == {"Bye", "bye"}
    assert index.keys == {"Bye", "bye"}


_ALPHABET = st.sampled_from([*"abcé É ,.!-'", "\u00a0", "\ufe0f", "👋", "🙏", "❤", "ｂ", "ß", *"再见はさガลาก่อ한"])


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(st.text(_ALPHABET, min_size=1, max_size=5), max_size=8),
    text=st.text(_ALPHABET, max_size=40),
)
def test_index_agrees_with_reference(keys: list[str], text: str) -> None:
    keys = [keyword_key(k) for k in keys]
    assert KeywordIndex(keys).find(text) == reference_find(keys, text)


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(st.text(_ALPHABET, min_size=1, max_size=5), min_size=1, max_size=8),
    before=st.text(_ALPHABET, max_size=10),
    after=st.text(_ALPHABET, max_size=10),
    pick=st.integers(min_value=0),
)
def test_keyword_between_separators_is_found(keys: list[str], before: str, after: str, pick: int) -> None:
    keys = [keyword_key(k) for k in keys]
    keyword = keys[pick % len(keys)]
    if not keyword:
        return
    text = f"{before} , {keyword} . {after}"
    found = KeywordIndex(keys).find(text)
    assert keyword in found
    assert found == reference_find(keys, text)
