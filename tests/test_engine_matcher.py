"""bot.engine.matcher: whole-word keyword matching, compiled index vs reference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.engine import KeywordIndex, keyword_key, reference_find
from bot.engine.matcher import Sieve

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


# --- the sieve of a preview: never turns away a text the index finds a key in --------------------

# Texts whose keywords are written the ways normalization brings back: capitals, accents (composed
# and as combining marks), ligatures, fullwidth forms, no-break and zero-width characters, emoji.
_SIEVE_ALPHABET = st.sampled_from(
    [
        *"abefilnorstu AEFILNOST ,.!-'",
        *"éÉèçüßİı",
        "\u0301",  # combining acute
        "\u0308",  # combining diaeresis
        "\u00a0",
        "\u00ad",
        "\u200b",
        "\u200d",
        "\ufe0f",
        "ﬁ",
        "ﬂ",
        "ｂ",
        "Ｆ",
        "²",
        "👋",
        "🙏",
        "❤",
        *"再见はさガｶﾞลาก่อ한",
    ]
)
_SPELLINGS = (
    str,
    str.upper,
    str.title,
    lambda w: w.replace("fi", "ﬁ").replace("fl", "ﬂ"),
    lambda w: "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in w),  # fullwidth
    lambda w: "".join(f"{c}\u0301" if c.isalpha() else c for c in w),  # an accent on every letter
    lambda w: w.replace("e", "é").replace("u", "ü"),
    lambda w: w.replace(" ", "\u00a0"),
    lambda w: w.replace(" ", " - "),
)


def _sieve_agrees(keys: list[str], text: str) -> None:
    sieve = Sieve(keys)
    found = KeywordIndex(keys).find(text)
    assert found == reference_find(keys, text)
    if found:
        assert sieve.maybe(text), (keys, text, found)
    assert sieve.select([(0, text)], 1) == ([(0, text)] if sieve.maybe(text) else [])


@settings(max_examples=400, deadline=None)
@given(
    keys=st.lists(st.text(_SIEVE_ALPHABET, min_size=1, max_size=8), min_size=1, max_size=12),
    text=st.text(_SIEVE_ALPHABET, max_size=40),
)
def test_sieve_never_turns_away_a_text_with_a_key(keys: list[str], text: str) -> None:
    _sieve_agrees([keyword_key(k) for k in keys], text)


@settings(max_examples=400, deadline=None)
@given(
    keys=st.lists(st.text(_SIEVE_ALPHABET, min_size=1, max_size=8), min_size=1, max_size=12),
    before=st.text(_SIEVE_ALPHABET, max_size=12),
    after=st.text(_SIEVE_ALPHABET, max_size=12),
    pick=st.integers(min_value=0),
    spelling=st.sampled_from(_SPELLINGS),
)
def test_sieve_lets_through_a_key_however_it_is_written(
    keys: list[str], before: str, after: str, pick: int, spelling: object
) -> None:
    keys = [keyword_key(k) for k in keys]
    written = spelling(keys[pick % len(keys)])  # type: ignore[operator]
    for text in (f"{before} {written} {after}", f"{before}{written}{after}", written):
        _sieve_agrees(keys, text)


@pytest.mark.parametrize(
    ("keywords", "text", "maybe"),
    [
        (["refund"], "I want my REFUND!", True),
        (["refund"], "I want my money back", False),
        (["late delivery"], "late - Delivery", True),
        (["late delivery"], "it is late", False),  # one word of each key is looked for: the longest
        (["remboursé"], "REMBOURSEMENT", True),  # a substring test: the index decides
        (["remboursé"], "rembourse\u0301", True),
        (["café"], "un ｃａｆé", True),
        (["fichier"], "un ﬁchier", True),
        (["strasse"], "Straße", True),
        (["再见"], "好的，再见！", True),
        (["再见"], "bye", False),
        (["café"], "plain ascii coffee", False),
        (["👋"], "anything at all", True),  # emoji keys are matched elsewhere: always a maybe
        ([], "anything", False),
    ],
)
def test_sieve_cases(keywords: list[str], text: str, maybe: bool) -> None:
    keys = [keyword_key(k) for k in keywords]
    assert Sieve(keys).maybe(text) is maybe
    assert (Sieve(keys).select([("x", text)], 1) != []) is maybe


def test_sieve_of_many_keys_uses_one_pass_and_agrees() -> None:
    keys = [keyword_key(f"word{i} thing") for i in range(40)] + [keyword_key("café crème")]
    sieve = Sieve(keys)
    texts = ["word7 - THING", "nothing here", "Café crème", "un ｃａｆé ｃｒèｍｅ", "word39", "wor d7", "un café"]
    assert [sieve.maybe(t) for t in texts] == [True, False, True, True, True, False, False]
    assert sieve.select([(t,) for t in texts], 0) == [(t,) for t in texts if sieve.maybe(t)]
    for text in texts:
        _sieve_agrees(keys, text)
