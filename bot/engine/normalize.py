"""Text normalization for keyword matching, and keyword-list parsing.

`normalize` runs on every inbound message, so it is one `str.translate` over a table filled lazily
per code point (C-level lookups once warm), one NFC and a split/join; pure ASCII text takes a
shorter path. `match_form` adds the implicit word boundaries of scripts written without spaces.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Final

__all__ = [
    "DOUBLE_QUOTES",
    "PLAIN_QUOTES",
    "SINGLE_QUOTES",
    "format_keywords",
    "is_no_space",
    "keyword_key",
    "match_form",
    "normalize",
    "parse_keywords",
    "symbol_form",
    "unclosed_quote",
]

# Combining marks (Mn) that are kept: in these scripts a "mark" is a vowel sign, a virama or a
# tone mark, part of the letter rather than an accent on it (dropping them would merge distinct
# words, e.g. Japanese が/か, ば/は, Thai ม้า/มา). Every other Mn is a diacritic and is dropped.
_KEPT_MN_RANGES: Final = (
    (0x0900, 0x0DFF),  # Indic scripts, Devanagari … Sinhala
    (0x0E00, 0x0FFF),  # Thai, Lao, Tibetan
    (0x1000, 0x109F),  # Myanmar
    (0x1700, 0x18AF),  # Philippine scripts, Khmer, Mongolian
    (0x1900, 0x1AAF),  # Limbu, Tai Le, New Tai Lue, Buginese, Tai Tham
    (0x1B00, 0x1C4F),  # Balinese, Sundanese, Batak, Lepcha
    (0x1CD0, 0x1CFF),  # Vedic extensions
    (0x3099, 0x309A),  # kana voicing marks (dakuten, handakuten)
    (0xA800, 0xABFF),  # Syloti Nagri … Javanese, Tai Viet, Meetei Mayek
    (0x11000, 0x11FFF),  # historic Brahmic scripts
)

# Variation selectors (emoji vs text presentation) carry no meaning for matching.
_VARIATION_SELECTORS: Final = ((0xFE00, 0xFE0F), (0xE0100, 0xE01EF))

# Invisible joiners inside words (soft hyphen, ZWNJ in Persian, ZWJ, word joiner, BOM): deleted,
# not turned into separators, so "by\u00adstander" stays one word. U+200B (zero-width *space*)
# remains a separator.
_INVISIBLE_JOINERS: Final = "\u00ad\u034f\u200c\u200d\u2060\ufeff"


# Scripts written without spaces between words.
_NO_SPACE_RANGES: Final[tuple[tuple[int, int], ...]] = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x1950, 0x19FF),  # Tai Le, New Tai Lue, Khmer symbols
    (0x1A20, 0x1AAF),  # Tai Tham
    (0x1B00, 0x1B7F),  # Balinese
    (0x2E80, 0x2FDF),  # CJK radicals, Kangxi radicals
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3021, 0x3029),  # Hangzhou numerals
    (0x3031, 0x3035),  # kana repeat marks
    (0x303B, 0x303C),  # 〻 〼
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x312F),  # Bopomofo
    (0x31A0, 0x31BF),  # Bopomofo extended
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA000, 0xA4CF),  # Yi
    (0xA980, 0xA9FF),  # Javanese, Myanmar extended-B
    (0xAA60, 0xAADF),  # Myanmar extended-A, Tai Viet
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # halfwidth katakana
    (0x16FE0, 0x16FFF),  # ideographic symbols
    (0x1B000, 0x1B16F),  # kana supplement and extensions
    (0x20000, 0x323AF),  # CJK extensions B–H, compatibility supplement
)


def _in_ranges(cp: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= cp <= hi for lo, hi in ranges)


def _is_dropped_mark(cp: int) -> bool:
    return _in_ranges(cp, _VARIATION_SELECTORS) or not _in_ranges(cp, _KEPT_MN_RANGES)


def _map_char(ch: str) -> str:
    """What one character of raw text becomes before recomposition: its compatibility
    decomposition, case-folded, with diacritics deleted and separators turned into a space."""
    if ch in _INVISIBLE_JOINERS:
        return ""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", ch).casefold())
    out: list[str] = []
    for c in decomposed:
        cat = unicodedata.category(c)
        if cat == "Mn":
            if not _is_dropped_mark(ord(c)):
                out.append(c)
        elif cat[0] in "PSZC" or cat == "Me":  # Me: enclosing marks (keycaps) are symbols
            out.append(" ")
        else:
            out.append(c)
    return "".join(out)


_CACHE_LIMIT: Final = 200_000


class _LazyTable(dict[int, str]):
    """`str.translate` table filled on first sight of each code point, so the per-character
    work is a C-level dict lookup after warm-up. Bounded against texts built to fill it."""

    __slots__ = ("_map",)

    def __init__(self, map_char: Callable[[str], str]) -> None:
        super().__init__()
        self._map = map_char

    def __missing__(self, cp: int) -> str:
        value = self._map(chr(cp))
        if len(self) < _CACHE_LIMIT:
            self[cp] = value
        return value


_TABLE: Final = _LazyTable(_map_char)

# ASCII fast path: every ASCII character that is not a letter or a digit is a separator, and
# letters are lowered (casefold == lower on ASCII). A full 256-byte table for `bytes.translate`:
# a table lookup per byte, where `str.translate` with a dict raises and catches a KeyError per
# distinct character it leaves alone.
_ASCII_BYTES: Final = bytes(ord(chr(b).lower()) if chr(b).isalnum() else 0x20 for b in range(128)) + bytes(128)


def normalize(text: str) -> str:
    """The normal form that text and keywords are compared in.

    NFKC, case folding, diacritics removed, punctuation/symbols/whitespace/control characters as
    word separators, runs of separators folded to one space, stripped.
    `normalize("  Àu-REVOIR !! 👋") == "au revoir"`.

    Done as one per-character mapping (NFKD + casefold + marks dropped + separators) and a final
    NFC, which gives the same result as the pipeline above without its whole-string passes.
    """
    if text.isascii():
        # NFKC and diacritics are no-ops on ASCII; casefold == lower. Runs of separators are
        # folded by `replace` (a C loop), usually one or two passes: only single spaces are left.
        b = text.encode("ascii").translate(_ASCII_BYTES)
        while b"  " in b:
            b = b.replace(b"  ", b" ")
        return b.strip(b" ").decode("ascii")
    s = unicodedata.normalize("NFC", text.translate(_TABLE))
    return " ".join(s.split())


def is_no_space(ch: str) -> bool:
    """Whether a character belongs to a script written without spaces between words."""
    return _in_ranges(ord(ch), _NO_SPACE_RANGES)


_NS_EDGE: Final = "\x01"  # marks both sides of a no-space character in `_EDGE_TABLE`


def _edge_char(ch: str) -> str:
    return f"{_NS_EDGE}{ch}{_NS_EDGE}" if is_no_space(ch) else ch


_EDGE_TABLE: Final = _LazyTable(_edge_char)
_NO_SPACE_RE: Final = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _NO_SPACE_RANGES) + "]")


def match_form(text: str) -> str:
    """`normalize(text)` with a space wherever a character of a script written without spaces
    (Han, kana, Thai, …) meets a letter or digit of another script ("谢谢bye" → "谢谢 bye"), so
    that such neighbours count as word boundaries. This is what keywords are searched in.
    """
    normalized = normalize(text)
    if normalized.isascii() or _NO_SPACE_RE.search(normalized) is None:
        return normalized
    # No-space characters come out wrapped in edges; two edges side by side (two no-space
    # characters) vanish, any other edge becomes a space.
    s = normalized.translate(_EDGE_TABLE).replace(_NS_EDGE * 2, "").replace(_NS_EDGE, " ")
    return " ".join(s.split())


def _symbol_char(ch: str) -> str:
    if _in_ranges(ord(ch), _VARIATION_SELECTORS):
        return ""
    return "".join(unicodedata.normalize("NFKC", ch).split())


_SYMBOL_TABLE: Final = _LazyTable(_symbol_char)


def symbol_form(text: str) -> str:
    """The form in which emoji/symbol-only keywords are matched: NFKC (per character), without
    whitespace or variation selectors (so "❤️" and "❤" are equal)."""
    if text.isascii():
        return "".join(text.split())
    return text.translate(_SYMBOL_TABLE)


def keyword_key(keyword: str) -> str:
    """The form a keyword is matched and de-duplicated by.

    An ordinary keyword's key is `normalize(keyword)`. A keyword made only of emoji, symbols or
    punctuation (which normalizes to "") keeps its exact sequence: its `symbol_form`.
    Blank gives "".
    """
    key = normalize(keyword)
    return key if key else symbol_form(keyword)


_COMMAS: Final = frozenset(",\uff0c\u3001\u060c")  # , ， 、 ،
# The one quote table: chat apps and phones turn " and ' into typographic quotes, and French
# keyboards type guillemets; everything that reads quotes (keyword lists here, the chat command's
# tokenizer) reads these as the plain ones.
DOUBLE_QUOTES: Final = frozenset('"\u201c\u201d\u201e\u00ab\u00bb')  # " “ ” „ « »
SINGLE_QUOTES: Final = frozenset("'\u2018\u2019")  # ' ‘ ’
PLAIN_QUOTES: Final = str.maketrans({**dict.fromkeys(DOUBLE_QUOTES, '"'), **dict.fromkeys(SINGLE_QUOTES, "'")})


def unclosed_quote(value: str) -> bool:
    """Whether a keyword list holds an odd number of double quotes (one is not closed)."""
    return sum(1 for ch in value if ch in DOUBLE_QUOTES) % 2 == 1


def _split_keywords(value: str) -> list[str]:
    quote_positions = [i for i, ch in enumerate(value) if ch in DOUBLE_QUOTES]
    if len(quote_positions) % 2:
        # An unmatched quote is taken literally rather than swallowing the rest of the list.
        quote_positions.pop()
    quotes = set(quote_positions)
    entries: list[str] = []
    current: list[str] = []
    quoted = False
    for i, ch in enumerate(value):
        if i in quotes:
            quoted = not quoted
        elif ch in _COMMAS and not quoted:
            entries.append("".join(current))
            current = []
        else:
            current.append(ch)
    entries.append("".join(current))
    return entries


def parse_keywords(value: str | Sequence[str]) -> list[str]:
    """Keywords as written by an admin, parsed as the README describes: display strings, in order.

    A string is comma-separated (`au revoir, bye, see you`); a phrase in double quotes may hold a
    comma (`"hello, world", bye`). A sequence gives one keyword per element (no splitting).
    Entries are stripped, blanks dropped, and duplicates (same `keyword_key`) merged, keeping the
    first spelling. Counts and lengths are not checked here.
    """
    entries = _split_keywords(value) if isinstance(value, str) else list(value)
    result: list[str] = []
    keys: set[str] = set()
    for entry in entries:
        display = entry.strip()
        key = keyword_key(display)
        if key and key not in keys:
            keys.add(key)
            result.append(display)
    return result


def format_keywords(keywords: Sequence[str]) -> str:
    """The inverse of `parse_keywords` for display: comma-separated, a keyword holding a comma
    in double quotes."""
    return ", ".join(f'"{kw}"' if any(ch in _COMMAS for ch in kw) else kw for kw in keywords)
