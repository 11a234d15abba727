"""Where a keyword was found, in the text as stored. Pure.

The matcher compares normalized text (see `bot.engine.normalize`), whose length differs from the
stored text's ("ﬁ" → "fi", "ß" → "ss", "é" written as e + accent → "e", "Ｂｙｅ" → "bye", "👋" → a
separator). `TextMap` builds the normalized forms once more, this time keeping for each of their
characters the run of stored characters it came from, so a keyword found at normalized positions
is reported as code point offsets (end exclusive) into the stored text: the very words to
highlight. This is the slow, explaining path (a few messages at a time); live matching stays on
`KeywordIndex`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from bot.engine.matcher import compile_key
from bot.engine.normalize import _SYMBOL_TABLE, _TABLE, is_no_space, keyword_key

__all__ = ["Found", "TextMap", "find_keywords"]

# Conjoining Hangul vowels and finals compose with the syllable before them under NFC, though
# they are letters, not marks: they stay with the character before them.
_JAMO_TAILS: Final = ((0x1160, 0x11FF), (0xD7B0, 0xD7FF))


@dataclass(frozen=True, slots=True)
class Found:
    """A keyword (as the admin wrote it) found at [start, end) of the stored text (code points)."""

    keyword: str
    start: int
    end: int


def _joins_previous(ch: str) -> bool:
    cp = ord(ch)
    return unicodedata.category(ch)[0] == "M" or any(lo <= cp <= hi for lo, hi in _JAMO_TAILS)


def _clusters(text: str) -> list[tuple[int, int, str]]:
    """(start, end, normalized piece before whitespace folding) per run of stored characters
    that normalizes on its own. A run is a character with the marks after it, and grows when
    NFC composes across it (halfwidth kana + voicing mark)."""
    starts: list[int] = []
    raws: list[str] = []  # each run's characters mapped, before NFC
    for i, ch in enumerate(text):
        raw = ch.translate(_TABLE)
        if raws:
            prev = raws[-1]
            if _joins_previous(ch) or (
                raw
                and prev
                and unicodedata.normalize("NFC", prev + raw)
                != unicodedata.normalize("NFC", prev) + unicodedata.normalize("NFC", raw)
            ):
                raws[-1] = prev + raw
                continue
        starts.append(i)
        raws.append(raw)
    ends = [*starts[1:], len(text)] if starts else []
    pieces = [(s, e, unicodedata.normalize("NFC", r)) for s, e, r in zip(starts, ends, raws, strict=True)]
    whole = unicodedata.normalize("NFC", text.translate(_TABLE))
    if "".join(p for _, _, p in pieces) != whole:
        # Composition reached further than one neighbour (rare mark orders): one run for all,
        # coarse but never wrong.
        return [(0, len(text), whole)] if text else []
    return pieces


class TextMap:
    """A stored text's matching forms, each character mapped back to its stored characters."""

    __slots__ = ("_symbol_origin", "_word_origin", "symbols", "text", "words")

    def __init__(self, text: str) -> None:
        self.text = text
        # words: normalize() then match_form()'s boundaries, built per run of stored characters
        chars: list[str] = []
        origin: list[tuple[int, int]] = []
        for start, end, piece in _clusters(text):
            for c in piece:
                if c.isspace():
                    if chars and chars[-1] != " ":  # runs of separators fold to one space
                        chars.append(" ")
                        origin.append((start, end))
                    continue
                if chars and chars[-1] != " " and is_no_space(chars[-1]) != is_no_space(c):
                    # a script without spaces meets another: an implicit word boundary
                    chars.append(" ")
                    origin.append((start, start))
                chars.append(c)
                origin.append((start, end))
        if chars and chars[-1] == " ":
            chars.pop()
            origin.pop()
        self.words = "".join(chars)
        self._word_origin = origin
        # symbols: symbol_form() is per character already
        sym: list[str] = []
        sym_origin: list[tuple[int, int]] = []
        for i, ch in enumerate(text):
            for c in ch.translate(_SYMBOL_TABLE):
                sym.append(c)
                sym_origin.append((i, i + 1))
        self.symbols = "".join(sym)
        self._symbol_origin = sym_origin

    def locate(self, keyword: str) -> tuple[int, int] | None:
        """[start, end) in the stored text of the keyword's first whole-word occurrence (the same
        rule as the matcher), or None when it does not occur."""
        compiled = compile_key(keyword_key(keyword))
        if compiled is None:
            return None
        pattern, is_symbol = compiled
        if is_symbol:
            at = self.symbols.find(pattern)
            if at == -1:
                return None
            return self._symbol_origin[at][0], self._symbol_origin[at + len(pattern) - 1][1]
        text = self.words
        left_free, right_free = is_no_space(pattern[0]), is_no_space(pattern[-1])
        at = text.find(pattern)
        while at != -1:
            end = at + len(pattern)
            if (left_free or at == 0 or text[at - 1] == " ") and (right_free or end == len(text) or text[end] == " "):
                return self._word_origin[at][0], self._word_origin[end - 1][1]
            at = text.find(pattern, at + 1)
        return None


def find_keywords(text: str, keywords: Iterable[str]) -> list[Found]:
    """The keywords present in `text`, each at its first occurrence, in the order given."""
    mapped = TextMap(text)
    found: list[Found] = []
    for keyword in keywords:
        span = mapped.locate(keyword)
        if span is not None:
            found.append(Found(keyword, *span))
    return found
