"""bot.engine.normalize: the normal form keywords are matched in and keyword-list parsing."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.engine import format_keywords, keyword_key, normalize, parse_keywords
from bot.engine.matcher import _segment
from bot.engine.normalize import match_form, symbol_form


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bye!", "bye"),
        ("ok, bye.", "ok bye"),
        ("Au revoir !", "au revoir"),
        ("AU   REVOIR", "au revoir"),
        ("au-revoir", "au revoir"),
        ("merci, au revoir 👋", "merci au revoir"),
        ("ÀU REVOIR", "au revoir"),
        ("Café", "cafe"),
        ("Cafe\u0301", "cafe"),  # decomposed accent
        ("Jérôme à l’hôtel", "jerome a l hotel"),
        ("Tạm biệt", "tam biet"),
        ("ｂｙｅ", "bye"),  # fullwidth (NFKC)
        ("ＢＹＥ！", "bye"),
        ("ﬁne", "fine"),  # ligature
        ("Straße", "strasse"),  # case folding, not lower()
        ("ΣΊΣΥΦΟΣ", "σισυφοσ"),
        ("İstanbul", "istanbul"),
        ("x²", "x2"),
        ("snake_case", "snake case"),
        ("tab\tnew\nline\r\x00nul", "tab new line nul"),
        ("no\u00a0break\u2003em\u3000ideographic", "no break em ideographic"),
        ("by\u00adstander", "bystander"),  # soft hyphen is invisible, not a separator
        ("zero\u200bwidth", "zero width"),
        ("a ✓ b → c © d", "a b c d"),
        ("1️⃣ one", "1 one"),
        ("", ""),
        ("   ", ""),
        ("!!! ... ???", ""),
        ("👋", ""),
        ("好的，再见！", "好的 再见"),
        ("はい、さようなら。", "はい さようなら"),
        ("ｶﾞｷﾞ", "ガギ"),  # halfwidth katakana + voiced mark
        ("ขอบคุณลาก่อนครับ", "ขอบคุณลาก่อนครับ"),
        ("한국어 안녕히 가세요", "한국어 안녕히 가세요"),
        ("Привет, Ёлка", "привет елка"),
        ("नमस्ते", "नमस्ते"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("が", "か"),  # kana voicing marks are part of the letter
        ("パス", "バス"),
        ("ม้า", "มา"),  # Thai tone mark
        ("नमस्ते", "नमसत"),  # Devanagari vowel signs / virama
    ],
)
def test_script_marks_are_kept(a: str, b: str) -> None:
    assert normalize(a) != normalize(b)


@pytest.mark.parametrize(
    ("keyword", "key"),
    [
        ("Bye", "bye"),
        ("  Au Revoir  ", "au revoir"),
        ("bye 👋", "bye"),  # emoji next to words is a separator
        ("👋", "👋"),
        ("🙏 🙏", "🙏🙏"),
        ("❤️", "❤"),  # variation selector dropped
        ("❤", "❤"),
        ("!!", "!!"),
        ("ｂｙｅ", "bye"),
        ("", ""),
        ("   ", ""),
        ("\ufe0f", ""),
    ],
)
def test_keyword_key(keyword: str, key: str) -> None:
    assert keyword_key(keyword) == key


def test_symbol_form() -> None:
    assert symbol_form("merci, au revoir 👋") == "merci,aurevoir👋"
    assert symbol_form("I ❤️ it") == symbol_form("I ❤ it")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("au revoir, bye, see you", ["au revoir", "bye", "see you"]),
        ('"hello, world", bye', ["hello, world", "bye"]),
        ('bye, "hello, world"', ["bye", "hello, world"]),
        ("“hello, world”, bye", ["hello, world", "bye"]),  # smart quotes from chat apps
        (' bye ,, , "" ,   ', ["bye"]),
        ("bye, Bye, BYE!, bye", ["bye"]),
        ("Café, cafe, CAFÉ", ["Café"]),
        ("au revoir, Au-Revoir, au  revoir", ["au revoir"]),
        ("再见，拜拜、さようなら", ["再见", "拜拜", "さようなら"]),
        ("👋, 🙏🙏, 👋", ["👋", "🙏🙏"]),
        ('5" screen, tv', ['5" screen', "tv"]),  # an unmatched quote is literal
        ("", []),
        ("   ", []),
        ("single", ["single"]),
    ],
)
def test_parse_keywords_string(value: str, expected: list[str]) -> None:
    assert parse_keywords(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["hello, world", " bye "], ["hello, world", "bye"]),
        (["bye", "BYE", "", "  "], ["bye"]),
        (("a", "b"), ["a", "b"]),
        ([], []),
    ],
)
def test_parse_keywords_sequence(value: list[str], expected: list[str]) -> None:
    assert parse_keywords(value) == expected


def test_format_keywords_round_trips() -> None:
    keywords = ["hello, world", "bye", "再见"]
    assert format_keywords(keywords) == '"hello, world", bye, 再见'
    assert parse_keywords(format_keywords(keywords)) == keywords


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(max_codepoint=127), max_size=40))
def test_normalize_ascii_fast_path_agrees_with_general_path(text: str) -> None:
    # A non-ASCII character sends the text through the general path.
    assert normalize(text + " é") == f"{normalize(text)} e".strip()


_ALPHABET = st.sampled_from(
    [
        *"abcXYZ éÉèçñüßİı ́,.!?-_'\"\t\n",
        *["\u00a0", "\u00ad", "\u200b", "\u200d", "\ufe0f", "👋", "🙏", "❤", "ｂ", "ﬁ", "²", "½"],
        *"再见好的はいさようならガｶﾞลาก่อนครับ한국नमस्ते",
    ]
)
_TEXT = st.text(_ALPHABET, max_size=40)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_normalize_properties(text: str) -> None:
    n = normalize(text)
    assert normalize(n) == n  # idempotent
    assert n == n.strip() and "  " not in n
    assert unicodedata.is_normalized("NFC", n)
    assert all(unicodedata.category(c)[0] not in "PSZC" for c in n.replace(" ", ""))
    assert keyword_key(keyword_key(text)) == keyword_key(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(_ALPHABET, max_size=12), max_size=8))
def test_parse_keywords_properties(keywords: list[str]) -> None:
    parsed = parse_keywords(keywords)
    keys = [keyword_key(k) for k in parsed]
    assert all(keys) and len(set(keys)) == len(keys)
    assert parse_keywords(parsed) == parsed


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_match_form_is_segmented_normal_form(text: str) -> None:
    # The one-pass matching form equals its definition: normalize, then split scripts apart.
    assert match_form(text) == _segment(normalize(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("谢谢bye", "谢谢 bye"),
        ("好的，再见！", "好的 再见"),
        ("加qq群了", "加 qq 群了"),
        ("3点", "3 点"),
        ("ขอบคุณOKครับ", "ขอบคุณ ok ครับ"),
        ("Bye!", "bye"),
    ],
)
def test_match_form(text: str, expected: str) -> None:
    assert match_form(text) == expected
