"""Whole-word keyword matching over normalized text, compiled once per rule change.

Matching form of a text: `normalize(text)` with a space inserted wherever a character of a script
written without spaces (Han, kana, Thai, …) meets a letter or digit of another script, so
"谢谢bye" holds the word "bye". A keyword matches where its own matching form occurs with a word
boundary (a space or the text's start/end) on each side whose edge character is of a spaced
script; on a side whose edge is of a no-space script it matches as a substring. A keyword made
only of emoji/symbols matches its exact sequence in `symbol_form(text)`.

`KeywordIndex` does this with Aho-Corasick automata (cost grows with the text and the hits, not
with the number of keywords); `reference_find` does it one keyword at a time and is the oracle
for tests and the baseline for benchmarks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import ahocorasick  # type: ignore[import-not-found, unused-ignore]

from bot.engine.normalize import (
    _NO_SPACE_RANGES,
    keyword_key,
    match_form,
    normalize,
    symbol_form,
)
from bot.engine.normalize import is_no_space as _no_space

__all__ = ["KeywordIndex", "Prepared", "Sieve", "compile_key", "key_in", "prepare", "reference_find"]

_NO_SPACE_CLASS: Final = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _NO_SPACE_RANGES)
_NO_SPACE_RE: Final = re.compile(f"[{_NO_SPACE_CLASS}]")
_TRANSITION_RE: Final = re.compile(
    f"(?<=[{_NO_SPACE_CLASS}])(?=[^ {_NO_SPACE_CLASS}])|(?<=[^ {_NO_SPACE_CLASS}])(?=[{_NO_SPACE_CLASS}])"
)


def _segment(normalized: str) -> str:
    """Insert the implicit word boundaries between no-space scripts and other letters/digits.

    The definition, used by the reference path; `match_form` computes the same in one pass.
    """
    if normalized.isascii() or _NO_SPACE_RE.search(normalized) is None:
        return normalized
    return _TRANSITION_RE.sub(" ", normalized)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A message in the forms keywords are looked up in; computed once per message."""

    words: str  # matching form (normalized, segmented)
    symbols: str  # symbol_form(text)


def prepare(text: str) -> Prepared:
    """The lookup forms of a raw message text."""
    return Prepared(words=_segment(normalize(text)), symbols=symbol_form(text))


def compile_key(key: str) -> tuple[str, bool] | None:
    """(pattern, is_symbol) for one keyword or key; None when it can never match (blank)."""
    k = keyword_key(key)
    if not k:
        return None
    if normalize(k):
        return _segment(k), False
    return k, True


def key_in(pattern: str, is_symbol: bool, prepared: Prepared) -> bool:
    """Whether a compiled key occurs in a prepared text: the straightforward, per-key way."""
    if is_symbol:
        return pattern in prepared.symbols
    text = prepared.words
    left_free = _no_space(pattern[0])
    right_free = _no_space(pattern[-1])
    start = text.find(pattern)
    while start != -1:
        end = start + len(pattern)
        if (left_free or start == 0 or text[start - 1] == " ") and (right_free or end == len(text) or text[end] == " "):
            return True
        start = text.find(pattern, start + 1)
    return False


def reference_find(keys: Iterable[str], text: str) -> set[str]:
    """The keys of `keys` present in the raw `text`, checked one by one (oracle and baseline)."""
    prepared = prepare(text)
    found: set[str] = set()
    for key in keys:
        compiled = compile_key(key)
        if compiled is not None and key_in(*compiled, prepared):
            found.add(key)
    return found


def _bytewise(text: str) -> str:
    """UTF-8 bytes as a str of code points < 256.

    pyahocorasick finds a node's child by a linear scan of its children: with thousands of
    keywords starting with different Han characters, a node could have thousands of children.
    Over UTF-8 bytes no node has more than 256 (the matches are the same: UTF-8 is
    self-synchronizing, so a pattern's bytes only occur at character boundaries).
    ASCII text is its own UTF-8: returned as is (`isascii` is a flag check, not a scan).
    """
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


def _automaton(patterns: dict[str, list[str]]) -> Any:
    if not patterns:
        return None
    automaton = ahocorasick.Automaton()
    for pattern, keys in patterns.items():
        automaton.add_word(_bytewise(pattern), tuple(keys))
    automaton.make_automaton()
    return automaton


@lru_cache(maxsize=200_000)
def _pattern(key: str) -> tuple[str, bool] | None:
    """(automaton pattern, is_symbol) of one key, None when blank. Cached: rebuilding an index
    after a rule change re-adds the patterns of every key, but compiles only the new ones."""
    compiled = compile_key(key)
    if compiled is None:
        return None
    pattern, is_symbol = compiled
    if is_symbol:
        return pattern, True
    # Pad the sides that need a word boundary; the text is searched as " " + t + " ".
    left = "" if _no_space(pattern[0]) else " "
    right = "" if _no_space(pattern[-1]) else " "
    return f"{left}{pattern}{right}", False


class KeywordIndex:
    """All keywords of all automations, compiled once; `find` normalizes a message once and
    scans it once, whatever the number of keywords."""

    __slots__ = ("_keys", "_symbols", "_words")

    def __init__(self, keys: Iterable[str]) -> None:
        words: dict[str, list[str]] = {}
        symbols: dict[str, list[str]] = {}
        seen: set[str] = set()
        for key in keys:
            if key in seen:
                continue
            seen.add(key)
            compiled = _pattern(key)
            if compiled is None:
                continue
            pattern, is_symbol = compiled
            (symbols if is_symbol else words).setdefault(pattern, []).append(key)
        self._keys = frozenset(k for group in (*words.values(), *symbols.values()) for k in group)
        self._words = _automaton(words)
        self._symbols = _automaton(symbols)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def keys(self) -> frozenset[str]:
        """The keys this index can find (blank ones are left out)."""
        return self._keys

    def find(self, text: str) -> set[str]:
        """The keys present in the raw message `text`, with whole-word semantics."""
        found: set[str] = set()
        if self._words is not None:
            for _end, keys in self._words.iter(_bytewise(f" {match_form(text)} ")):
                found.update(keys)
        if self._symbols is not None:
            for _end, keys in self._symbols.iter(_bytewise(symbol_form(text))):
                found.update(keys)
        return found


# Up to this many needles a `Sieve` looks for each in turn (`in` is a fast C search); beyond, one
# Aho-Corasick pass costs less.
_FEW_NEEDLES = 8


def _needle_automaton(needles: Iterable[str]) -> Any:
    automaton = ahocorasick.Automaton()
    for needle in needles:
        automaton.add_word(needle, needle)
    automaton.make_automaton()
    return automaton


class Sieve:
    """A cheap test that a raw text holds none of some keys, for replaying many stored messages
    through one automation: `maybe(text)` False means `KeywordIndex(keys).find(text)` is empty;
    True means the full lookup must decide.

    A key found in a text has each of its words (as compiled: normalized, segmented) inside the
    text's normal form, since the matching form only adds spaces to it. So one word per key (its
    longest, the rarest) is looked for, without the boundaries or the other words:
    - in `normalize(text)`;
    - in `text.lower()` when the text is ASCII: its normal form's words are runs of that, and a
      non-ASCII word cannot occur in it.
    A key of emoji/symbols is matched elsewhere (`symbol_form`): with one, every text is a maybe.
    """

    __slots__ = ("_all", "_always", "_ascii", "_automata")

    def __init__(self, keys: Iterable[str]) -> None:
        needles: set[str] = set()
        self._always = False
        for key in keys:
            compiled = compile_key(key)
            if compiled is None:
                continue
            pattern, is_symbol = compiled
            if is_symbol:
                self._always = True
            else:
                needles.add(max(pattern.split(" "), key=len))
        # a needle holding another is redundant: wherever it is, the other is too
        kept = sorted(n for n in needles if not any(o != n and o in n for o in needles))
        self._all: tuple[str, ...] = tuple(kept)
        self._ascii: tuple[str, ...] = tuple(n for n in kept if n.isascii())
        self._automata: tuple[Any, Any] | None = None
        if len(kept) > _FEW_NEEDLES:
            self._automata = (_needle_automaton(self._ascii) if self._ascii else None, _needle_automaton(kept))

    def maybe(self, text: str) -> bool:
        """Whether `text` may hold one of the keys (False: it certainly holds none)."""
        if self._always:
            return True
        if text.isascii():
            needles, hay, which = self._ascii, text.lower(), 0
        else:
            needles, hay, which = self._all, normalize(text), 1
        if self._automata is not None:
            automaton = self._automata[which]
            return automaton is not None and next(automaton.iter(hay), None) is not None
        return any(needle in hay for needle in needles)

    def select(self, rows: Iterable[Sequence[Any]], column: int) -> list[Sequence[Any]]:
        """The rows whose text (at `column`) may hold one of the keys, in order. The same test
        as `maybe`, looped here: most rows hold none, and a call per row would cost as much."""
        if self._always:
            return list(rows)
        if self._automata is not None:
            maybe = self.maybe
            return [r for r in rows if maybe(r[column])]
        ascii_needles, all_needles = self._ascii, self._all
        out: list[Sequence[Any]] = []
        for row in rows:
            text = row[column]
            if text.isascii():
                hay, needles = text.lower(), ascii_needles
            else:
                hay, needles = normalize(text), all_needles
            for needle in needles:
                if needle in hay:
                    out.append(row)
                    break
        return out
