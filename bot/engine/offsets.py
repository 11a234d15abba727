"""Where a keyword was found, in the text as stored. Pure.

The matcher compares normalized text (see `bot.engine.normalize`), whose length differs from the
stored text's ("ﬁ" → "fi", "ß" → "ss", "é" written as e + accent → "e", "Ｂｙｅ" → "bye", "👋" → a
separator). `TextMap` builds the normalized forms once more, this time keeping for each of their
characters the run of stored characters it came from, so a keyword found at normalized positions
is reported as code point offsets (end exclusive) into the stored text: the very words to
highlight. This is the explaining path; live matching stays on `KeywordIndex`.

A page explains every message of a conversation, and most hold none of the keywords: a `TextMap`
searches the matcher's own forms (`prepare`, C-level for the most part) and maps characters back
to the stored text only once a keyword is there; ASCII text, the common case, is mapped in one
regex pass.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from bot.engine.matcher import compile_key, prepare
from bot.engine.normalize import _SYMBOL_TABLE, _TABLE, is_no_space, keyword_key

__all__ = ["Found", "TextMap", "find_keywords"]

# Conjoining Hangul vowels and finals compose with the syllable before them under NFC, though
# they are letters, not marks: they stay with the character before them.
_JAMO_TAILS: Final = ((0x1160, 0x11FF), (0xD7B0, 0xD7FF))
# In ASCII the words are the runs of letters and digits (every other character is a separator).
_ASCII_WORD: Final = re.compile(r"[A-Za-z0-9]+")
# Whether a character is of a script written without spaces: asked per character of a text.
_no_space = functools.lru_cache(maxsize=4096)(is_no_space)


@functools.lru_cache(maxsize=4096)
def _pattern(keyword: str) -> tuple[str, bool] | None:
    """A keyword's compiled form: asked once per keyword and message (a conversation's "why"
    locates every keyword of every automation in each of its messages)."""
    return compile_key(keyword_key(keyword))


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


Origin = Callable[[int], tuple[int, int]]
"""For an index into a matching form: the run [start, end) of stored characters it came from."""


def _ascii_origin(text: str, words: str) -> Origin:
    """`Origin` of `words`, the words of the ASCII `text`: its runs of letters and digits, lowered,
    joined by one space. Each character is one stored character; a space stands for the first
    separator after its run. Worked out for the asked index only (a found keyword's two ends)."""

    def origin(i: int) -> tuple[int, int]:
        run = words.count(" ", 0, i)  # the run holding i (or ending just before it)
        offset = i - (words.rfind(" ", 0, i) + 1)
        start = next(itertools.islice(_ASCII_WORD.finditer(text), run, None)).start()
        return start + offset, start + offset + 1

    return origin


def _word_form(text: str) -> tuple[str, Origin]:
    """`prepare(text).words`, with the run of stored characters each of its characters came from."""
    if text.isascii():
        words = " ".join(_ASCII_WORD.findall(text)).lower()
        return words, _ascii_origin(text, words)
    chars: list[str] = []
    origin: list[tuple[int, int]] = []
    for start, end, piece in _clusters(text):
        for c in piece:
            if c.isspace():
                if chars and chars[-1] != " ":  # runs of separators fold to one space
                    chars.append(" ")
                    origin.append((start, end))
                continue
            if chars and chars[-1] != " " and _no_space(chars[-1]) != _no_space(c):
                # a script without spaces meets another: an implicit word boundary
                chars.append(" ")
                origin.append((start, start))
            chars.append(c)
            origin.append((start, end))
    if chars and chars[-1] == " ":
        chars.pop()
        origin.pop()
    return "".join(chars), origin.__getitem__


def _symbol_form(text: str) -> tuple[str, Origin]:
    """`prepare(text).symbols` (per character already), with each character's stored one."""
    sym: list[str] = []
    origin: list[tuple[int, int]] = []
    for i, ch in enumerate(text):
        for c in ch.translate(_SYMBOL_TABLE):
            sym.append(c)
            origin.append((i, i + 1))
    return "".join(sym), origin.__getitem__


class TextMap:
    """A stored text's matching forms; each character is mapped back to its stored characters
    when a keyword is first found (most texts hold none)."""

    __slots__ = ("_symbol_origin", "_word_origin", "symbols", "text", "words")

    def __init__(self, text: str) -> None:
        self.text = text
        prepared = prepare(text)
        self.words = prepared.words
        self.symbols = prepared.symbols
        self._word_origin: Origin | None = None
        self._symbol_origin: Origin | None = None

    def locate(self, keyword: str) -> tuple[int, int] | None:
        """[start, end) in the stored text of the keyword's first whole-word occurrence (the same
        rule as the matcher), or None when it does not occur."""
        compiled = _pattern(keyword)
        if compiled is None:
            return None
        pattern, is_symbol = compiled
        if is_symbol:
            at = self.symbols.find(pattern)
            if at != -1 and self._symbol_origin is None:
                symbols, self._symbol_origin = _symbol_form(self.text)
                if symbols != self.symbols:  # equal by construction (tested): the mapped form wins
                    self.symbols = symbols
                    at = symbols.find(pattern)
            if at == -1 or self._symbol_origin is None:
                return None
            return self._symbol_origin(at)[0], self._symbol_origin(at + len(pattern) - 1)[1]
        where = self._whole_word(pattern)
        if where is not None and self._word_origin is None:
            if self.text.isascii():  # (the shortcut's words are the matcher's: tested)
                self._word_origin = _ascii_origin(self.text, self.words)
            else:
                words, self._word_origin = _word_form(self.text)
                if words != self.words:  # equal by construction (tested): the mapped form wins
                    self.words = words
                    where = self._whole_word(pattern)
        if where is None or self._word_origin is None:
            return None
        return self._word_origin(where)[0], self._word_origin(where + len(pattern) - 1)[1]

    def _whole_word(self, pattern: str) -> int | None:
        """Where `pattern` first occurs in the words with a word boundary on each side that needs
        one (a side whose edge is of a script without spaces needs none), or None."""
        text = self.words
        at = text.find(pattern)
        if at == -1:
            return None
        left_free, right_free = _no_space(pattern[0]), _no_space(pattern[-1])
        while at != -1:
            end = at + len(pattern)
            if (left_free or at == 0 or text[at - 1] == " ") and (right_free or end == len(text) or text[end] == " "):
                return at
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
